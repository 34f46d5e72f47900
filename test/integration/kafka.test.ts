import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createBus,
  createLogger,
  defineTopic,
  HEADER,
  isFerryError,
  type Bus,
  type Delivery,
  type Transport,
} from '../../src/index.js';
import { openTransport } from '../../src/transport/urls.js';
import { kafka, type KafkaTransportOptions } from '../../src/transports/kafka/index.js';
import { serviceUrl } from '../helpers/services.js';
import { delay, uniqueName, waitFor } from '../helpers/wait.js';

const brokers = serviceUrl('FERRY_KAFKA_BROKERS');
const fast = {
  sessionTimeoutMs: 6000,
  heartbeatIntervalMs: 200,
  rebalanceTimeoutMs: 10_000,
  maxWaitMs: 200,
};

/** kcat, with librdkafka's murmur2 partitioner so keys land where Java clients put them. */
async function kcat(args: string[], input?: string): Promise<string> {
  const child = execFile('kcat', [
    '-b',
    brokers as string,
    '-X',
    'topic.partitioner=murmur2_random',
    ...args,
  ]);
  const output = new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`kcat ${code}: ${err}`)),
    );
  });
  child.stdin?.end(input ?? '');
  return output;
}

interface KcatRecord {
  partition: number;
  offset: number;
  key: string | null;
  payload: string | null;
  headers?: string[];
}

