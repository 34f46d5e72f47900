import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ferry as runFerry } from '../helpers/cli.js';
import { newMessageId, type Lease, type NewOutboxRecord } from '../../src/index.js';
import { destinationOf } from '../../src/cli/relay.js';
import { openSqliteDatabase, sqliteOutboxStore, sqliteTransaction } from '../../src/sqlite.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ferry = (...args: string[]) => runFerry(args, { cwd: dir });

describe('ferry command', () => {
  const url = `sqlite:${join(dir, 'cli.db')}`;

  it('publishes a message that tail --from earliest then shows', async () => {
    const published = await ferry(
      'publish',
      'order.created',
      '{"orderId":"o-7","amount":42}',
      '--key',
      'o-7',
      '-H',
      'x-source=cli',
      '-t',
      url,
    );
    expect(published.code).toBe(0);
    const id = /published (\S+)/.exec(published.stdout)?.[1];
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const tailed = await ferry(
      'tail',
      'order.created',
      '--from',
      'earliest',
      '--limit',
      '1',
      '--json',
      '-t',
      url,
    );
    expect(tailed.code).toBe(0);
    const line = JSON.parse(tailed.stdout.trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ id, key: 'o-7', payload: { orderId: 'o-7', amount: 42 } });
    expect((line.headers as Record<string, string>)['x-source']).toBe('cli');
  });

  it('replays a group and reports what will be delivered again', async () => {
    await ferry('publish', 'replayed', '{"n":1}', '-t', url);
    await ferry(
      'tail',
      'replayed',
      '--group',
      'g1',
      '--from',
      'earliest',
      '--limit',
      '1',
      '-t',
      url,
    );
    const lag = await ferry('tail', 'replayed', '--group', 'g1', '--lag', '-t', url);
    expect(lag.stdout).toContain('total lag: 0');
    const lagJson = await ferry('tail', 'replayed', '--group', 'g1', '--lag', '--json', '-t', url);
    expect(lagJson.code).toBe(0);
    const parsed = JSON.parse(lagJson.stdout) as {
      topic: string;
      group: string;
      partitions: Array<{ partition: number; committed: string | null; lag: number }>;
      total: number;
    };
    expect(parsed).toMatchObject({ topic: 'replayed', group: 'g1', total: 0 });
    expect(parsed.partitions.length).toBeGreaterThan(0);
    expect(parsed.partitions.some((p) => p.committed === '1')).toBe(true);
    const replay = await ferry(
      'replay',
      'replayed',
      '--group',
      'g1',
      '--to',
      'earliest',
      '-t',
      url,
    );
    expect(replay.code).toBe(0);
    expect(replay.stdout).toContain('1 messages will be delivered again');
  });

  it('outbox status --json prints one object with partitions and totals', async () => {
    const db = `sqlite:${join(dir, 'outbox.db')}`;
    const unmigrated = await ferry('outbox', 'status', '--db', db, '--json');
    expect(unmigrated.code).toBe(1);
    expect(unmigrated.stderr).toMatch(/^ferry: STORE_FAILED: .*ferry migrate/);
    expect((await ferry('migrate', '--db', `${db}?partitions=4`)).code).toBe(0);
    const { code, stdout } = await ferry('outbox', 'status', '--db', db, '--json');
    expect(code).toBe(0);
    const status = JSON.parse(stdout) as {
      partitions: Array<{ partition: number; pending: number; dead: number }>;
      total: { pending: number; dead: number; blocked: number };
    };
    expect(status.partitions.map((p) => p.partition)).toEqual([0, 1, 2, 3]);
    expect(status.total).toEqual({ pending: 0, dead: 0, blocked: 0 });
  });

  it('recommends kafka for no loss, replay and 20k msg/s, with reasons', async () => {
    const { code, stdout } = await ferry(
      'advise',
      '--no-loss',
      '--replay',
      '--tps',
      '20000',
      '--json',
    );
    expect(code).toBe(0);
    const advice = JSON.parse(stdout) as {
      transport: string;
      reasons: string[];
      excluded: { transport: string }[];
    };
    expect(advice.transport).toBe('kafka');
    expect(advice.reasons.join(' ')).toMatch(/replay/);
    expect(advice.excluded.map((e) => e.transport)).toContain('redis');
  });

  it('recommends rabbitmq for AMQP and redis pub/sub when loss is fine and ops must be simple', async () => {
    const amqp = JSON.parse((await ferry('advise', '--protocol', 'amqp', '--json')).stdout) as {
      transport: string;
    };
    expect(amqp.transport).toBe('rabbitmq');
    const simple = JSON.parse(
      (await ferry('advise', '--simple-ops', '--tps', '50000', '--json')).stdout,
    ) as {
      transport: string;
    };
    expect(simple.transport).toBe('redis');
  });

  it('gives clear errors for a bad URL, a bad topic name and a malformed payload', async () => {
    const badUrl = await ferry('publish', 'ok', '{}', '-t', 'carrier-pigeon://u:hunter2@loft');
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toContain('INVALID_URL');
    expect(badUrl.stderr).toContain('Supported: memory:, sqlite:');
    expect(badUrl.stderr).not.toContain('hunter2');

    const badTopic = await ferry('publish', 'no spaces; please', '{}', '-t', url);
    expect(badTopic.code).toBe(2);
    expect(badTopic.stderr).toContain('INVALID_NAME');

    const badPayload = await ferry('publish', 'ok', '{"orderId":', '-t', url);
    expect(badPayload.code).toBe(1);
    expect(badPayload.stderr).toContain('CODEC_FAILED');
    expect(badPayload.stderr).toContain('not valid JSON');
  });

  it('prints help for every command', async () => {
    for (const command of ['publish', 'tail', 'replay', 'redrive', 'advise']) {
      const { code, stdout } = await ferry(command, '--help');
      expect(code).toBe(0);
      expect(stdout).toContain(`Usage: ferry ${command}`);
    }
  });
});

