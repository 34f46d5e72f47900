import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// The built package as users get it: every entry of package.json `exports`, loaded from dist
// (`npm test` builds first). Its runtime names must be exactly the committed list, so a name
// enters or leaves the public API only on purpose.
const root = new URL('../../', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
  exports: Record<string, string | { default: string }>;
};
const committed = JSON.parse(
  readFileSync(new URL('test/unit/public-api.json', root), 'utf8'),
) as Record<string, string[]>;

const entries = Object.entries(pkg.exports).flatMap(([subpath, target]) =>
  typeof target === 'string' ? [] : [[subpath, target.default] as const],
);

describe('public API', () => {
  it('lists every subpath of the package', () => {
    expect(Object.keys(committed).sort()).toEqual(entries.map(([subpath]) => subpath).sort());
  });

  it.each(entries)('%s exports exactly the committed names', async (subpath, file) => {
    const module = (await import(new URL(file, root).href)) as Record<string, unknown>;
    expect(Object.keys(module).sort()).toEqual([...(committed[subpath] ?? [])].sort());
  });
});