describe.skipIf(brokers === undefined)('kafka integration', () => {
  const open: Array<Transport | Bus> = [];
  const children: ChildProcess[] = [];
  const client = (options: Partial<KafkaTransportOptions> = {}): Transport => {
    const transport = kafka({ brokers: brokers as string, partitions: 3, ...fast, ...options });
    open.push(transport);
    return transport;
  };
  afterEach(async () => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
    await Promise.all(open.splice(0).map((c) => c.close({ timeoutMs: 1000 })));
  });

  it('publishes what kcat reads: key, headers, JSON body, murmur2 partition', async () => {
    const bus = createBus({ transport: client(), logger: createLogger({ level: 'silent' }) });
    open.push(bus);
    const topic = defineTopic<{ orderId: string; amount: number }>(uniqueName('it.kcat.out'));
    const receipt = await bus.publish(
      topic,
      { orderId: 'o-7', amount: 42 },
      { key: 'customer-9', headers: { 'x-trace': 't-1' } },
    );
    const out = await kcat([
      '-C',
      '-t',
      topic.name,
      '-o',
      'beginning',
      '-c',
      '1',
      '-e',
      '-J',
      '-q',
    ]);
    const record = JSON.parse(out.trim()) as KcatRecord;
    expect(record.key).toBe('customer-9');
    expect(JSON.parse(record.payload ?? 'null')).toEqual({ orderId: 'o-7', amount: 42 });
    const headers = new Map<string, string>();
    for (let i = 0; i + 1 < (record.headers?.length ?? 0); i += 2) {
      headers.set(record.headers?.[i] as string, record.headers?.[i + 1] as string);
    }
    expect(headers.get(HEADER.id)).toBe(receipt.id);
    expect(headers.get(HEADER.contentType)).toBe('application/json');
    expect(headers.get('x-trace')).toBe('t-1');
    expect(Number.isNaN(Date.parse(headers.get(HEADER.createdAt) ?? ''))).toBe(false);

    // The same keys through kcat (librdkafka's murmur2) land in the same partitions.
    const keys = ['customer-9', 'a', 'order-12345', 'ß-key', 'k4', 'k5'];
    await bus.publishMany(
      topic,
      keys.slice(1).map((key) => ({ key, payload: { orderId: key, amount: 1 } })),
    );
    await kcat(['-P', '-t', topic.name, '-K', ':'], keys.map((key) => `${key}:{}\n`).join(''));
    const all = await kcat([
      '-C',
      '-t',
      topic.name,
      '-o',
      'beginning',
      '-c',
      '12',
      '-e',
      '-J',
      '-q',
    ]);
    const byKey = new Map<string, Set<number>>();
    for (const line of all.trim().split('\n')) {
      const { key, partition } = JSON.parse(line) as KcatRecord;
      byKey.set(key ?? '', (byKey.get(key ?? '') ?? new Set()).add(partition));
    }
    expect(byKey.size).toBe(keys.length);
    for (const partitions of byKey.values()) expect(partitions.size).toBe(1);
    expect(new Set([...byKey.values()].flatMap((p) => [...p])).size).toBeGreaterThan(1);
  });

  it('consumes a plain message produced by kcat, with an id derived from its position', async () => {
    const transport = client();
    const topic = uniqueName('it.kcat.in');
    const got: Delivery[] = [];
    const bus = createBus({ transport, logger: createLogger({ level: 'silent' }) });
    open.push(bus);
    const ids: string[] = [];
    await bus.subscribe(
      defineTopic<{ n: number }>(topic),
      { group: uniqueName('g') },
      async (message, { delivery }) => {
        got.push(delivery);
        ids.push(message.id);
        expect(message.payload).toEqual({ n: 1 });
      },
    );
    await kcat(['-P', '-t', topic, '-K', ':'], 'plain-key:{"n":1}\n');
    await waitFor('the kcat message', () => got.length === 1);
    const [delivery] = got as [Delivery];
    expect(delivery.key).toBe('plain-key');
    expect(delivery.headers).toEqual({});
    expect(ids).toEqual([`${topic}/${delivery.partition}/${delivery.offset}`]);
  });

  it('hands every message out after a consumer is SIGKILLed mid-batch (at-least-once)', async () => {
    const transport = client();
    const topic = uniqueName('it.crash');
    const group = uniqueName('g');
    const total = 300;
    await transport.publish(
      Array.from({ length: total }, (_, i) => ({
        topic,
        key: `k${i % 13}`,
        body: Buffer.from(String(i)),
        headers: { [HEADER.id]: `${topic}-${i}` },
      })),
    );
    const seen = new Map<string, number>();
    const worker = fileURLToPath(new URL('./kafka-worker.ts', import.meta.url));
    const start = (): ChildProcess => {
      const child = spawn(process.execPath, ['--import', 'tsx', worker], {
        env: { ...process.env, TOPIC: topic, GROUP: group },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(child);
      let rest = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        const lines = (rest + chunk.toString()).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) if (line !== 'ready') seen.set(line, (seen.get(line) ?? 0) + 1);
      });
      return child;
    };
    const first = start();
    await waitFor('the first consumer to be mid-way', () => seen.size >= total / 3, 30_000);
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('close', resolve));
    const handledBeforeCrash = seen.size;
    expect(handledBeforeCrash).toBeLessThan(total);

    start();
    await waitFor('every message', () => seen.size === total, 45_000);
    const redelivered = [...seen.values()].reduce((sum, n) => sum + n - 1, 0);
    console.info(
      `crash test: ${handledBeforeCrash}/${total} handled before SIGKILL, ${redelivered} redelivered`,
    );
    expect([...seen.keys()].map(Number).sort((a, b) => a - b)).toEqual(
      Array.from({ length: total }, (_, i) => i),
    );
  }, 60_000);

  it('loses nothing while members join and leave during a stream of messages', async () => {
    const publisher = client();
    const topic = uniqueName('it.rebalance');
    const group = uniqueName('g');
    const seen = new Map<string, number>();
    const handler = async (d: Delivery): Promise<void> => {
      await delay(1);
      const body = d.body.toString();
      seen.set(body, (seen.get(body) ?? 0) + 1);
    };
    const first = await client().subscribe({ topic, group }, handler);
    let sent = 0;
    const burst = async (count: number): Promise<void> => {
      await publisher.publish(
        Array.from({ length: count }, () => {
          const n = sent++;
          return { topic, key: `k${n % 17}`, body: Buffer.from(String(n)), headers: {} };
        }),
      );
    };
    await burst(200);
    const second = await client().subscribe({ topic, group }, handler);
    await burst(200);
    const third = await client().subscribe({ topic, group }, handler);
    await burst(200);
    await first.close();
    await burst(200);
    await second.close({ timeoutMs: 50 });
    await burst(200);
    await waitFor('every message', () => seen.size === sent, 30_000).catch((error: unknown) => {
      // Tells a stall (messages still arriving) from a loss (the same ones missing for good).
      const missing = Array.from({ length: sent }, (_, i) => i).filter((n) => !seen.has(String(n)));
      throw new Error(
        `${String(error)}: ${missing.length} of ${sent} missing, keys ${[...new Set(missing.map((n) => `k${n % 17}`))].join(' ')}, first ${missing.slice(0, 10).join(' ')}`,
        { cause: error },
      );
    });
    await third.close();
    expect([...seen.keys()].map(Number).sort((a, b) => a - b)).toEqual(
      Array.from({ length: sent }, (_, i) => i),
    );
  });

  it('replays a group by offset and by timestamp, and reports lag', async () => {
    const transport = client({ partitions: 1 });
    const topic = uniqueName('it.replay');
    const group = uniqueName('g');
    const send = (from: number, to: number) =>
      transport.publish(
        Array.from({ length: to - from }, (_, i) => ({
          topic,
          key: undefined,
          body: Buffer.from(String(from + i)),
          headers: {},
        })),
      );
    const consume = async (expected: number): Promise<string[]> => {
      const got: string[] = [];
      const subscription = await transport.subscribe({ topic, group }, async (d) => {
        got.push(`${d.offset}:${d.body.toString()}`);
      });
      await waitFor(`${expected} messages`, () => got.length >= expected);
      await delay(200);
      await subscription.close();
      return got;
    };
    await send(0, 6);
    await delay(50);
    const middle = new Date();
    await delay(50);
    await send(6, 10);

    expect(await consume(10)).toHaveLength(10);
    expect(await transport.lag?.(topic, group)).toEqual([
      { partition: 0, committed: '10', end: '10', lag: 0 },
    ]);

    await transport.seek(topic, group, { offsets: { 0: '7' } });
    expect(await transport.lag?.(topic, group)).toEqual([
      { partition: 0, committed: '7', end: '10', lag: 3 },
    ]);
    expect(await consume(3)).toEqual(['7:7', '8:8', '9:9']);

    await transport.seek(topic, group, { timestamp: middle });
    expect(await consume(4)).toEqual(['6:6', '7:7', '8:8', '9:9']);

    await transport.seek(topic, group, { position: 'latest' });
    await send(10, 11);
    expect(await consume(1)).toEqual(['10:10']);
  });

  it('refuses to move a group that has live members', async () => {
    const transport = client();
    const topic = uniqueName('it.live');
    const group = uniqueName('g');
    const subscription = await transport.subscribe({ topic, group }, async () => undefined);
    const error: unknown = await transport
      .seek(topic, group, { position: 'earliest' })
      .catch((e: unknown) => e);
    expect(isFerryError(error, 'INVALID_ARGUMENT')).toBe(true);
    expect((error as Error).message).toContain('live member');
    await subscription.close();
    await transport.seek(topic, group, { position: 'earliest' });
  });

  it('maps the broker refusing an oversized record to MESSAGE_TOO_LARGE', async () => {
    const transport = client({ maxMessageBytes: 4 * 1024 * 1024 });
    const error: unknown = await transport
      .publish([
        { topic: uniqueName('it.big'), key: 'k', body: Buffer.alloc(2 * 1024 * 1024), headers: {} },
      ])
      .catch((e: unknown) => e);
    expect(isFerryError(error, 'MESSAGE_TOO_LARGE')).toBe(true);
  });

  it('fails with CONNECTION_FAILED, in bounded time, when no broker listens', async () => {
    const transport = kafka({
      brokers: '127.0.0.1:1',
      connectTimeoutMs: 500,
      retries: 1,
      retryDelayMs: 100,
    });
    open.push(transport);
    const error: unknown = await transport
      .publish([{ topic: 'nowhere', key: undefined, body: Buffer.from('x'), headers: {} }])
      .catch((e: unknown) => e);
    expect(isFerryError(error, 'CONNECTION_FAILED')).toBe(true);
    const subscribeError: unknown = await transport
      .subscribe({ topic: 'nowhere', group: 'g' }, async () => undefined)
      .catch((e: unknown) => e);
    expect(isFerryError(subscribeError, 'CONNECTION_FAILED')).toBe(true);
  });

  it('opens from a kafka:// URL with several hosts', async () => {
    const transport = await openTransport(
      `kafka://${brokers as string},${brokers as string}?partitions=2`,
    );
    open.push(transport);
    expect(transport.name).toBe('kafka');
    const topic = uniqueName('it.url');
    const got: string[] = [];
    await transport.subscribe({ topic }, async (d) => void got.push(d.body.toString()));
    await transport.publish([{ topic, key: 'a', body: Buffer.from('hi'), headers: {} }]);
    await waitFor('the message', () => got.length === 1);
    expect(got).toEqual(['hi']);
    expect((await transport.lag?.(topic, 'nobody'))?.map((p) => p.partition)).toEqual([0, 1]);
  });
});