describe('ferry outbox', () => {
  it('shows dead and blocked rows, and skips a dead row on request', async () => {
    const file = join(dir, 'blocked.db');
    const store = sqliteOutboxStore({ database: file, partitions: 1 });
    await store.migrate();
    const db = await openSqliteDatabase(file);
    const row = (key: string): NewOutboxRecord => ({
      id: newMessageId(),
      topic: 'cli.blocked',
      key,
      body: Buffer.from('{}'),
      headers: {},
      createdAt: new Date(),
    });
    const [dead, behind, other] = [row('a'), row('a'), row('b')];
    await sqliteTransaction(db, async (tx) => store.insert(tx, [dead, behind, other]));
    const [lease] = await store.acquire('cli-test', 1, 60_000);
    await store.markFailed('cli-test', lease as Lease, dead.id, 'refused', {
      dead: true,
      retryInMs: 0,
    });
    await store.release('cli-test', [0], true);

    const status = await ferry('outbox', 'status', '--db', `sqlite:${file}`, '--json');
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      partitions: [{ partition: 0, pending: 2, dead: 1, blocked: 1, blockedKeys: 1 }],
      total: { pending: 2, dead: 1, blocked: 1 },
    });
    const text = await ferry('outbox', 'status', '--db', `sqlite:${file}`);
    expect(text.stdout).toContain('2 pending (1 blocked), 1 dead');

    const skipped = await ferry('outbox', 'skip', dead.id, '--db', `sqlite:${file}`);
    expect(skipped.stdout).toContain('1 dead message(s) skipped');
    expect(
      JSON.parse((await ferry('outbox', 'status', '--db', `sqlite:${file}`, '--json')).stdout),
    ).toMatchObject({ partitions: [{ pending: 2, dead: 0, blocked: 0 }] });
    expect((await store.readPending(0, 10)).map((r) => r.id)).toEqual([behind.id, other.id]);
    await store.close();
    db.close();
  });

  it('registers a relay by the scheme and hosts of its transport, never its credentials', () => {
    expect(destinationOf('amqp://guest:secret@10.0.0.2:5672/vhost?heartbeat=5')).toBe(
      'amqp://10.0.0.2:5672',
    );
    expect(destinationOf('kafka://b2:9092,b1:9092')).toBe('kafka://b1:9092,b2:9092');
    expect(destinationOf('sqlite:./log.db')).toBe(`sqlite:${resolve('./log.db')}`);
  });
});
