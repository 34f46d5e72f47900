import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  createBus,
  createLogger,
  defineTopic,
  FerryError,
  HEADER,
  type Bus,
  type Delivery,
  type Message,
  type OutgoingMessage,
  type Subscription,
  type Transport,
} from '../../src/index.js';
import { redisPubSub, redisStreams } from '../../src/transports/redis/index.js';
import { openTransport } from '../../src/transport/urls.js';
import { deleteKeys } from '../helpers/redis.js';
import { serviceUrl } from '../helpers/services.js';
import { delay, uniqueName, waitFor } from '../helpers/wait.js';

const run = promisify(execFile);
const url = serviceUrl('FERRY_REDIS_URL');
const prefix = `${uniqueName('ferry-it')}:`;
const silent = createLogger({ level: 'silent' });

describe.skipIf(url === undefined)('redis transports against a real Redis', () => {
  const redisUrl = url as string;
  const open: Array<Transport | Bus> = [];
  const subscriptions: Subscription[] = [];
  const children: ChildProcess[] = [];
  const clients: Redis[] = [];

  const track = <T extends Transport | Bus>(made: T): T => {
    open.push(made);
    return made;
  };
  const bus = (transport: Transport): Bus =>
    track(createBus({ transport: track(transport), logger: silent }));
  const admin = (): Redis => {
    const client = new Redis(redisUrl);
    clients.push(client);
    return client;
  };
  const cli = async (...args: string[]): Promise<string> =>
    (await run('redis-cli', ['-u', redisUrl, ...args])).stdout;

  afterEach(async () => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
    await Promise.all(subscriptions.splice(0).map((s) => s.close({ timeoutMs: 1000 })));
    await Promise.all(open.splice(0).map((c) => c.close({ timeoutMs: 1000 })));
    for (const client of clients.splice(0)) client.disconnect();
  });
  afterAll(async () => {
    await deleteKeys(redisUrl, prefix);
  });

  describe('Pub/Sub', () => {
    it('delivers to every live subscriber and loses what was published while none listened', async () => {
      const publisher = bus(redisPubSub({ url: redisUrl, prefix }));
      const topic = defineTopic<string>(uniqueName('it.pubsub'));
      await publisher.publish(topic, 'nobody-listens');

      const heard: [string[], string[]] = [[], []];
      for (const list of heard) {
        const consumer = bus(redisPubSub({ url: redisUrl, prefix }));
        subscriptions.push(
          await consumer.subscribe(topic, {}, async (m) => void list.push(m.payload)),
        );
      }
      await publisher.publish(topic, 'heard');
      await waitFor('both subscribers to hear', () =>
        heard.every((list) => list.includes('heard')),
      );
      // At-most-once, as documented: the message published before anyone subscribed is gone.
      expect(heard).toEqual([['heard'], ['heard']]);
    });

    it('does not hand out again a message whose handler failed', async () => {
      const transport = track(redisPubSub({ url: redisUrl, prefix }));
      const topic = uniqueName('it.pubsub-fail');
      const calls: string[] = [];
      subscriptions.push(
        await transport.subscribe({ topic }, async (delivery: Delivery) => {
          calls.push(delivery.body.toString());
          if (delivery.body.toString() === 'A') throw new Error('fails once');
        }),
      );
      await transport.publish(
        ['A', 'B'].map((body) => ({ topic, key: 'k', headers: {}, body: Buffer.from(body) })),
      );
      await waitFor('B', () => calls.includes('B'));
      expect(calls).toEqual(['A', 'B']);
    });

    it('resubscribes after its connection is killed', async () => {
      const connectionName = uniqueName('ferry-sub');
      const consumer = bus(redisPubSub({ url: redisUrl, prefix, redis: { connectionName } }));
      const topic = defineTopic<string>(uniqueName('it.resubscribe'));
      const got: string[] = [];
      subscriptions.push(
        await consumer.subscribe(topic, {}, async (m) => void got.push(m.payload)),
      );
      const redis = admin();
      const subscriberIds = async (): Promise<string[]> => {
        const list = String(await redis.call('CLIENT', 'LIST'));
        return list
          .split('\n')
          .filter((line) => line.includes(`name=${connectionName} `) && /\bsub=[1-9]/.test(line))
          .map((line) => /\bid=(\d+)/.exec(line)?.[1] ?? '');
      };
      const [before] = await subscriberIds();
      expect(before).toBeTruthy();
      await redis.call('CLIENT', 'KILL', 'ID', before as string);
      const channel = prefix + topic.name;
      await waitFor('the subscriber to come back', async () => {
        const ids = await subscriberIds();
        const counts = (await redis.pubsub('NUMSUB', channel)) as [string, number];
        return ids.length === 1 && ids[0] !== before && Number(counts[1]) === 1;
      });
      await bus(redisPubSub({ url: redisUrl, prefix })).publish(topic, 'after-reconnect');
      await waitFor('the message after reconnecting', () => got.includes('after-reconnect'));
      expect(got).toEqual(['after-reconnect']);
    });

    it('subscribes to channel patterns when asked', async () => {
      const transport = track(redisPubSub({ url: redisUrl, prefix, patterns: true }));
      const base = uniqueName('it.pattern');
      const got: string[] = [];
      subscriptions.push(
        await transport.subscribe({ topic: `${base}.*` }, async (delivery: Delivery) => {
          got.push(`${delivery.topic}=${delivery.body.toString()}`);
        }),
      );
      await transport.publish(
        ['created', 'paid'].map((event) => ({
          topic: `${base}.${event}`,
          key: undefined,
          headers: {},
          body: Buffer.from(event),
        })),
      );
      await waitFor('two channels', () => got.length === 2);
      expect(got.sort()).toEqual([`${base}.created=created`, `${base}.paid=paid`]);
    });

    it('is readable by redis-cli SUBSCRIBE, and delivers what redis-cli PUBLISH sends', async () => {
      const transport = track(redisPubSub({ url: redisUrl, prefix }));
      const b = bus(transport);
      const topic = defineTopic<{ orderId: string }>(uniqueName('it.cli'));
      const channel = prefix + topic.name;
      const child = spawn('redis-cli', ['-u', redisUrl, 'SUBSCRIBE', channel]);
      children.push(child);
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const redis = admin();
      await waitFor('redis-cli to subscribe', async () => {
        const counts = (await redis.pubsub('NUMSUB', channel)) as [string, number];
        return Number(counts[1]) === 1;
      });
      const receipt = await b.publish(topic, { orderId: 'o-1' }, { key: 'order-1' });
      await waitFor('redis-cli to print the message', () => output.includes(receipt.id));
      const line = output.split('\n').find((text) => text.startsWith('{')) as string;
      const envelope = JSON.parse(line) as Record<string, unknown>;
      expect(envelope).toMatchObject({
        id: receipt.id,
        key: 'order-1',
        headers: { [HEADER.id]: receipt.id, [HEADER.contentType]: 'application/json' },
        body: '{"orderId":"o-1"}',
      });

      const raw: Delivery[] = [];
      subscriptions.push(
        await transport.subscribe({ topic: topic.name }, async (d: Delivery) => void raw.push(d)),
      );
      await cli('PUBLISH', channel, 'plain text');
      await waitFor('the plain message', () => raw.length === 1);
      expect(raw[0]?.body.toString()).toBe('plain text');
      expect(raw[0]?.headers).toEqual({});
    });
  });

  describe('Streams', () => {
    const streams = (extra: Parameters<typeof redisStreams>[0] = {}): Transport =>
      redisStreams({ url: redisUrl, prefix, sessionTimeoutMs: 1000, blockMs: 500, ...extra });

    it('refuses a reply shape it does not read (RESP3, a non-legacy replyMapping)', async () => {
      const topic = defineTopic<string>(uniqueName('it.resp'));
      for (const redis of [{ protocol: 3 }, { replyMapping: 'resp3' }]) {
        const transport = track(streams({ redis: redis as never }));
        const error = await bus(transport)
          .publish(topic, 'x')
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(FerryError);
        expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
        expect((error as Error).message).toContain(Object.keys(redis)[0]);
      }
    });

    it('keeps what was published while no consumer ran and delivers it later', async () => {
      const topic = defineTopic<string>(uniqueName('it.keep'));
      const group = uniqueName('g');
      const publisher = bus(streams());
      const first: string[] = [];
      const consumer = await bus(streams()).subscribe(topic, { group }, async (m) => {
        first.push(m.payload);
      });
      await publisher.publish(topic, 'm1');
      await waitFor('m1', () => first.includes('m1'));
      await consumer.close();

      await publisher.publishMany(topic, [{ payload: 'm2' }, { payload: 'm3' }]);
      expect(await publisher.transport.lag?.(topic.name, group)).toEqual([
        expect.objectContaining({ partition: 0, lag: 2 }),
      ]);
      const later: string[] = [];
      subscriptions.push(
        await bus(streams()).subscribe(topic, { group }, async (m) => void later.push(m.payload)),
      );
      await waitFor('m2 and m3', () => later.length === 2);
      expect(later).toEqual(['m2', 'm3']);
    });

    it('reclaims the pending messages of a consumer killed with SIGKILL', async () => {
      const topic = defineTopic<string>(uniqueName('it.reclaim'));
      const group = uniqueName('g');
      const sessionTimeoutMs = 1000;
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          'test/fixtures/redis-streams-consumer.ts',
          redisUrl,
          prefix,
          topic.name,
          group,
          String(sessionTimeoutMs),
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      children.push(child);
      let output = '';
      child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      await waitFor('the child consumer', () => output.includes('ready'));

      const publisher = bus(streams());
      const payloads = ['p1', 'p2', 'p3', 'p4'];
      await publisher.publishMany(
        topic,
        payloads.map((payload) => ({ payload, key: 'same-key' })),
      );
      await waitFor('the child to take p1', () => output.includes('got "p1"'));
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));

      const got: Message<string>[] = [];
      subscriptions.push(
        await bus(streams({ sessionTimeoutMs })).subscribe(topic, { group }, async (m) => {
          got.push(m);
        }),
      );
      await waitFor('every message, p1 included', () => got.length === payloads.length);
      expect(got.map((m) => m.payload)).toEqual(payloads);
      // What the child held was claimed, so the group dropped its name.
      const consumers = (await admin().xinfo(
        'CONSUMERS',
        prefix + topic.name,
        group,
      )) as unknown[][];
      expect(consumers).toHaveLength(1);
    });

    it('reads without a group from the end, or from the start when asked', async () => {
      const topic = defineTopic<string>(uniqueName('it.private'));
      const b = bus(streams({ partitions: 3 }));
      await b.publishMany(
        topic,
        ['old-1', 'old-2'].map((payload) => ({ payload, key: payload })),
      );
      const latest: string[] = [];
      const earliest: string[] = [];
      subscriptions.push(await b.subscribe(topic, {}, async (m) => void latest.push(m.payload)));
      subscriptions.push(
        await b.subscribe(topic, { from: 'earliest' }, async (m) => void earliest.push(m.payload)),
      );
      await b.publishMany(
        topic,
        ['new-1', 'new-2', 'new-3'].map((payload) => ({ payload, key: payload })),
      );
      await waitFor('all messages', () => latest.length === 3 && earliest.length === 5);
      expect(latest.sort()).toEqual(['new-1', 'new-2', 'new-3']);
      expect(earliest.sort()).toEqual(['new-1', 'new-2', 'new-3', 'old-1', 'old-2']);
    });

    it('consumes entries added by redis-cli XADD and writes entries redis-cli reads', async () => {
      const topic = defineTopic<Record<string, unknown>>(uniqueName('it.xadd'));
      const stream = prefix + topic.name;
      const b = bus(streams());
      const got: Message<Record<string, unknown>>[] = [];
      subscriptions.push(
        await b.subscribe(topic, { group: uniqueName('g') }, async (m) => void got.push(m)),
      );
      const first = (await cli('XADD', stream, '*', 'body', '{"orderId":"o-1"}')).trim();
      await cli('XADD', stream, '*', 'orderId', 'o-2', 'amount', '5');
      await waitFor('both entries', () => got.length === 2);
      expect(got.map((m) => m.payload)).toEqual([
        { orderId: 'o-1' },
        { orderId: 'o-2', amount: '5' },
      ]);
      expect(got[0]?.id).toBe(`${topic.name}/0/${first}`);

      const receipt = await b.publish(topic, { orderId: 'o-3' }, { key: 'order-3' });
      const shown = await cli('XREVRANGE', stream, '+', '-', 'COUNT', '1');
      const lines = shown.trim().split('\n');
      const field = (name: string): string | undefined => lines[lines.indexOf(name) + 1];
      expect(field(HEADER.id)).toBe(receipt.id);
      expect(field('ferry-key')).toBe('order-3');
      expect(lines.at(-2)).toBe('body');
      expect(lines.at(-1)).toBe('{"orderId":"o-3"}');
    });

    it('trims streams to about retention.maxCount and opens from a redis-streams URL', async () => {
      const transport = track(
        await openTransport(
          `${redisUrl.replace(/^redis:/, 'redis-streams:')}?prefix=${encodeURIComponent(prefix)}&partitions=2&maxCount=10`,
        ),
      );
      expect(transport.name).toBe('redis-streams');
      const topic = uniqueName('it.trim');
      for (let round = 0; round < 10; round++) {
        await transport.publish(
          Array.from({ length: 100 }, (_, i) => ({
            topic,
            key: `k${i}`,
            headers: {},
            body: Buffer.from(String(i)),
          })),
        );
      }
      const redis = admin();
      const [first = 0, second = 0] = await Promise.all(
        [0, 1].map((p) => redis.xlen(`${prefix}${topic}:${p}`)),
      );
      // Approximate trimming removes whole radix-tree nodes (100 entries by default), so
      // each stream keeps at least 10 and far fewer than the 500 or so it was sent.
      for (const length of [first, second]) {
        expect(length).toBeGreaterThanOrEqual(10);
        expect(length).toBeLessThan(500);
      }
    });

    it('trims entries older than retention.maxAgeMs when publishing', async () => {
      const transport = track(
        redisStreams({ url: redisUrl, prefix, retention: { maxAgeMs: 1000 } }),
      );
      const topic = uniqueName('it.age');
      const batch = (round: number): OutgoingMessage[] =>
        Array.from({ length: 100 }, (_, i) => ({
          topic,
          key: `k${i}`,
          headers: {},
          body: Buffer.from(`${round}:${i}`),
        }));
      for (let round = 0; round < 10; round++) await transport.publish(batch(round));
      await delay(1500);
      await transport.publish(batch(10));
      // Whole nodes older than the limit went with the last publish; its own batch stays.
      const redis = admin();
      const length = await redis.xlen(`${prefix}${topic}`);
      expect(length).toBeLessThan(500);
      const newest = await redis.xrevrange(`${prefix}${topic}`, '+', '-', 'COUNT', 100);
      expect(newest.map(([, fields]) => fields.at(-1))).toEqual(
        Array.from({ length: 100 }, (_, i) => `10:${99 - i}`),
      );
    });

    it('refuses the renamed maxLen and claimIdleMs with their new names', async () => {
      for (const old of [{ maxLen: 10 }, { claimIdleMs: 1000 }]) {
        expect(() => redisStreams({ url: redisUrl, ...old })).toThrow(
          expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
        );
      }
      const refused = await openTransport(
        `${redisUrl.replace(/^redis:/, 'redis-streams:')}?maxLen=10`,
      ).catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: 'INVALID_URL' });
      expect(String(refused)).toContain('maxCount');
    });
  });
});

