import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  createBus,
  createLogger,
  defineTopic,
  FerryError,
  HEADER,
  type Delivery,
  type Inbox,
  type Relay,
  type Subscription,
  type Transport,
} from '../../src/index.js';
import { createMemoryBroker, memory } from '../../src/transports/memory/index.js';
import {
  openSqliteDatabase,
  sqliteInbox,
  sqliteOutbox,
  sqliteTransaction,
  type SqliteDatabase,
  type SqliteOutbox,
} from '../../src/sqlite.js';
import { sqlite } from '../../src/transports/sqlite/index.js';
import { createRelay } from '../../src/outbox/relay/index.js';
import type { OutboxStore } from '../../src/outbox/store.js';
import { deferred, delay, uniqueName, waitFor } from '../helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-relay-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const silent = createLogger({ level: 'silent' });

interface Order {
  readonly n: number;
}

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function setup(partitions = 4): Promise<{
  db: BetterSqlite3.Database;
  outbox: SqliteOutbox;
  path: string;
  table: string;
}> {
  const table = uniqueName('outbox');
  const path = join(dir, `${table}.db`);
  const db = await openSqliteDatabase(path);
  const outbox = sqliteOutbox({ database: db, table, partitions });
  await outbox.migrate();
  cleanup.push(() => db.close());
  return { db, outbox, path, table };
}

function track<T extends Relay | Transport | Subscription>(thing: T): T {
  cleanup.push(() =>
    'start' in thing ? thing.stop({ timeoutMs: 1000 }) : thing.close({ timeoutMs: 1000 }),
  );
  return thing;
}

/** Every delivery of `topic` on `transport`, in arrival order. */
async function collect(transport: Transport, topic: string): Promise<Delivery[]> {
  const seen: Delivery[] = [];
  track(
    await transport.subscribe({ topic, group: uniqueName('g') }, async (delivery) => {
      seen.push(delivery);
    }),
  );
  return seen;
}

/** A real transport that refuses messages with one id: a broker rejecting a poison message. */
function refusing(inner: Transport, poisonId: () => string | undefined): Transport {
  return {
    ...inner,
    name: inner.name,
    capabilities: inner.capabilities,
    publish: async (messages) => {
      if (messages.some((m) => m.headers[HEADER.id] === poisonId())) {
        throw new FerryError('PUBLISH_FAILED', 'broker refused the message');
      }
      await inner.publish(messages);
    },
    subscribe: (options, handler) => inner.subscribe(options, handler),
    seek: (topic, group, target) => inner.seek(topic, group, target),
    close: (options) => inner.close(options),
  };
}

const idOf = (delivery: Delivery): string => delivery.headers[HEADER.id] ?? '';

function runRelayProcess(
  args: string[],
  env: Record<string, string>,
): { child: ChildProcess; output: () => string } {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/fixtures/relay-process.ts', ...args],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  cleanup.push(() => child.kill('SIGKILL'));
  return { child, output: () => text };
}

