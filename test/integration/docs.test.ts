import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceUrl } from '../helpers/services.js';

/**
 * Every ```ts block of README.md and docs/*.md is a program a user may paste. Unless its info
 * string says `fragment`, it must typecheck against the built package, imported as `ferry`
 * (the package's exports self-reference), and run to exit 0 in an empty working directory.
 * A block whose info string names `services=FERRY_X,...` reads those variables and runs
 * against the real services; without them it is skipped, visibly.
 */
const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const blockDir = join(root, 'test/.docs-tmp');
const require = createRequire(import.meta.url);
const tsc = require.resolve('typescript/bin/tsc');
// The blocks run from an empty directory, so the loader is named by its own path.
const tsx = pathToFileURL(require.resolve('tsx')).href;

interface Block {
  readonly name: string;
  readonly source: string;
  readonly code: string;
  readonly fragment: boolean;
  readonly services: readonly string[];
}

function extract(file: string): Block[] {
  const text = readFileSync(join(root, file), 'utf8');
  return [...text.matchAll(/^```ts([^\n]*)\n([\s\S]*?)^```$/gm)].map((match) => {
    const info = (match[1] ?? '').trim().split(/\s+/);
    const line = text.slice(0, match.index).split('\n').length;
    const services = info.find((word) => word.startsWith('services='));
    return {
      name: `${file.replace(/[^a-z0-9]+/gi, '-')}-${line}`,
      source: `${file}:${line}`,
      code: match[2] ?? '',
      fragment: info.includes('fragment'),
      services: services ? services.slice('services='.length).split(',') : [],
    };
  });
}

const files = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((file) => file.endsWith('.md'))
    .map((file) => `docs/${file}`),
];
const blocks = files.flatMap(extract);
const programs = blocks.filter((block) => !block.fragment);

beforeAll(() => {
  rmSync(blockDir, { recursive: true, force: true });
  mkdirSync(blockDir, { recursive: true });
  for (const block of programs) writeFileSync(join(blockDir, `${block.name}.ts`), block.code);
  writeFileSync(
    join(blockDir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2023',
        lib: ['ES2023'],
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noUncheckedIndexedAccess: true,
        exactOptionalPropertyTypes: true,
        skipLibCheck: true,
        noEmit: true,
        types: ['node'],
      },
      include: ['*.ts'],
    }),
  );
});

afterAll(() => {
  rmSync(blockDir, { recursive: true, force: true });
});

describe('code blocks in README.md and docs/', () => {
  it('finds the blocks, and most of them are programs', () => {
    expect(blocks.length).toBeGreaterThan(0);
    expect(programs.length).toBeGreaterThan(0);
  });

  it('typecheck against the built package (strict)', async () => {
    const result = await run(process.execPath, [tsc, '-p', join(blockDir, 'tsconfig.json')], {
      cwd: root,
      timeout: 120_000,
    }).then(
      () => ({ code: 0, output: '' }),
      (error: { code?: number; stdout?: string }) => ({
        code: error.code ?? -1,
        output: error.stdout ?? '',
      }),
    );
    expect(result.output).toBe('');
    expect(result.code).toBe(0);
  }, 180_000);

  for (const block of programs) {
    const missing = block.services.filter((variable) => !serviceUrl(variable));
    it.skipIf(missing.length > 0)(
      `${block.source} runs and exits 0${missing.length > 0 ? ` (needs ${missing.join(', ')})` : ''}`,
      async () => {
        const cwd = mkdtempSync(join(tmpdir(), 'ferry-docs-'));
        try {
          const result = await run(
            process.execPath,
            ['--import', tsx, join(blockDir, `${block.name}.ts`)],
            { cwd, timeout: 60_000, env: { ...process.env, FERRY_LOG_LEVEL: 'warn' } },
          ).then(
            () => ({ code: 0, stderr: '' }),
            (error: { code?: number | string; stderr?: string; signal?: string }) => ({
              code: error.code ?? error.signal ?? -1,
              stderr: error.stderr ?? '',
            }),
          );
          expect(result.stderr).toBe('');
          expect(result.code).toBe(0);
        } finally {
          rmSync(cwd, { recursive: true, force: true });
        }
      },
      90_000,
    );
  }
});
