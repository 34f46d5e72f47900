import { afterEach, describe, expect, it } from 'vitest';
import {
  createLogger,
  createOutbox,
  defineTopic,
  FerryError,
  HEADER,
  isFerryError,
  type Delivery,
  type OutgoingMessage,
  type Relay,
  type Transport,
} from '../../src/index.js';
import { partitionFor } from '../../src/core/message.js';
import { createMemoryBroker, memory } from '../../src/transports/memory/index.js';
import { redisStreams } from '../../src/transports/redis/index.js';
import { serviceUrl } from '../helpers/services.js';
import { tcpProxy } from '../helpers/tcp-proxy.js';
import type { OutboxStoreUnderTest, StoreInstance } from './outbox-store.js';
import { delay, uniqueName, waitFor } from '../helpers/wait.js';

const silent = createLogger({ level: 'silent' });
const redisUrl = serviceUrl('FERRY_REDIS_URL');

interface Order {
  readonly key: string;
  readonly n: number;
}

/**
 * A real (in-process) transport whose publishes can be made to fail: `fail` decides, per
 * batch, which error the broker answers with, or none.
 */
function faulty(
  inner: Transport,
  fail: (messages: readonly OutgoingMessage[]) => Error | undefined,
): Transport & { calls: number; failures: number } {
  const wrapper = {
    ...inner,
    calls: 0,
    failures: 0,
    name: inner.name,
    capabilities: inner.capabilities,
    publish: async (messages: readonly OutgoingMessage[]) => {
      wrapper.calls++;
      const error = fail(messages);
      if (error !== undefined) {
        wrapper.failures++;
        throw error;
      }
      await inner.publish(messages);
    },
    subscribe: inner.subscribe.bind(inner),
    seek: inner.seek.bind(inner),
    close: inner.close.bind(inner),
  };
  return wrapper;
}

/**
 * What a relay promises over every outbox store (SQLite, PostgreSQL, MySQL/MariaDB): an
 * outage costs no attempts, an undeliverable row blocks its key and only its key, and one
 * outbox table feeds one transport.
 */