describe('outbox relay', () => {
  it('publishes again after a relay is killed between publish and mark; the inbox absorbs it', async () => {
    const { db, outbox, path, table } = await setup(4);
    const logPath = join(dir, `${table}-log.db`);
    const topic = defineTopic<Order>(uniqueName('order.created'));
    db.exec(`CREATE TABLE effects (message_id TEXT PRIMARY KEY, n INTEGER NOT NULL)`);
    const total = 40;
    db.transaction(() => {
      for (let n = 0; n < total; n++) outbox.enqueueSync(db, topic, { n }, { key: `k${n % 7}` });
    })();

    const doomed = runRelayProcess([path, logPath, table], { FERRY_TEST_HANG_AFTER_PUBLISH: '1' });
    await waitFor('a batch published by the doomed relay', () =>
      doomed.output().includes('published'),
    );
    doomed.child.kill('SIGKILL');
    await new Promise((resolve) => doomed.child.once('exit', resolve));
    expect((await outbox.store.status()).reduce((sum, s) => sum + s.pending, 0)).toBe(total);

    const transport = track(sqlite({ path: logPath, partitions: 4 }));
    const bus = createBus({ transport, logger: silent });
    const inboxDb = await openSqliteDatabase(path);
    cleanup.push(() => inboxDb.close());
    const inbox = sqliteInbox({ database: inboxDb });
    await inbox.migrate();
    let duplicates = 0;
    const counting: Inbox<SqliteDatabase> = {
      process: async (group, id, work) => {
        const result = await inbox.process(group, id, work);
        if (result.duplicate) duplicates++;
        return result;
      },
    };
    track(
      await bus.subscribe(topic, { group: 'billing', inbox: counting }, async (message, { tx }) => {
        tx.prepare('INSERT INTO effects (message_id, n) VALUES (?, ?)').run(
          message.id,
          message.payload.n,
        );
      }),
    );

    // The replacement waits for the dead relay's leases to expire, then takes over.
    const relay = track(outbox.relay({ transport, leaseMs: 1000, logger: silent }));
    await relay.start();
    await waitFor('every order applied', () => {
      const row = db.prepare('SELECT count(*) AS n FROM effects').get() as { n: number };
      return row.n === total;
    });
    await waitFor('all rows marked', async () =>
      (await outbox.store.status()).every((s) => s.pending === 0),
    );
    // The log lives in its own file; read it through a connection of its own.
    const log = await openSqliteDatabase(logPath);
    cleanup.push(() => log.close());
    const inLog = (
      log.prepare('SELECT count(*) AS n FROM ferry_messages WHERE topic = ?').get(topic.name) as {
        n: number;
      }
    ).n;
    expect(inLog).toBeGreaterThan(total);
    await waitFor('every duplicate seen by the inbox', () => duplicates === inLog - total);
    const effects = db
      .prepare('SELECT count(DISTINCT message_id) AS ids, count(*) AS n FROM effects')
      .get() as { ids: number; n: number };
    expect(effects).toEqual({ ids: total, n: total });
    // The inbox's transactions (another connection to the same file, in this process) never
    // held the relay up long enough to lose its leases.
    expect(relay.stats().leasesLost).toBe(0);
  });

  it('marks a poison message dead after its attempts while other partitions flow', async () => {
    const { db, outbox } = await setup(4);
    const topic = defineTopic<Order>(uniqueName('order.created'));
    let poison: string | undefined;
    const transport = refusing(
      track(memory({ broker: createMemoryBroker({ partitions: 4 }) })),
      () => poison,
    );
    const seen = await collect(transport, topic.name);
    const ids = db.transaction(() => {
      poison = outbox.enqueueSync(db, topic, { n: -1 }, { key: 'bad' }).id;
      return Array.from(
        { length: 40 },
        (_, n) => outbox.enqueueSync(db, topic, { n }, { key: `k${n}` }).id,
      );
    })();
    const poisonPartition = (await outbox.store.readPending(0, 1000))
      .concat(...(await Promise.all([1, 2, 3].map((p) => outbox.store.readPending(p, 1000)))))
      .find((row) => row.id === poison)?.partition;
    const behind = (await outbox.store.readPending(poisonPartition ?? -1, 1000)).map((r) => r.id);
    const elsewhere = ids.filter((id) => !behind.includes(id));
    expect(behind.length).toBeGreaterThan(1);
    expect(elsewhere.length).toBeGreaterThan(0);

    const relay = track(
      outbox.relay({
        transport,
        logger: silent,
        maxAttempts: 3,
        backoff: { initialDelayMs: 1500, jitter: 0 },
      }),
    );
    await relay.start();
    await waitFor('other partitions published', () =>
      elsewhere.every((id) => seen.some((d) => idOf(d) === id)),
    );
    // The poison's partition waits for it, in order.
    const waiting = (await outbox.store.status()).find((s) => s.partition === poisonPartition);
    expect(waiting?.pending).toBe(behind.length);
    expect(seen.some((d) => behind.includes(idOf(d)))).toBe(false);

    await waitFor('poison dead', async () =>
      (await outbox.store.status()).some((s) => s.dead === 1),
    );
    await waitFor('the rest of its partition published', () =>
      behind.filter((id) => id !== poison).every((id) => seen.some((d) => idOf(d) === id)),
    );
    const row = db
      .prepare(`SELECT status, attempts, last_error FROM ${outbox.store.table} WHERE id = ?`)
      .get(poison) as { status: string; attempts: number; last_error: string };
    expect(row).toMatchObject({ status: 'dead', attempts: 3 });
    expect(row.last_error).toContain('broker refused');
    expect(relay.stats()).toMatchObject({ dead: 1, failed: 3, published: 40 });
    expect(seen.some((d) => idOf(d) === poison)).toBe(false);

    // Dead rows are kept and can be sent again once the cause is fixed.
    const deadId = poison;
    poison = undefined;
    expect(await outbox.store.retryDead()).toBe(1);
    relay.wake();
    await waitFor('retried poison published', () => seen.some((d) => idOf(d) === deadId));
    expect(seen).toHaveLength(41);
  });

  it('refuses marks from a relay whose lease was taken over', async () => {
    const { db, outbox, path, table } = await setup(2);
    const topic = defineTopic<Order>(uniqueName('order.created'));
    const transport = track(memory());
    const seen = await collect(transport, topic.name);
    const gate = deferred();
    const published = deferred();
    const relay = track(
      outbox.relay({
        transport,
        logger: silent,
        leaseMs: 60_000,
        hooks: {
          afterPublish: async () => {
            published.resolve();
            await gate.promise;
          },
        },
      }),
    );
    await relay.start();
    const thief = sqliteOutbox({ database: path, table }).store;
    cleanup.push(() => thief.close());
    await thief.liveRelays();

    db.transaction(() => outbox.enqueueSync(db, topic, { n: 1 }, { key: 'k' }))();
    relay.wake();
    await published.promise;
    // As when the lease expired and another relay took the partition over.
    await outbox.store.release(relay.owner, [0, 1]);
    const taken = await thief.acquire('thief', 2, 60_000);
    expect(taken).toHaveLength(2);
    gate.resolve();

    await waitFor('the lease loss noticed', () => relay.stats().leasesLost > 0);
    expect(relay.stats().published).toBe(0);
    expect((await outbox.store.status()).reduce((sum, s) => sum + s.pending, 0)).toBe(1);
    expect(seen).toHaveLength(1);
  });

  it('stops publishing a partition before its lease runs out when renewals stall', async () => {
    const { db, outbox } = await setup(1);
    const topic = defineTopic<Order>(uniqueName('order.created'));
    const transport = track(memory());
    const seen = await collect(transport, topic.name);
    const leaseMs = 600;
    // A starved relay: lease upkeep hangs, and a read that finds rows returns only once the
    // last renewal is a whole lease old, so the lease has run out by the time rows are in hand.
    let stalling = false;
    let stalledAt: number | undefined;
    const renewed = deferred();
    const unstall = deferred();
    const readLate = deferred();
    const store: OutboxStore<SqliteDatabase> = {
      ...outbox.store,
      heartbeat: async (owner, ttlMs) => {
        if (stalledAt !== undefined) await unstall.promise;
        const leases = await outbox.store.heartbeat(owner, ttlMs);
        if (stalling && stalledAt === undefined) {
          stalledAt = Date.now();
          renewed.resolve();
        }
        return leases;
      },
      readPending: async (partition, limit) => {
        const rows = await outbox.store.readPending(partition, limit);
        if (stalledAt !== undefined && rows.length > 0) {
          await delay(Math.max(0, stalledAt + leaseMs - Date.now()));
          readLate.resolve();
        }
        return rows;
      },
    };
    const relay = track(createRelay(store, { transport, logger: silent, leaseMs }));
    await relay.start();
    await waitFor('the lease taken', () => relay.stats().partitions.length === 1);
    // Renewals stall from the next one that completes.
    stalling = true;
    await renewed.promise;

    db.transaction(() => outbox.enqueueSync(db, topic, { n: 1 }, { key: 'k' }))();
    relay.wake();
    // Either the read crossed the end of the lease, or the relay did not even read.
    await Promise.race([readLate.promise, delay(2 * leaseMs)]);
    await delay(leaseMs);
    expect(seen).toHaveLength(0);
    expect((await outbox.store.status())[0]?.pending).toBe(1);

    // Renewals resume: the same relay publishes the row, once.
    unstall.resolve();
    await waitFor('published', () => relay.stats().published === 1);
    await waitFor('marked', async () => (await outbox.store.status())[0]?.pending === 0);
    expect(seen).toHaveLength(1);
  });

  it('never publishes what a rolled-back transaction enqueued', async () => {
    const { db, outbox } = await setup(4);
    const topic = defineTopic<Order>(uniqueName('order.created'));
    const transport = track(memory());
    const seen = await collect(transport, topic.name);
    expect(() =>
      db.transaction(() => {
        outbox.enqueueSync(db, topic, { n: 1 });
        throw new Error('abort order');
      })(),
    ).toThrow('abort order');
    await expect(
      sqliteTransaction(db, async (tx) => {
        await outbox.enqueue(tx, topic, { n: 2 });
        throw new Error('abort order');
      }),
    ).rejects.toThrow('abort order');
    db.exec('BEGIN');
    await outbox.enqueue(db, topic, { n: 3 });
    db.exec('ROLLBACK');
    const kept = await sqliteTransaction(db, (tx) => outbox.enqueue(tx, topic, { n: 4 }));

    const relay = track(outbox.relay({ transport, logger: silent }));
    await relay.start();
    await waitFor('the committed order published', () => seen.some((d) => idOf(d) === kept.id));
    await waitFor('relay idle', async () =>
      (await outbox.store.status()).every((s) => s.pending === 0),
    );
    expect(seen.map((d) => JSON.parse(d.body.toString()) as Order)).toEqual([{ n: 4 }]);
    expect(relay.stats().published).toBe(1);
  });

  it('shares partitions between two relays on one file without duplicates', async () => {
    const { db, outbox, path, table } = await setup(16);
    const topic = defineTopic<Order>(uniqueName('order.created'));
    const transport = track(memory({ broker: createMemoryBroker({ partitions: 16 }) }));
    const seen = await collect(transport, topic.name);
    const second = sqliteOutbox({ database: path, table });
    cleanup.push(() => second.store.close());
    // Long enough for a loaded machine to send and mark a batch within the last third of a lease.
    const options = { transport, logger: silent, leaseMs: 3000, batchSize: 50 };
    const a = track(outbox.relay(options));
    const b = track(second.relay(options));
    await a.start();
    await b.start();
    await waitFor('partitions balanced', () => {
      const [left, right] = [a.stats().partitions, b.stats().partitions];
      return left.length === 8 && right.length === 8;
    });
    expect([...a.stats().partitions, ...b.stats().partitions].sort((x, y) => x - y)).toEqual(
      Array.from({ length: 16 }, (_, p) => p),
    );

    const total = 2000;
    for (let chunk = 0; chunk < total; chunk += 200) {
      db.transaction(() => {
        for (let n = chunk; n < chunk + 200; n++) {
          outbox.enqueueSync(db, topic, { n }, { key: `customer-${n % 97}` });
        }
      })();
    }
    await waitFor('all published', () => seen.length >= total);
    await waitFor('all marked', async () =>
      (await outbox.store.status()).every((s) => s.pending === 0),
    );
    expect(seen).toHaveLength(total);
    expect(new Set(seen.map(idOf)).size).toBe(total);
    expect(a.stats().published + b.stats().published).toBe(total);
    expect(a.stats().published).toBeGreaterThan(0);
    expect(b.stats().published).toBeGreaterThan(0);
    // Per key, messages arrive in enqueue order.
    const byKey = new Map<string, number[]>();
    for (const d of seen) {
      const list = byKey.get(d.key ?? '') ?? [];
      list.push((JSON.parse(d.body.toString()) as Order).n);
      byKey.set(d.key ?? '', list);
    }
    for (const list of byKey.values()) expect(list).toEqual([...list].sort((x, y) => x - y));
  });
});
