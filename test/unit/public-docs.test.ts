import { readFileSync } from 'node:fs';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// Every name the package exports, types included, carries a doc comment: the contract a user
// reads in their editor. Read from the built declarations of each package.json entry, so what
// is checked is what users get (`npm test` builds first).
const root = new URL('../../', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
  exports: Record<string, string | { types: string }>;
};
const entries = Object.entries(pkg.exports).flatMap(([subpath, target]) =>
  typeof target === 'string' ? [] : [[subpath, new URL(target.types, root).pathname] as const],
);

const program = ts.createProgram(
  entries.map(([, file]) => file),
  { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext },
);
const checker = program.getTypeChecker();

/** Exported names of an entry whose declaration has no doc comment. */
function undocumented(file: string): string[] {
  const source = program.getSourceFile(file);
  if (source === undefined) throw new Error(`${file} is missing: build first`);
  const module = checker.getSymbolAtLocation(source);
  if (module === undefined) return [];
  return checker.getExportsOfModule(module).flatMap((exported) => {
    const symbol =
      exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    const documented = symbol.getDocumentationComment(checker).length > 0;
    return documented ? [] : [exported.name];
  });
}

describe('public API docs', () => {
  it.each(entries)('%s documents every export', (_subpath, file) => {
    expect(undocumented(file)).toEqual([]);
  });
});