export function relayContract<Tx>(
  name: string,
  subject: OutboxStoreUnderTest<Tx> | undefined,
): void {
  describe.skipIf(subject === undefined)(`relay contract: ${name}`, () => {
    const cleanup: Array<() => Promise<unknown>> = [];
    afterEach(async () => {
      for (const step of cleanup.splice(0).reverse()) await step();
    });

    async function fresh(partitions: number): Promise<{ made: StoreInstance<Tx>; table: string }> {
      const table = uniqueName('rl');
      const made = await (subject as OutboxStoreUnderTest<Tx>).create({ table, partitions });
      cleanup.push(async () => {
        await made.store.close();
        await made.close?.();
      });
      await made.store.migrate();
      return { made, table };
    }

    function memoryTransport(): Transport {
      const transport = memory({ broker: createMemoryBroker({ partitions: 2 }) });
      cleanup.push(() => transport.close({ timeoutMs: 1000 }));
      return transport;
    }

    async function collect(transport: Transport, topic: string): Promise<Delivery[]> {
      const seen: Delivery[] = [];
      const subscription = await transport.subscribe(
        { topic, group: uniqueName('g') },
        async (delivery) => {
          seen.push(delivery);
        },
      );
      cleanup.push(() => subscription.close({ timeoutMs: 1000 }));
      return seen;
    }

    async function enqueue(
      made: StoreInstance<Tx>,
      topicName: string,
      orders: readonly Order[],
    ): Promise<string[]> {
      const outbox = createOutbox(made.store);
      const topic = defineTopic<Order>(topicName);
      const receipts = await made.transaction((tx) =>
        outbox.enqueueMany(
          tx,
          topic,
          orders.map((order) => ({ payload: order, key: order.key })),
        ),
      );
      return receipts.map((receipt) => receipt.id);
    }

    function start(relay: Relay): Promise<void> {
      cleanup.push(() => relay.stop({ timeoutMs: 2000 }));
      return relay.start();
    }

    const idOf = (delivery: Delivery): string => delivery.headers[HEADER.id] ?? '';
    const payloadOf = (delivery: Delivery): Order =>
      JSON.parse(delivery.body.toString('utf8')) as Order;

    /** A relay that gives up on a row after two attempts and retries and polls at once. */
    function quickRelay(made: StoreInstance<Tx>, transport: Transport): Relay {
      return createOutbox(made.store).relay({
        transport,
        logger: silent,
        maxAttempts: 2,
        backoff: { initialDelayMs: 1, maxDelayMs: 1, jitter: 0 },
        pollMaxMs: 20,
      });
    }

    /** No row dead, all still pending, none charged an attempt nor pushed into backoff. */
    async function expectNothingCharged(
      made: StoreInstance<Tx>,
      partitions: readonly number[],
      count: number,
    ): Promise<void> {
      const status = await made.store.status();
      expect(status.reduce((sum, s) => sum + s.dead, 0)).toBe(0);
      const rows = (
        await Promise.all(partitions.map((partition) => made.store.readPending(partition, 100)))
      ).flat();
      expect(rows).toHaveLength(count);
      expect(rows.every((row) => row.attempts === 0)).toBe(true);
    }

    /** Each key's orders arrived in enqueue order (duplicates aside). */
    function expectKeyOrder(seen: readonly Delivery[], keys: readonly string[]): void {
      for (const key of keys) {
        const numbers = [
          ...new Set(
            seen
              .map(payloadOf)
              .filter((p) => p.key === key)
              .map((p) => p.n),
          ),
        ];
        expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
      }
    }

    it('charges no attempt for a broker outage, kills no row, and resumes in key order', async () => {
      const { made } = await fresh(2);
      const topic = uniqueName('outage');
      const inner = memoryTransport();
      const seen = await collect(inner, topic);
      let down = true;
      // The ways an unreachable broker shows: ferry's codes, and a raw socket error.
      const outages = [
        () => new FerryError('CONNECTION_FAILED', 'cannot reach the broker'),
        () => new FerryError('TIMEOUT', 'the broker did not answer in time'),
        () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
      ];
      let n = 0;
      const transport = faulty(inner, () => (down ? outages[n++ % outages.length]?.() : undefined));
      const orders = Array.from({ length: 24 }, (_, i) => ({ key: `k${i % 4}`, n: i }));
      const ids = await enqueue(made, topic, orders);

      const relay = quickRelay(made, transport);
      await start(relay);
      // Many more failed publishes than maxAttempts allows per row.
      await waitFor('publishes failing during the outage', () => transport.failures >= 6);
      const status = await made.store.status();
      expect(status.reduce((sum, s) => sum + s.pending, 0)).toBe(orders.length);
      // Nothing charged and nothing pushed into backoff: every row is ready the moment the
      // broker is back.
      await expectNothingCharged(made, [0, 1], orders.length);

      down = false;
      await waitFor('every row published after the outage', () =>
        ids.every((id) => seen.some((d) => idOf(d) === id)),
      );
      expectKeyOrder(seen, ['k0', 'k1', 'k2', 'k3']);
      // Marked after the broker confirmed: wait for the marks, then nothing is left.
      await waitFor('every row marked published', async () =>
        (await made.store.status()).every((s) => s.pending === 0),
      );
      expect((await made.store.status()).every((s) => s.dead === 0)).toBe(true);
      expect(relay.stats()).toMatchObject({ dead: 0, failed: 0 });
      expect(relay.stats().outages).toBeGreaterThan(0);
    });

    it.skipIf(redisUrl === undefined)(
      'rides out a real broker outage (Redis Streams cut off, then back) without charging rows',
      async () => {
        const { made } = await fresh(2);
        const topic = uniqueName('cut');
        const target = new URL(redisUrl as string);
        const proxy = await tcpProxy(target.hostname, Number(target.port || 6379));
        cleanup.push(() => proxy.close());
        const direct = redisStreams({ url: target.href });
        cleanup.push(() => direct.close({ timeoutMs: 1000 }));
        const seen = await collect(direct, topic);
        const proxied = new URL(target.href);
        proxied.hostname = '127.0.0.1';
        proxied.port = String(proxy.port);
        // Commands fail soon after the link drops, instead of queueing for the reconnection:
        // the relay sees the client's own outage errors.
        const transport = redisStreams({ url: proxied.href, redis: { maxRetriesPerRequest: 1 } });
        cleanup.push(() => transport.close({ timeoutMs: 1000 }));

        proxy.cut();
        const orders = Array.from({ length: 12 }, (_, i) => ({ key: `k${i % 3}`, n: i }));
        const ids = await enqueue(made, topic, orders);
        const relay = quickRelay(made, transport);
        await start(relay);
        await waitFor(
          'publishes failing on the cut connection',
          () => proxy.refused >= 5 && relay.stats().outages + relay.stats().failed > 0,
        );
        await expectNothingCharged(made, [0, 1], orders.length);
        expect(seen).toEqual([]);

        proxy.restore();
        await waitFor('every row published after the outage', () =>
          ids.every((id) => seen.some((d) => idOf(d) === id)),
        );
        expectKeyOrder(seen, ['k0', 'k1', 'k2']);
        await waitFor('every row marked published', async () =>
          (await made.store.status()).every((s) => s.pending === 0),
        );
        expect(relay.stats()).toMatchObject({ dead: 0, failed: 0 });
      },
    );

    it('kills an undeliverable row after its attempts and blocks its key until retried', async () => {
      const { made } = await fresh(1);
      const topic = uniqueName('poison');
      const inner = memoryTransport();
      const seen = await collect(inner, topic);
      let poison: string | undefined;
      const transport = faulty(inner, (messages) =>
        messages.some((m) => m.headers[HEADER.id] === poison)
          ? new FerryError('PUBLISH_FAILED', 'the broker refused the message')
          : undefined,
      );
      const [a1, a2, a3, b1, b2] = (await enqueue(made, topic, [
        { key: 'a', n: 1 },
        { key: 'a', n: 2 },
        { key: 'a', n: 3 },
        { key: 'b', n: 1 },
        { key: 'b', n: 2 },
      ])) as [string, string, string, string, string];
      poison = a2;
      const relay = quickRelay(made, transport);
      await start(relay);
      // b1 and b2 come after a3 in insert order: once they are out, a3 has been passed over.
      await waitFor('the other key published', () =>
        [a1, b1, b2].every((id) => seen.some((d) => idOf(d) === id)),
      );
      expect(seen.map(idOf)).toEqual([a1, b1, b2]);
      await waitFor('the published rows marked', async () =>
        (await made.store.status()).every((s) => s.pending === 1),
      );
      const [status] = await made.store.status();
      expect(status).toMatchObject({ dead: 1, pending: 1, blocked: 1, blockedKeys: 1 });
      expect(relay.stats()).toMatchObject({ dead: 1, failed: 2 });
      expect((await made.store.readPending(0, 10)).map((row) => row.id)).toEqual([]);

      poison = undefined;
      expect(await made.store.retryDead([a2])).toBe(1);
      await waitFor('the blocked key published after the retry', () =>
        [a2, a3].every((id) => seen.some((d) => idOf(d) === id)),
      );
      expect(seen.map(idOf)).toEqual([a1, b1, b2, a2, a3]);
    });

    it('reads ahead while full batches are sent; a row refused in a later lap is charged and its key stays in order', async () => {
      const { made } = await fresh(2);
      const topic = uniqueName('laps');
      const inner = memoryTransport();
      const seen = await collect(inner, topic);
      // Rows left out of each read because they were in flight.
      const skipped: number[] = [];
      const store = new Proxy(made.store, {
        get(target, property) {
          const value: unknown = Reflect.get(target, property, target);
          if (property === 'readPendingMany' && typeof value === 'function') {
            return (
              partitions: readonly number[],
              limit: number,
              skip?: ReadonlyMap<number, readonly bigint[]>,
            ): unknown => {
              skipped.push([...(skip?.values() ?? [])].reduce((n, seqs) => n + seqs.length, 0));
              return (value as (...args: unknown[]) => unknown).call(
                target,
                partitions,
                limit,
                skip,
              );
            };
          }
          return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
        },
      });
      const orders = Array.from({ length: 40 }, (_, i) => ({ key: `k${i % 6}`, n: i }));
      const ids = await enqueue(made, topic, orders);
      // Refused in the round's batch, in its partition's batch and then alone: charged once.
      const refused = ids[25];
      let refusals = 0;
      const transport = faulty(inner, (messages) =>
        refusals < 3 && messages.some((m) => m.headers[HEADER.id] === refused)
          ? (refusals++, new FerryError('PUBLISH_FAILED', 'the broker refused the message'))
          : undefined,
      );
      const relay = createOutbox(store).relay({
        transport,
        logger: silent,
        batchSize: 4,
        maxAttempts: 3,
        backoff: { initialDelayMs: 1, maxDelayMs: 1, jitter: 0 },
        pollMaxMs: 20,
      });
      await start(relay);
      await waitFor('every row published', () =>
        ids.every((id) => seen.some((d) => idOf(d) === id)),
      );
      await waitFor('every row marked published', async () =>
        (await made.store.status()).every((s) => s.pending === 0),
      );
      expect(skipped.some((n) => n > 0)).toBe(true);
      expectKeyOrder(seen, ['k0', 'k1', 'k2', 'k3', 'k4', 'k5']);
      expect(refusals).toBe(3);
      expect(relay.stats()).toMatchObject({ failed: 1, dead: 0, published: orders.length });
    });

    it('lets a dead row be skipped, releasing the rows behind it', async () => {
      const { made } = await fresh(1);
      const topic = uniqueName('skip');
      const inner = memoryTransport();
      const seen = await collect(inner, topic);
      const poison = new Set<string>();
      const transport = faulty(inner, (messages) =>
        messages.some((m) => poison.has(m.headers[HEADER.id] ?? ''))
          ? new FerryError('MESSAGE_TOO_LARGE', 'the broker refused the size')
          : undefined,
      );
      const [c1, c2] = (await enqueue(made, topic, [
        { key: 'c', n: 1 },
        { key: 'c', n: 2 },
      ])) as [string, string];
      poison.add(c1);
      await start(
        createOutbox(made.store).relay({
          transport,
          logger: silent,
          maxAttempts: 5,
          pollMaxMs: 20,
        }),
      );
      // Too large never fits: dead at the first attempt, with its key blocked.
      await waitFor('the oversized row dead', async () =>
        (await made.store.status()).some((s) => s.dead === 1),
      );
      expect((await made.store.status())[0]).toMatchObject({ dead: 1, blocked: 1 });
      expect(await made.store.skipDead([c2])).toBe(0);
      expect(await made.store.skipDead([c1])).toBe(1);
      await waitFor('the row behind the skipped one published', () =>
        seen.some((d) => idOf(d) === c2),
      );
      expect(seen.map(idOf)).toEqual([c2]);
      await waitFor('the row marked published', async () =>
        (await made.store.status()).every((s) => s.pending === 0),
      );
      expect((await made.store.status())[0]).toMatchObject({ dead: 0, blocked: 0 });
      // A skipped row is not dead any more: retry has nothing to bring back.
      expect(await made.store.retryDead()).toBe(0);
    });

    /**
     * The store, with the partition of every read that returned (`readPending`, or each
     * partition of a `readPendingMany`), in order: a relay over it shows which partitions
     * each wake-up and poll read.
     */
    function readsOf(store: StoreInstance<Tx>['store']): {
      store: StoreInstance<Tx>['store'];
      reads: number[];
    } {
      const reads: number[] = [];
      const watched = new Proxy(store, {
        get(target, property) {
          const value: unknown = Reflect.get(target, property, target);
          if (property === 'readPending') {
            return async (partition: number, ...rest: unknown[]) => {
              const rows: unknown = await (value as (...args: unknown[]) => Promise<unknown>).call(
                target,
                partition,
                ...rest,
              );
              reads.push(partition);
              return rows;
            };
          }
          if (property === 'readPendingMany' && typeof value === 'function') {
            return async (partitions: readonly number[], ...rest: unknown[]) => {
              const rows: unknown = await (value as (...args: unknown[]) => Promise<unknown>).call(
                target,
                partitions,
                ...rest,
              );
              reads.push(...partitions);
              return rows;
            };
          }
          return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
        },
      });
      return { store: watched, reads };
    }

    /** `count` keys whose rows go to `partition` of a table of `partitions`. */
    function keysIn(partition: number, partitions: number, count: number): string[] {
      const keys: string[] = [];
      for (let i = 0; keys.length < count; i++) {
        if (partitionFor(`k${i}`, partitions) === partition) keys.push(`k${i}`);
      }
      return keys;
    }

    /** Three rows, of three keys, in `partition` of a table of 4 partitions; their ids. */
    function enqueueIn(
      made: StoreInstance<Tx>,
      topic: string,
      partition: number,
    ): Promise<string[]> {
      return enqueue(
        made,
        topic,
        keysIn(partition, 4, 3).map((key, n) => ({ key, n })),
      );
    }

    /** A started relay over a fresh table of 4 partitions whose first poll is over. */
    async function watchedRelay(poll: {
      pollMinMs: number;
      pollMaxMs: number;
      gatherMs?: number;
    }): Promise<{
      made: StoreInstance<Tx>;
      topic: string;
      seen: Delivery[];
      reads: number[];
      relay: Relay;
    }> {
      const { made } = await fresh(4);
      const topic = uniqueName('woken');
      const transport = memoryTransport();
      const seen = await collect(transport, topic);
      const { store, reads } = readsOf(made.store);
      const relay = createOutbox(store).relay({ transport, logger: silent, ...poll });
      await start(relay);
      expect(relay.stats().partitions).toEqual([0, 1, 2, 3]);
      await waitFor('the first poll', () => reads.length >= 4);
      return { made, topic, seen, reads, relay };
    }

    it('reads only the partition a wake-up names, at once, and gathers wake-ups into one round', async () => {
      // Polls a minute apart: what is published within the wait below was read on a wake-up.
      const { made, topic, seen, reads, relay } = await watchedRelay({
        pollMinMs: 60_000,
        pollMaxMs: 60_000,
      });
      expect(reads).toHaveLength(4);
      const woken = await enqueueIn(made, topic, 1);
      const unnamed = await enqueueIn(made, topic, 2);
      const before = reads.length;
      for (let i = 0; i < 50; i++) relay.wake(1);
      await waitFor('the woken partition published', () =>
        woken.every((id) => seen.some((d) => idOf(d) === id)),
      );
      await waitFor(
        'the woken partition marked',
        async () => (await made.store.readPending(1, 10)).length === 0,
      );
      // Fifty wake-ups made one read: of the partition they named, gathered into one round.
      expect(reads.slice(before)).toEqual([1]);
      expect(seen.map(idOf).sort()).toEqual([...woken].sort());
      expect((await made.store.readPending(2, 10)).map((row) => row.id)).toEqual(unnamed);
    });

    it('with gatherMs, waits that long once woken and reads what was written meanwhile in the same round', async () => {
      const { made, topic, seen, reads, relay } = await watchedRelay({
        pollMinMs: 60_000,
        pollMaxMs: 60_000,
        gatherMs: 400,
      });
      const before = reads.length;
      const first = await enqueueIn(made, topic, 1);
      relay.wake(1);
      await delay(100);
      const second = await enqueueIn(made, topic, 2);
      relay.wake(2);
      // Nothing was read during the wait: the first rows wait for the second ones.
      expect(reads.slice(before)).toEqual([]);
      expect(seen).toEqual([]);
      await waitFor('both partitions published', () =>
        [...first, ...second].every((id) => seen.some((d) => idOf(d) === id)),
      );
      expect(reads.slice(before).sort()).toEqual([1, 2]);
    });

    it('refuses a negative gatherMs', async () => {
      const { made } = await fresh(4);
      expect(() =>
        createOutbox(made.store).relay({ transport: memoryTransport(), gatherMs: -1 }),
      ).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }) as Error);
    });

    it('publishes by its polls the rows no wake-up named, while wake-ups for another partition keep coming', async () => {
      const { made, topic, seen, relay } = await watchedRelay({ pollMinMs: 50, pollMaxMs: 200 });
      // Wake-ups naming partition 0 alone, far more often than the relay polls.
      const storm = setInterval(() => relay.wake(0), 2);
      cleanup.push(async () => clearInterval(storm));
      const unnamed = await enqueueIn(made, topic, 2);
      await waitFor('the rows of the partition no wake-up named published', () =>
        unnamed.every((id) => seen.some((d) => idOf(d) === id)),
      );
      expect(seen.map(idOf).sort()).toEqual([...unnamed].sort());
    });

    it('refuses to join a table whose live relays publish to another transport', async () => {
      const { made } = await fresh(2);
      const transport = memoryTransport();
      const relay = (destination: string): Relay =>
        createOutbox(made.store).relay({ transport, destination, logger: silent, leaseMs: 60_000 });
      const first = relay('kafka://10.0.0.1:9092');
      await start(first);
      const other = relay('amqp://10.0.0.2:5672');
      const refused = await other.start().then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(isFerryError(refused, 'CONFLICT')).toBe(true);
      expect((refused as Error).message).toContain('kafka://10.0.0.1:9092');
      expect((refused as Error).message).toContain('amqp://10.0.0.2:5672');
      expect(await made.store.liveRelays()).toBe(1);

      const twin = relay('kafka://10.0.0.1:9092');
      await start(twin);
      expect(await made.store.liveRelays()).toBe(2);

      await first.stop();
      await twin.stop();
      const later = relay('amqp://10.0.0.2:5672');
      await start(later);
      expect(await made.store.liveRelays()).toBe(1);
    });
  });
}
