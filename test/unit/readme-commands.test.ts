import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ferry } from '../helpers/cli.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The commands `--help` lists under "Commands:", without `help` itself. */
function helpCommands(help: string): string[] {
  const section = help.split(/^Commands:$/m)[1] ?? '';
  return [...section.matchAll(/^ {2}(\S+)/gm)]
    .map((match) => match[1] ?? '')
    .filter((name) => name !== 'help');
}

/** The rows of the README's "The `ferry` command" table, as `ferry <first word>` lists. */
function tableRows(): string[] {
  const section = readme.split('## The `ferry` command')[1]?.split(/^## /m)[0] ?? '';
  return [...section.matchAll(/^\| `ferry ([^`]+)`/gm)].map((match) => match[1] ?? '');
}

describe('the README command table', () => {
  it('lists exactly the commands of ferry --help', async () => {
    const result = await ferry(['--help']);
    expect(result.code).toBe(0);
    const inHelp = helpCommands(result.stdout);
    expect(inHelp.length).toBeGreaterThan(0);
    const inTable = tableRows().map((row) => row.split(' ')[0] ?? '');
    expect([...inTable].sort()).toEqual([...inHelp].sort());
  });

  it('lists exactly the subcommands of ferry outbox --help', async () => {
    const result = await ferry(['outbox', '--help']);
    expect(result.code).toBe(0);
    const inHelp = helpCommands(result.stdout);
    const row = tableRows().find((entry) => entry.startsWith('outbox '));
    expect(row).toBeDefined();
    const inTable = (row ?? '').slice('outbox '.length).split('\\|');
    expect([...inTable].sort()).toEqual([...inHelp].sort());
  });
});
