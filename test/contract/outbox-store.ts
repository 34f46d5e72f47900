import { afterEach, describe, expect, it } from 'vitest';
import {
  createOutbox,
  defineTopic,
  newMessageId,
  type Lease,
  type NewOutboxRecord,
  type OutboxRecord,
  type OutboxStore,
} from '../../src/index.js';
import { delay, uniqueName } from '../helpers/wait.js';
import { legacyIds } from '../fixtures/legacy-outbox.js';

export interface StoreInstance<Tx> {
  /** A store over the tables named `table` (not yet migrated). */
  readonly store: OutboxStore<Tx>;
  /**
   * Runs `work` in one transaction on the store's database: commits when it resolves,
   * rolls back when it throws (and rethrows).
   */
  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T>;
  /** Frees what `create` opened besides the store (the suite closes the store). */
  close?(): Promise<void>;
}

export interface OutboxStoreUnderTest<Tx> {
  /**
   * A store over tables called `table` with `partitions` partitions. Several instances on
   * one table name must share the tables (they model several relay processes).
   */
  create(options: { table: string; partitions: number }): Promise<StoreInstance<Tx>>;
  /**
   * Creates `table` (and its lease and relay tables, two partitions) as the first released
   * schema did, holding the rows of `legacyIds` (test/fixtures/legacy-outbox.ts).
   */
  legacy(table: string): Promise<void>;
}

/**
 * The behaviour every outbox store (SQLite, PostgreSQL, MySQL) must show, run by each
 * dialect's test file (or with `undefined` when its database is not configured: the suite is
 * then reported as skipped). The relay relies on exactly these promises.
 */
