import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ferry as runFerry } from '../helpers/cli.js';

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
      total: { pending: number; dead: number };
    };
    expect(status.partitions.map((p) => p.partition)).toEqual([0, 1, 2, 3]);
    expect(status.total).toEqual({ pending: 0, dead: 0 });
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