describe('redis transports and a Redis Cluster node', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-redis-cluster-'));
  let server: ChildProcess | undefined;
  afterAll(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((resolve) => server?.once('exit', resolve));
      server.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a node of a Redis Cluster with UNSUPPORTED, saying why', async () => {
    const port = await freePort();
    server = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, 'nodes.conf'),
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
      ],
      { stdio: 'ignore' },
    );
    const nodeUrl = `redis://127.0.0.1:${port}`;
    await waitFor('the cluster node to answer', async () => {
      const probe = new Redis(nodeUrl, { lazyConnect: true, maxRetriesPerRequest: 0 });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        return (await probe.info('cluster')).includes('cluster_enabled:1');
      } catch {
        return false;
      } finally {
        probe.disconnect();
      }
    });
    for (const transport of [
      redisStreams({ url: nodeUrl, prefix }),
      redisPubSub({ url: nodeUrl, prefix }),
    ]) {
      const refused: unknown = await transport
        .publish([{ topic: 't', key: undefined, body: Buffer.from('x'), headers: {} }])
        .then(
          () => undefined,
          (error: unknown) => error,
        );
      expect(refused).toBeInstanceOf(FerryError);
      expect(refused).toMatchObject({ code: 'UNSUPPORTED' });
      expect((refused as FerryError).message).toMatch(/Redis Cluster.*cluster_enabled:1/);
      await transport.close({ timeoutMs: 1000 });
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const listener = createServer();
    listener.once('error', reject);
    listener.listen(0, '127.0.0.1', () => {
      const { port } = listener.address() as AddressInfo;
      listener.close(() => resolve(port));
    });
  });
}