export function outboxStoreContract<Tx>(
  name: string,
  subject: OutboxStoreUnderTest<Tx> | undefined,
): void {
  describe.skipIf(subject === undefined)(`outbox store contract: ${name}`, () => {
    const open: Array<StoreInstance<Tx>> = [];

    async function instance(table: string, partitions = 4): Promise<StoreInstance<Tx>> {
      const made = await (subject as OutboxStoreUnderTest<Tx>).create({ table, partitions });
      open.push(made);
      return made;
    }
    /** A migrated store on fresh tables, plus a second handle on the same tables. */
    async function fresh(partitions = 4): Promise<{
      a: StoreInstance<Tx>;
      b: StoreInstance<Tx>;
      store: OutboxStore<Tx>;
    }> {
      const table = uniqueName('ob');
      const a = await instance(table, partitions);
      await a.store.migrate();
      const b = await instance(table, partitions);
      await b.store.migrate();
      return { a, b, store: a.store };
    }

    afterEach(async () => {
      for (const made of open.splice(0)) {
        await made.store.close();
        await made.close?.();
      }
    });

    let counter = 0;
    function record(partition: number, key?: string): NewOutboxRecord {
      counter++;
      return {
        id: newMessageId(),
        topic: 'contract.topic',
        key,
        partition,
        body: Buffer.from(`body-${counter}`),
        headers: { 'content-type': 'text/plain', 'x-n': String(counter) },
        createdAt: new Date(),
      };
    }
    async function enqueue(made: StoreInstance<Tx>, records: NewOutboxRecord[]): Promise<void> {
      await made.transaction((tx) => made.store.insert(tx, records));
    }
    const ids = (rows: readonly OutboxRecord[]): string[] => rows.map((row) => row.id);
    async function leaseOf(store: OutboxStore<Tx>, owner: string): Promise<Map<number, Lease>> {
      const leases = await store.acquire(owner, store.partitions, 60_000);
      return new Map(leases.map((lease) => [lease.partition, lease]));
    }
    function the<T>(value: T | undefined): T {
      expect(value).toBeDefined();
      return value as T;
    }

    it('migrates idempotently and reads the partition count back', async () => {
      const table = uniqueName('ob');
      const first = await instance(table, 4);
      await first.store.migrate();
      await first.store.migrate();
      expect(first.store.partitions).toBe(4);
      const other = await instance(table, 8);
      await other.store.migrate();
      expect(other.store.partitions).toBe(4);
      expect(await other.store.status()).toHaveLength(4);
    });

    it('reads the partition count from the database when opened without migrate', async () => {
      const table = uniqueName('ob');
      const installer = await instance(table, 4);
      await installer.store.migrate();
      // An application started later, configured (or defaulted) to another count.
      const app = await instance(table, 16);
      const outbox = createOutbox(app.store);
      const topic = defineTopic<{ n: number }>('contract.partitions');
      await app.transaction((tx) =>
        outbox.enqueueMany(
          tx,
          topic,
          Array.from({ length: 10 }, (_, n) => ({ payload: { n }, key: `customer-${n}` })),
        ),
      );
      expect(app.store.partitions).toBe(4);
      const readable = await Promise.all(
        [0, 1, 2, 3].map((partition) => installer.store.readPending(partition, 100)),
      );
      expect(readable.flat()).toHaveLength(10);
      const status = await app.store.status();
      expect(status.map((s) => s.partition)).toEqual([0, 1, 2, 3]);
      expect(status.reduce((sum, s) => sum + s.pending, 0)).toBe(10);
    });

    it('counts pending rows from the rows, also in partitions without a lease row', async () => {
      const { a, store } = await fresh(4);
      // A row written under a wrong partition count (by an older writer) stays visible.
      await enqueue(a, [record(1), record(9), record(9)]);
      const status = await store.status();
      expect(status.find((s) => s.partition === 9)).toMatchObject({
        pending: 2,
        dead: 0,
        owner: undefined,
      });
      expect(status.reduce((sum, s) => sum + s.pending, 0)).toBe(3);
    });

    it('blocks the key of a dead row, and only that key, until it is retried or skipped', async () => {
      const { a, store } = await fresh(1);
      const a1 = record(0, 'a');
      const a2 = record(0, 'a');
      const b1 = record(0, 'b');
      const a3 = record(0, 'a');
      const loose = record(0);
      const a4 = record(0, 'a');
      await enqueue(a, [a1, a2, b1, a3, loose, a4]);
      const lease = the((await leaseOf(store, 'relay-a')).get(0));
      expect(
        await store.markFailed('relay-a', lease, a2.id, 'refused', { dead: true, retryInMs: 0 }),
      ).toBe(true);
      expect(ids(await store.readPending(0, 10))).toEqual([a1.id, b1.id, loose.id]);
      expect((await store.status())[0]).toMatchObject({
        pending: 5,
        dead: 1,
        blocked: 2,
        blockedKeys: 1,
      });

      // A dead row without a key holds back nothing.
      expect(
        await store.markFailed('relay-a', lease, loose.id, 'refused', { dead: true, retryInMs: 0 }),
      ).toBe(true);
      expect(ids(await store.readPending(0, 10))).toEqual([a1.id, b1.id]);
      expect((await store.status())[0]).toMatchObject({ dead: 2, blocked: 2, blockedKeys: 1 });

      // Skipping is explicit and only for dead rows; the key flows again, in order.
      expect(await store.skipDead([a3.id])).toBe(0);
      expect(await store.skipDead([a2.id])).toBe(1);
      expect(ids(await store.readPending(0, 10))).toEqual([a1.id, b1.id, a3.id, a4.id]);
      expect((await store.status())[0]).toMatchObject({ dead: 1, blocked: 0, blockedKeys: 0 });
      expect(await store.retryDead([a2.id])).toBe(0);
      expect(await store.retryDead()).toBe(1);
      expect(ids(await store.readPending(0, 10))).toEqual([a1.id, b1.id, a3.id, loose.id, a4.id]);
    });

    it('registers relays with their transport and refuses a second transport', async () => {
      const { a, b } = await fresh(2);
      expect(await a.store.register('relay-a', 60_000, 'kafka://10.0.0.1:9092')).toBeUndefined();
      expect(await b.store.register('relay-b', 60_000, 'amqp://10.0.0.2:5672')).toBe(
        'kafka://10.0.0.1:9092',
      );
      expect(await a.store.liveRelays()).toBe(1);
      expect(await b.store.register('relay-c', 60_000, 'kafka://10.0.0.1:9092')).toBeUndefined();
      expect(await a.store.liveRelays()).toBe(2);
      // Heartbeats keep the registration (and its transport).
      await a.store.heartbeat('relay-a', 60_000);
      expect(await b.store.register('relay-b', 60_000, 'amqp://10.0.0.2:5672')).toBe(
        'kafka://10.0.0.1:9092',
      );
      await a.store.release('relay-a', [], true);
      await b.store.release('relay-c', [], true);
      expect(await b.store.register('relay-b', 60_000, 'amqp://10.0.0.2:5672')).toBeUndefined();
      // An expired registration does not hold the table.
      const { a: c } = await fresh(1);
      expect(await c.store.register('relay-x', 100, 'kafka://10.0.0.1:9092')).toBeUndefined();
      await delay(400);
      expect(await c.store.register('relay-y', 60_000, 'amqp://10.0.0.2:5672')).toBeUndefined();
    });

    it('upgrades tables made by the first schema and keeps their rows', async () => {
      const table = uniqueName('ob');
      await (subject as OutboxStoreUnderTest<Tx>).legacy(table);
      const old = await instance(table, 16);
      await old.store.migrate();
      await old.store.migrate();
      expect(old.store.partitions).toBe(2);
      const status = await old.store.status();
      expect(status.map((s) => s.partition)).toEqual([0, 1]);
      expect(status[0]).toMatchObject({ pending: 1, dead: 1, blocked: 0 });
      expect(status[1]).toMatchObject({ pending: 1, dead: 0 });
      expect(ids(await old.store.readPending(0, 10))).toEqual([legacyIds.pendingA]);
      const newer = record(0, 'a');
      await enqueue(old, [newer]);
      // What the upgrade added works on the old rows: blocking, skipping, registrations.
      expect(ids(await old.store.readPending(0, 10))).toEqual([legacyIds.pendingA]);
      expect((await old.store.status())[0]).toMatchObject({ blocked: 1, blockedKeys: 1 });
      expect(await old.store.skipDead([legacyIds.dead])).toBe(1);
      expect(ids(await old.store.readPending(0, 10))).toEqual([legacyIds.pendingA, newer.id]);
      expect(await old.store.register('relay-a', 60_000, 'kafka://10.0.0.1:9092')).toBeUndefined();
      expect(await old.store.register('relay-b', 60_000, 'amqp://10.0.0.2:5672')).toBe(
        'kafka://10.0.0.1:9092',
      );
      expect(await old.store.republish(new Date(0))).toBe(1);
    });

    it('round-trips every field of a record', async () => {
      const { a, store } = await fresh();
      const keyed = { ...record(2, 'customer-1'), body: Buffer.from([0, 255, 1, 254]) };
      const keyless = record(2);
      await enqueue(a, [keyed, keyless]);
      const rows = await store.readPending(2, 10);
      expect(ids(rows)).toEqual([keyed.id, keyless.id]);
      const [one, two] = rows as [OutboxRecord, OutboxRecord];
      expect(one.topic).toBe('contract.topic');
      expect(one.key).toBe('customer-1');
      expect(two.key).toBeUndefined();
      expect(one.partition).toBe(2);
      expect(Buffer.compare(one.body, keyed.body)).toBe(0);
      expect(one.headers).toEqual(keyed.headers);
      expect(one.createdAt.getTime()).toBe(keyed.createdAt.getTime());
      expect(one.attempts).toBe(0);
      expect(typeof one.seq).toBe('bigint');
      expect(two.seq > one.seq).toBe(true);
    });

    it('never shows rows of a rolled-back transaction', async () => {
      const { a, store } = await fresh();
      const lost = record(1);
      await expect(
        a.transaction(async (tx) => {
          await store.insert(tx, [lost]);
          throw new Error('roll back');
        }),
      ).rejects.toThrow('roll back');
      const kept = record(1);
      await enqueue(a, [kept]);
      expect(ids(await store.readPending(1, 10))).toEqual([kept.id]);
      const status = await store.status();
      expect(status.find((s) => s.partition === 1)?.pending).toBe(1);
    });

    it('reads pending rows of one partition in seq order, up to the limit', async () => {
      const { a, store } = await fresh();
      // Enough rows that seq crosses from one to two and three digits (order as numbers).
      const first = [record(3, 'k'), record(3, 'k'), record(0, 'other')];
      const filler = Array.from({ length: 120 }, (_, n) => record(n % 2 === 0 ? 3 : 1, `f${n}`));
      const second = [record(3, 'k'), record(3, 'j'), record(3, 'k')];
      await enqueue(a, first);
      await enqueue(a, filler);
      await enqueue(a, second);
      const inThree = [...first, ...filler, ...second]
        .filter((r) => r.partition === 3)
        .map((r) => r.id);
      expect(ids(await store.readPending(3, 3))).toEqual(inThree.slice(0, 3));
      expect(ids(await store.readPending(3, 1000))).toEqual(inThree);
      const rows = await store.readPending(3, 1000);
      expect(rows.every((row, i) => i === 0 || row.seq > (rows[i - 1] as OutboxRecord).seq)).toBe(
        true,
      );
      expect(ids(await store.readPending(0, 100))).toEqual([first[2]?.id]);
      expect(await store.readPending(2, 100)).toEqual([]);
    });

    it('leaves out the rows it is told to, and still reads rows between them', async () => {
      const { a, store } = await fresh(1);
      const rows = [record(0, 'a'), record(0, 'b'), record(0, 'a'), record(0)];
      const written = rows.map((row) => row.id);
      await enqueue(a, rows);
      const all = await store.readPending(0, 10);
      expect(ids(all)).toEqual(written);
      const seqs = all.map((row) => row.seq);
      const [s0, s1, s2, s3] = seqs as [bigint, bigint, bigint, bigint];
      expect(ids(await store.readPending(0, 10, [s0, s1]))).toEqual(written.slice(2));
      expect(ids(await store.readPending(0, 1, [s0, s1]))).toEqual(written.slice(2, 3));
      // Not a cursor: a row below an excluded one is still read.
      expect(ids(await store.readPending(0, 10, [s1, s3]))).toEqual([written[0], written[2]]);
      expect(await store.readPending(0, 10, seqs)).toEqual([]);
      expect(ids(await store.readPending(0, 10, []))).toEqual(written);
      expect(ids(await store.readPending(0, 10, [s2 + 1000n]))).toEqual(written);
    });

    it('stops reading at the first row that is not yet available', async () => {
      const { a, store } = await fresh();
      const rows = [record(1), record(1), record(1)];
      await enqueue(a, rows);
      await enqueue(a, [record(2)]);
      const lease = the((await leaseOf(store, 'relay-a')).get(1));
      const [r0, r1] = rows as [NewOutboxRecord, NewOutboxRecord, NewOutboxRecord];
      expect(
        await store.markFailed('relay-a', lease, r1.id, 'boom', { dead: false, retryInMs: 60_000 }),
      ).toBe(true);
      expect(ids(await store.readPending(1, 10))).toEqual([r0.id]);
      expect(
        await store.markFailed('relay-a', lease, r0.id, 'boom', { dead: false, retryInMs: 60_000 }),
      ).toBe(true);
      expect(await store.readPending(1, 10)).toEqual([]);
      expect(await store.readPending(2, 10)).toHaveLength(1);
    });

    it('reads several partitions together as it reads each alone', async () => {
      const { a, store } = await fresh();
      const readMany = the(store.readPendingMany?.bind(store));
      const rows = [record(1, 'k'), record(2, 'k'), record(1, 'j'), record(1, 'k'), record(3)];
      await enqueue(a, rows);
      await enqueue(a, [record(2, 'x'), record(2, 'y')]);
      const lease = the((await leaseOf(store, 'relay-a')).get(1));
      // Partition 1: its second row in backoff holds back the rest; its first is read.
      await store.markFailed('relay-a', lease, (rows[2] as NewOutboxRecord).id, 'boom', {
        dead: false,
        retryInMs: 60_000,
      });
      const alone = new Map<number, string[]>();
      for (const p of [0, 1, 2, 3]) alone.set(p, ids(await store.readPending(p, 2)));
      const together = await readMany([0, 1, 2, 3], 2);
      expect([...together.keys()].sort()).toEqual([0, 1, 2, 3]);
      for (const p of [0, 1, 2, 3]) expect(ids(together.get(p) ?? [])).toEqual(alone.get(p));
      expect(alone.get(1)).toEqual([(rows[0] as NewOutboxRecord).id]);
      expect(alone.get(2)).toHaveLength(2);
      expect(ids((await readMany([3], 10)).get(3) ?? [])).toEqual([
        (rows[4] as NewOutboxRecord).id,
      ]);
      expect((await readMany([0, 2], 0)).get(2)).toEqual([]);
    });

    it('reads several partitions together without the rows it is told to skip', async () => {
      const { a, store } = await fresh();
      const readMany = the(store.readPendingMany?.bind(store));
      await enqueue(
        a,
        [0, 1, 2, 3, 4, 5].map(() => record(1, 'k')),
      );
      await enqueue(a, [record(2), record(2)]);
      const one = (await store.readPending(1, 10)).map((row) => row.seq);
      const two = await store.readPending(2, 10);
      expect(one).toHaveLength(6);
      // In flight: partition 1's first three rows; partition 2 skips nothing.
      const skip = new Map([[1, one.slice(0, 3)]]);
      const read = await readMany([1, 2], 2, skip);
      expect((read.get(1) ?? []).map((row) => row.seq)).toEqual(one.slice(3, 5));
      expect(ids(read.get(2) ?? [])).toEqual(ids(two));
      // Alone, the skip names the rows themselves.
      const alone = await readMany([1], 10, skip);
      expect((alone.get(1) ?? []).map((row) => row.seq)).toEqual(one.slice(3));
      // Without it, the same rows as before.
      expect(ids((await readMany([1, 2], 10)).get(1) ?? [])).toHaveLength(6);
    });

    it('marks several partitions together, each only with its current fence', async () => {
      const { a, store } = await fresh(3);
      const markMany = the(store.markPublishedMany?.bind(store));
      const rows = [record(0), record(0), record(1), record(2)];
      await enqueue(a, rows);
      const leases = await leaseOf(store, 'relay-a');
      const [zero, one, two] = [0, 1, 2].map((p) => the(leases.get(p)));
      const [r0, r1, r2, r3] = rows.map((r) => r.id) as [string, string, string, string];
      const stale: Lease = { partition: 1, fence: (one as Lease).fence - 1n };
      expect(
        await markMany('relay-a', [
          { lease: zero as Lease, ids: [r0, r1] },
          { lease: stale, ids: [r2] },
          // A row of another partition is not marked under this one's lease.
          { lease: two as Lease, ids: [r3, r2] },
        ]),
      ).toEqual([2, 0, 1]);
      expect(await store.readPending(0, 10)).toEqual([]);
      expect(ids(await store.readPending(1, 10))).toEqual([r2]);
      expect(await store.readPending(2, 10)).toEqual([]);
      expect(await markMany('relay-b', [{ lease: one as Lease, ids: [r2] }])).toEqual([0]);
      expect(
        await markMany('relay-a', [
          { lease: one as Lease, ids: [r2] },
          { lease: zero as Lease, ids: [r0] },
        ]),
      ).toEqual([1, 0]);
    });

    it('records failures: attempts, backoff, dead, and retries dead rows', async () => {
      const { a, store } = await fresh();
      const rows = [record(0), record(0), record(0)];
      await enqueue(a, rows);
      const [r0, r1, r2] = rows as [NewOutboxRecord, NewOutboxRecord, NewOutboxRecord];
      const lease = the((await leaseOf(store, 'relay-a')).get(0));
      expect(
        await store.markFailed('relay-a', lease, r0.id, 'first', { dead: false, retryInMs: 0 }),
      ).toBe(true);
      const [again] = await store.readPending(0, 1);
      expect(again?.id).toBe(r0.id);
      expect(again?.attempts).toBe(1);

      expect(
        await store.markFailed('relay-a', lease, r0.id, 'poison', { dead: true, retryInMs: 0 }),
      ).toBe(true);
      expect(
        await store.markFailed('relay-a', lease, r1.id, 'poison', { dead: true, retryInMs: 0 }),
      ).toBe(true);
      expect(ids(await store.readPending(0, 10))).toEqual([r2.id]);
      expect((await store.status()).find((s) => s.partition === 0)).toMatchObject({
        pending: 1,
        dead: 2,
      });

      expect(await store.retryDead([r1.id])).toBe(1);
      expect(ids(await store.readPending(0, 10))).toEqual([r1.id, r2.id]);
      expect((await store.readPending(0, 10))[0]?.attempts).toBe(0);
      expect(await store.retryDead()).toBe(1);
      expect(ids(await store.readPending(0, 10))).toEqual([r0.id, r1.id, r2.id]);
      expect(await store.retryDead()).toBe(0);
    });

    it('gives each partition to one owner at a time, also when owners race', async () => {
      const { a, b } = await fresh(8);
      const [left, right] = await Promise.all([
        a.store.acquire('relay-a', 8, 60_000),
        b.store.acquire('relay-b', 8, 60_000),
      ]);
      const taken = [...left, ...right].map((lease) => lease.partition).sort((x, y) => x - y);
      expect(taken).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(await a.store.acquire('relay-c', 8, 60_000)).toEqual([]);

      const status = await a.store.status();
      for (const lease of left) expect(status[lease.partition]?.owner).toBe('relay-a');
      for (const lease of right) expect(status[lease.partition]?.owner).toBe('relay-b');
    });

    it('takes at most `max` partitions and hands released ones on with a higher fence', async () => {
      const { a, b } = await fresh(4);
      const two = await a.store.acquire('relay-a', 2, 60_000);
      expect(two).toHaveLength(2);
      const rest = await b.store.acquire('relay-b', 4, 60_000);
      expect(rest).toHaveLength(2);
      const given = the(two[0]);
      await a.store.release('relay-a', [given.partition]);
      const [moved] = await b.store.acquire('relay-b', 4, 60_000);
      expect(moved?.partition).toBe(given.partition);
      expect(the(moved).fence > given.fence).toBe(true);
      const held = await a.store.heartbeat('relay-a', 60_000);
      expect(held.map((lease) => lease.partition)).toEqual([the(two[1]).partition]);
    });

    it('lets another owner take an expired lease, fencing off the old owner', async () => {
      const { a, b } = await fresh(2);
      await enqueue(a, [record(0), record(0)]);
      const old = await a.store.acquire('relay-a', 2, 150);
      expect(old).toHaveLength(2);
      expect(await b.store.acquire('relay-b', 2, 60_000)).toEqual([]);
      await delay(400);
      const taken = await b.store.acquire('relay-b', 2, 60_000);
      expect(taken.map((lease) => lease.partition).sort()).toEqual([0, 1]);
      const oldZero = the(old.find((lease) => lease.partition === 0));
      const newZero = the(taken.find((lease) => lease.partition === 0));
      expect(newZero.fence).toBe(oldZero.fence + 1n);

      expect(await a.store.heartbeat('relay-a', 60_000)).toEqual([]);
      const rows = await a.store.readPending(0, 10);
      expect(await a.store.markPublished('relay-a', oldZero, ids(rows))).toBe(0);
      const first = the(rows[0]);
      expect(
        await a.store.markFailed('relay-a', oldZero, first.id, 'late', {
          dead: true,
          retryInMs: 0,
        }),
      ).toBe(false);
      expect(ids(await b.store.readPending(0, 10))).toEqual(ids(rows));
      expect(await b.store.markPublished('relay-b', newZero, ids(rows))).toBe(2);
    });

    it('keeps leases alive with heartbeats and counts live relays', async () => {
      const { a, b } = await fresh(2);
      await a.store.heartbeat('relay-a', 60_000);
      await b.store.heartbeat('relay-b', 60_000);
      expect(await a.store.liveRelays()).toBe(2);
      const held = await a.store.acquire('relay-a', 2, 300);
      await delay(150);
      const renewed = await a.store.heartbeat('relay-a', 60_000);
      const byPartition = (x: Lease, y: Lease): number => x.partition - y.partition;
      expect([...renewed].sort(byPartition)).toEqual([...held].sort(byPartition));
      await delay(300);
      expect(await b.store.acquire('relay-b', 2, 60_000)).toEqual([]);
      await b.store.release('relay-b', [], true);
      expect(await a.store.liveRelays()).toBe(1);
      await a.store.release('relay-a', [0, 1], true);
      expect(await a.store.liveRelays()).toBe(0);
      expect(await b.store.acquire('relay-b', 2, 60_000)).toHaveLength(2);
    });

    it('marks published only with the current fence, only rows of the lease partition', async () => {
      const { a, store } = await fresh(2);
      const rows = [record(0), record(0), record(1)];
      await enqueue(a, rows);
      const leases = await leaseOf(store, 'relay-a');
      const zero = the(leases.get(0));
      const stale: Lease = { partition: 0, fence: zero.fence - 1n };
      const all = rows.map((r) => r.id);
      expect(await store.markPublished('relay-a', stale, all)).toBe(0);
      expect(await store.markPublished('relay-b', zero, all)).toBe(0);
      expect(await store.readPending(0, 10)).toHaveLength(2);
      expect(await store.markPublished('relay-a', zero, all)).toBe(2);
      expect(await store.readPending(0, 10)).toEqual([]);
      expect(await store.readPending(1, 10)).toHaveLength(1);
      expect(await store.markPublished('relay-a', zero, all)).toBe(0);
    });

    it('republishes rows created since a time', async () => {
      const { a, store } = await fresh(1);
      const before = new Date(Date.now() - 1000);
      const rows = [record(0), record(0)];
      await enqueue(a, rows);
      const lease = the((await leaseOf(store, 'relay-a')).get(0));
      expect(await store.markPublished('relay-a', lease, ids(await store.readPending(0, 10)))).toBe(
        2,
      );
      expect(await store.republish(new Date(Date.now() + 60_000))).toBe(0);
      expect(await store.readPending(0, 10)).toEqual([]);
      expect(await store.republish(before)).toBe(2);
      expect(ids(await store.readPending(0, 10))).toEqual(rows.map((r) => r.id));
    });

    it('purges published rows in batches and leaves pending ones', async () => {
      const { a, store } = await fresh(1);
      await enqueue(a, [record(0), record(0), record(0), record(0), record(0)]);
      const lease = the((await leaseOf(store, 'relay-a')).get(0));
      expect(await store.markPublished('relay-a', lease, ids(await store.readPending(0, 10)))).toBe(
        5,
      );
      const waiting = record(0);
      await enqueue(a, [waiting]);
      expect(await store.purgePublished(new Date(Date.now() - 60_000), 10)).toBe(0);
      const later = new Date(Date.now() + 60_000);
      expect(await store.purgePublished(later, 2)).toBe(2);
      expect(await store.purgePublished(later, 2)).toBe(2);
      expect(await store.purgePublished(later, 2)).toBe(1);
      expect(await store.purgePublished(later, 2)).toBe(0);
      expect(ids(await store.readPending(0, 10))).toEqual([waiting.id]);
      expect(await store.republish(new Date(0))).toBe(0);
    });

    it('reports per-partition status with lease owners', async () => {
      const { a, store } = await fresh(2);
      await enqueue(a, [record(1), record(1)]);
      const [lease] = await store.acquire('relay-a', 1, 60_000);
      const status = await store.status();
      expect(status.map((s) => s.partition)).toEqual([0, 1]);
      const one = the(status.find((s) => s.partition === 1));
      expect(one.pending).toBe(2);
      expect(one.dead).toBe(0);
      expect(one.oldestPendingMs).toBeGreaterThanOrEqual(0);
      expect(the(status.find((s) => s.partition === 0)).oldestPendingMs).toBeUndefined();
      const owned = the(status.find((s) => s.partition === the(lease).partition));
      expect(owned.owner).toBe('relay-a');
      expect(owned.fence).toBe(the(lease).fence);
      expect(owned.leaseExpiresAt?.getTime()).toBeGreaterThan(Date.now());
    });
  });
}
