import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sqliteFilePath } from '../../src/transports/sqlite/path.js';
import { ferry } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-usage-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const db = ['--db', 'sqlite:./usage.db'];
const t = ['-t', 'memory:'];

/** A bad value for each option that checks one: [command line, the option the message must name, what it must say is accepted]. */
const badValues: Array<[string[], string, RegExp]> = [
  [['tail', 'topic', '-n', '0', ...t], '--limit', /whole number >= 1/],
  [['tail', 'topic', '--from', 'yesterday', ...t], '--from', /earliest, latest, an ISO time/],
  [['publish', 'topic', '{}', '-H', 'nohdr', ...t], '--header', /name=value/],
  [['publish', 'topic', '-f', './missing.json', ...t], '--file', /readable file/],
  [['advise', '--tps', '-5'], '--tps', /number >= 0/],
  [['advise', '--tps', 'many'], '--tps', /number >= 0/],
  [['advise', '--protocol', 'mqtt'], '--protocol', /amqp, stomp/],
  [['relay', ...db, ...t, '--lease-ms', '0'], '--lease-ms', /whole number >= 1/],
  [['relay', ...db, ...t, '--batch-size', '1.5'], '--batch-size', /whole number >= 1/],
  [['relay', ...db, ...t, '--max-attempts', 'x'], '--max-attempts', /whole number >= 1/],
  [['relay', ...db, ...t, '--gather', '-5ms'], '--gather', /duration such as .*0 \(at once\)/],
  [['relay', ...db, ...t, '--stats', '5x'], '--stats', /duration such as .*0 \(never\)/],
  [['relay', ...db, ...t, '--stop-timeout', 'soon'], '--stop-timeout', /duration such as/],
  [['relay', ...db, ...t, '--retention', '-1d'], '--retention', /duration such as .*'keep'/],
  [['demo', '--orders', '0'], '--orders', /whole number >= 1/],
  [['demo', '--relays', 'two'], '--relays', /whole number >= 1/],
  [['demo', '--stall-timeout', '0'], '--stall-timeout', /whole number >= 1/],
  [['redrive', 'topic', '-n', 'abc', ...t], '--limit', /whole number >= 1/],
  [['replay', 'topic', '-g', 'g', '--to', 'start', ...t], '--to', /earliest, latest/],
  [['outbox', 'republish', ...db, '--since', 'lately'], '--since', /ISO time .* how long ago/],
];

/** Command lines that cannot run for another reason: [command line, what the one line says]. */
const badCommandLines: Array<[string[], RegExp]> = [
  [['pubish', 'topic'], /unknown command 'pubish'/],
  [['tail', ...t], /missing required argument 'topic'/],
  [['migrate'], /required option '-d, --db <url>' not specified/],
  [['replay', 'topic', '--to', 'earliest', ...t], /required option '-g, --group <group>'/],
  [['tail', 'topic', '--colour', ...t], /unknown option '--colour'/],
  [['publish', 'topic', '{}', '-t', 'sqlite://typo.db'], /INVALID_URL/],
  [['migrate', '--db', 'sqlite://typo.db'], /INVALID_URL/],
  [['publish', 'bad topic!', '{}', ...t], /INVALID_NAME/],
  [['tail', 'topic', '--lag', ...t], /INVALID_ARGUMENT: --lag needs --group/],
];

const commands = [
  'publish',
  'tail',
  'replay',
  'redrive',
  'advise',
  'demo',
  'migrate',
  'relay',
  'outbox',
  'outbox status',
  'outbox retry',
  'outbox republish',
];

describe('ferry with a bad command line', () => {
  it.each(badValues)('%j: one line naming the option, exit 2', async (args, option, accepted) => {
    const { code, stdout, stderr } = await ferry(args, { cwd: dir });
    expect(code).toBe(2);
    expect(stdout).toBe('');
    const lines = stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ferry: option '/);
    expect(lines[0]).toContain(option);
    expect(lines[0]).toMatch(accepted);
  });

  it.each(badCommandLines)('%j: says why, without a stack, exit 2', async (args, message) => {
    const { code, stderr } = await ferry(args, { cwd: dir });
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
    expect(stderr).toMatch(/^ferry: /);
    expect(stderr).not.toMatch(/^\s+at /m);
  });

  it.each(commands)('ferry %s --help', async (command) => {
    const { code, stdout } = await ferry([...command.split(' '), '--help'], { cwd: dir });
    expect(code).toBe(0);
    expect(stdout).toContain(`Usage: ferry ${command}`);
  });

  it('a relay whose database has no outbox tables stops and exits 1 with the migrate hint', async () => {
    const { code, stderr } = await ferry(['relay', '--db', 'sqlite:./empty.db', ...t], {
      cwd: dir,
    });
    expect(code).toBe(1);
    expect(stderr).toMatch(/^ferry: STORE_FAILED: .*run ferry migrate/);
  });

  it('a relay whose PostgreSQL is unreachable says CONNECTION_FAILED, not to migrate', async () => {
    const { code, stderr } = await ferry(
      ['relay', '--db', 'postgres://postgres:Zq9@secret@127.0.0.1:1/test', ...t],
      { cwd: dir },
    );
    expect(code).toBe(1);
    expect(stderr).toMatch(/^ferry: CONNECTION_FAILED: .*ECONNREFUSED/);
    expect(stderr).not.toMatch(/migrate/);
    expect(stderr).not.toContain('secret');
  });
});

describe('sqlite: URLs', () => {
  it.each([
    ['sqlite:./x.db', './x.db'],
    ['sqlite:x.db', 'x.db'],
    ['sqlite:///abs/x.db', '/abs/x.db'],
    ['sqlite:/abs/x.db', '/abs/x.db'],
    ['sqlite:./with%20space.db?partitions=4', './with space.db'],
  ])('%s is the file %s', (url, path) => {
    expect(sqliteFilePath(new URL(url))).toBe(path);
  });

  it.each(['sqlite:', 'sqlite://typo.db', 'sqlite://rel/x.db', 'sqlite://localhost/abs.db'])(
    '%s is INVALID_URL, never another file',
    (url) => {
      expect(() => sqliteFilePath(new URL(url))).toThrow(
        expect.objectContaining({ code: 'INVALID_URL' }),
      );
    },
  );
});
