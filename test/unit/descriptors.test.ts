import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { advise, PROFILES } from '../../src/cli/advise-profiles.js';
import type { TransportCapabilities } from '../../src/transport/transport.js';
import type { TransportDescriptor } from '../../src/transport/descriptor.js';
import { TRANSPORTS } from '../../src/transport/descriptors.js';
import { openTransport, transportSchemes } from '../../src/transport/urls.js';

const yesNo = (value: boolean, note: string | undefined): string =>
  `${value ? 'yes' : '**no**'}${note ? ` (${note})` : ''}`;

const bytes = (n: number): string =>
  n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : `${(n / 1_000_000).toString()} MB`;

const identity = (value: TransportCapabilities['identity'], note: string | undefined): string =>
  value === 'position'
    ? `position${note ? `: ${note}` : ''}`
    : `${note ? `${note}, else ` : ''}**none**`;

const HEADER = [
  'transport',
  'URL',
  'persistent',
  'groups',
  'order',
  'replay',
  'delivery',
  'max message',
  'id of a message without `ferry-id`',
];

/** The README promises table as rows of cells, header first. */
function promisesTable(): string[][] {
  const rows = TRANSPORTS.map((descriptor: TransportDescriptor) => {
    const { capabilities: c, notes = {} } = descriptor;
    return [
      descriptor.title,
      `\`${descriptor.exampleUrl}\``,
      yesNo(c.persistent, notes.persistent),
      yesNo(c.groups, notes.groups),
      `per ${c.order}${notes.order ? ` (${notes.order})` : ''}`,
      yesNo(c.replay, notes.replay),
      c.delivery === 'at-most-once'
        ? `**at-most-once${notes.delivery ? `: ${notes.delivery}` : ''}**`
        : `${c.delivery}${notes.delivery ? ` (${notes.delivery})` : ''}`,
      bytes(c.maxMessageBytes),
      identity(c.identity, notes.identity),
    ];
  });
  return [HEADER, ...rows];
}

/** The promises table as Markdown, columns aligned as Prettier aligns them. */
function promisesMarkdown(): string {
  const table = promisesTable();
  const widths = HEADER.map((_, i) => Math.max(3, ...table.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const [header = [], ...rows] = table;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const README_START = '<!-- promises table: rendered from src/transports/*/descriptor.ts -->';

/** The README table's rows as trimmed cells (Prettier may re-align them). */
function readmeTable(): string[][] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf(README_START);
  expect(start, 'README marks its promises table').toBeGreaterThan(-1);
  const lines = readme
    .slice(start + README_START.length)
    .trimStart()
    .split('\n');
  const end = lines.findIndex((line) => !line.startsWith('|'));
  return lines
    .slice(0, end)
    .filter((line) => !/^\|[\s-|]+\|$/.test(line))
    .map((line) =>
      line
        .slice(1, -1)
        .split('|')
        .map((cell) => cell.trim()),
    );
}

describe('transport descriptors', () => {
  it('are the README promises table', () => {
    expect(readmeTable(), `README table should read:\n${promisesMarkdown()}`).toEqual(
      promisesTable(),
    );
  });

  it('are the URL registry: every scheme of every descriptor, and nothing else', () => {
    expect(transportSchemes().sort()).toEqual(TRANSPORTS.flatMap((d) => d.schemes).sort());
  });

  // Transports connect on first use, so opening one reads its capabilities without a broker.
  it.each(TRANSPORTS.map((d) => [d.name, d] as const))(
    'are what the %s transport opened from its URL declares',
    async (_, descriptor: TransportDescriptor) => {
      for (const scheme of descriptor.schemes) {
        const url =
          descriptor.name === 'sqlite'
            ? 'sqlite::memory:'
            : descriptor.exampleUrl.replace(/^[a-z-]+:/, `${scheme}:`);
        const transport = await openTransport(url);
        expect(transport.name).toBe(descriptor.name);
        expect(transport.capabilities).toEqual(descriptor.capabilities);
        await transport.close({ timeoutMs: 100 });
      }
    },
  );

  it('are what advise weighs, for every transport it may recommend', () => {
    const advised = TRANSPORTS.filter((d) => 'advice' in d);
    expect(PROFILES.map((p) => p.transport)).toEqual(advised.map((d) => d.name));
    for (const profile of PROFILES) {
      const descriptor = advised.find((d) => d.name === profile.transport);
      const { maxMessageBytes: _bytes, ...capabilities } = descriptor?.capabilities ?? {};
      expect(profile.capabilities).toEqual(capabilities);
      expect(profile.url).toBe(descriptor?.exampleUrl);
    }
    // Redis Pub/Sub is at-most-once in its descriptor, so a no-loss need rules it out.
    expect(advise({ noLoss: true }).excluded.map((e) => e.transport)).toContain('redis');
  });
});
