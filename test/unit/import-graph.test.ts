import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../../src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Relative imports of a file, static, dynamic and re-exports, type-only ones included. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found = text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)['"](\.[^'"]+)['"]/gm);
  return [...found].map((match) => resolve(dirname(file), match[1]!.replace(/\.js$/, '.ts')));
}

/** Strongly connected components of more than one file (Tarjan): each holds a cycle. */
function cycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, index.size);
    low.set(node, index.get(node)!);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(relative(root, member));
      } while (member !== node);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}

describe('import graph', () => {
  const graph = new Map(sources(root).map((file) => [file, imports(file)]));

  it('reads the imports it checks', () => {
    const opener = graph.get(join(root, 'cli/open-store.ts')) ?? [];
    expect(opener).toContain(join(root, 'transport/urls.ts'));
    expect(opener).toContain(join(root, 'cli/stores/postgres.ts'));
  });

  it('keeps the core free of drivers, stores, the outbox and the CLI', () => {
    const below = ['transports', 'stores', 'outbox', 'cli'].map((dir) => join(root, dir) + '/');
    const core = [...graph].filter(([file]) => file.startsWith(join(root, 'core') + '/'));
    expect(core.length).toBeGreaterThan(5);
    const leaks = core.flatMap(([file, targets]) =>
      targets
        .filter((target) => below.some((dir) => target.startsWith(dir)))
        .map((target) => `${relative(root, file)} -> ${relative(root, target)}`),
    );
    expect(leaks).toEqual([]);
  });

  it('has no cycle anywhere in src, through any kind of import', () => {
    expect(graph.size).toBeGreaterThan(50);
    expect(cycles(graph)).toEqual([]);
  });

  it('would report a cycle', () => {
    const a = join(root, 'a.ts');
    const b = join(root, 'b.ts');
    const c = join(root, 'c.ts');
    const loop = new Map([
      [a, [b]],
      [b, [a]],
      [c, [a]],
    ]);
    expect(cycles(loop)).toEqual([['a.ts', 'b.ts']]);
  });
});
