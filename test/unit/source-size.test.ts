import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// A source file longer than this says why at its top (a comment starting "Longer than 400
// lines:"); otherwise it is split where its concerns part.
const LIMIT = 400;
const root = resolve(import.meta.dirname, '../../src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

describe('source files', () => {
  it(`stay under ${LIMIT} lines or say why at their top`, () => {
    const files = sources(root);
    expect(files.length).toBeGreaterThan(50);
    const long = files.flatMap((file) => {
      const lines = readFileSync(file, 'utf8').split('\n');
      const reasoned = lines
        .slice(0, 5)
        .some((line) => line.startsWith('// Longer than 400 lines:'));
      return lines.length > LIMIT && !reasoned ? [`${relative(root, file)}: ${lines.length}`] : [];
    });
    expect(long).toEqual([]);
  });
});
