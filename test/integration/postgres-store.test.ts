import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createBus, defineTopic, isFerryError, newMessageId } from '../../src/index.js';
import {
  postgresInbox,
  postgresOutbox,
  postgresOutboxStore,
  type PostgresOutboxStore,
} from '../../src/postgres.js';
import { memory } from '../../src/transports/memory/index.js';
import { openStore } from '../../src/cli/open-store.js';
import { serviceUrl } from '../helpers/services.js';
import { delay, uniqueName, waitFor } from '../helpers/wait.js';
import { inPgTransaction } from '../helpers/sql.js';

const url = serviceUrl('FERRY_PG_URL');

describe('postgres store: invalid names', () => {
  it('refuses table names that are not plain identifiers', () => {
    for (const table of ['x; drop table y', 'a-b', '1abc', 'a.b.c', '"q"']) {
      expect(() => postgresOutboxStore({ url: 'postgres://h/db', table })).toThrow(
        expect.objectContaining({ code: 'INVALID_NAME' }) as Error,
      );
    }
    expect(() => postgresOutboxStore({ table: 'ok' })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }) as Error,
    );
  });
});

describe.skipIf(url === undefined)('postgres store and inbox', () => {
  const pool = new pg.Pool({ connectionString: url, max: 6 });
  const drops: string[] = [];
  const outboxTables = (table: string): string[] => [
    table,
    `${table}_lease`,
    `${table}_relay`,
    `${table}_schema`,
  ];

  afterAll(async () => {
    for (const table of drops) await pool.query(`DROP TABLE IF EXISTS ${table}`);
    await pool.end();
  });

  const inTransaction = <T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> =>
    inPgTransaction(pool, work);

  it('migrates from many processes at once and agrees on P', async () => {
    const table = uniqueName('pgm');
    drops.push(...outboxTables(table).map((t) => `"${t}"`));
    const stores = Array.from({ length: 6 }, (_, i) =>
      postgresOutboxStore({ url: url as string, table, partitions: 5 + i }),
    );
    await Promise.all(stores.map((store) => store.migrate()));
    const counts = new Set(stores.map((store) => store.partitions));
    expect(counts.size).toBe(1);
    expect((await stores[0]?.status())?.length).toBe([...counts][0]);
    await Promise.all(stores.map((store) => store.close()));
  });

  it('reads pending rows in numeric seq order (past 9, 99, ...)', async () => {
    const table = uniqueName('pgo');
    drops.push(...outboxTables(table).map((t) => `"${t}"`));
    const outbox = postgresOutbox({ pool, table, partitions: 1 });
    await outbox.migrate();
    const Topic = defineTopic<{ n: number }>('pg.order');
    const receipts = await inTransaction((tx) =>
      outbox.enqueueMany(
        tx,
        Topic,
        Array.from({ length: 150 }, (_, n) => ({ payload: { n }, key: 'k' })),
      ),
    );
    const rows = await outbox.store.readPending(0, 1000);
    expect(rows.map((r) => r.id)).toEqual(receipts.map((r) => r.id));
    expect(rows.map((r) => r.seq)).toEqual(
      [...rows.map((r) => r.seq)].sort((a, b) => (a < b ? -1 : 1)),
    );
    await outbox.store.close();
  });

  it('works on a schema-qualified table', async () => {
    const schema = uniqueName('pgs');
    await pool.query(`CREATE SCHEMA "${schema}"`);
    const store = postgresOutboxStore({ pool, table: `${schema}.outbox`, partitions: 2 });
    await store.migrate();
    const id = newMessageId();
    await inTransaction((tx) =>
      store.insert(tx, [
        {
          id,
          topic: 't',
          key: 'k',
          partition: 1,
          body: Buffer.from('x'),
          headers: {},
          createdAt: new Date(),
        },
      ]),
    );
    expect((await store.readPending(1, 10)).map((r) => r.id)).toEqual([id]);
    await store.close();
    await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
  });

  it('enqueues through a named statement on a pg client, and as plain text with prepare off', async () => {
    const Topic = defineTopic<{ n: number }>('pg.prepared');
    const prepared = async (client: pg.PoolClient, text: string): Promise<number> => {
      const result = await client.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement LIKE $1',
        [`%${text}%`],
      );
      return Number(result.rows[0]?.n);
    };
    for (const prepare of [true, false]) {
      const table = uniqueName('pgp');
      drops.push(...outboxTables(table).map((t) => `"${t}"`));
      const outbox = postgresOutbox({ pool, table, prepare });
      await outbox.migrate();
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await outbox.enqueue(client, Topic, { n: 1 });
        await outbox.enqueue(client, Topic, { n: 2 });
        await client.query('COMMIT');
        expect(await prepared(client, `INSERT INTO "${table}"`)).toBe(prepare ? 1 : 0);
      } finally {
        client.release();
      }
      expect((await outbox.store.status()).reduce((sum, p) => sum + p.pending, 0)).toBe(2);
      await outbox.store.close();
    }
  });

  describe('pool ownership', () => {
    /** Sessions of one application name: the connections of one pool. */
    const sessions = async (application: string): Promise<number> => {
      const result = await pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
        [application],
      );
      return Number(result.rows[0]?.n);
    };
    const named = (application: string): string => {
      const named = new URL(url as string);
      named.searchParams.set('application_name', application);
      return named.href;
    };
    const Topic = defineTopic<{ n: number }>('pg.own');

    it('ends the pools it opened from `url` on close()', async () => {
      const table = uniqueName('pgo');
      drops.push(...outboxTables(table).map((t) => `"${t}"`), `"${table}_in"`);
      const outboxApp = uniqueName('ferry_outbox');
      const inboxApp = uniqueName('ferry_inbox');
      const outbox = postgresOutbox({ url: named(outboxApp), table });
      const inbox = postgresInbox({ url: named(inboxApp), table: `${table}_in` });
      await outbox.migrate();
      await inbox.migrate();
      await inTransaction((tx) => outbox.enqueue(tx, Topic, { n: 1 }));
      expect((await outbox.store.status()).reduce((sum, p) => sum + p.pending, 0)).toBe(1);
      expect(await sessions(outboxApp)).toBeGreaterThan(0);
      expect(await sessions(inboxApp)).toBeGreaterThan(0);
      await outbox.store.close();
      await inbox.close();
      await waitFor('the outbox pool ended', async () => (await sessions(outboxApp)) === 0);
      await waitFor('the inbox pool ended', async () => (await sessions(inboxApp)) === 0);
    });

    it('never ends a pool of yours', async () => {
      const table = uniqueName('pgy');
      drops.push(...outboxTables(table).map((t) => `"${t}"`), `"${table}_in"`);
      const mine = new pg.Pool({ connectionString: url, max: 2 });
      const outbox = postgresOutbox({ pool: mine, table });
      const inbox = postgresInbox({ pool: mine, table: `${table}_in` });
      await outbox.migrate();
      await inbox.migrate();
      await outbox.store.close();
      await inbox.close();
      expect((await mine.query('SELECT 1 AS one')).rows[0]).toEqual({ one: 1 });
      await mine.end();
    });

    it('takes `pool` or `url`, and names `url` when given `connectionString`', () => {
      expect(() => postgresOutbox({ pool, url: url as string })).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT' }) as Error,
      );
      const old = { connectionString: url } as unknown as { url: string };
      expect(() => postgresOutboxStore(old)).toThrow(
        expect.objectContaining({
          code: 'INVALID_ARGUMENT',
          message: expect.stringContaining('`url`') as string,
        }) as Error,
      );
    });
  });

  describe('NOTIFY wake-ups', () => {
    let store: PostgresOutboxStore;
    const Topic = defineTopic<{ n: number }>('pg.wake');

    it('wakes listeners when a writer commits, not before and not on rollback', async () => {
      const table = uniqueName('pgn');
      drops.push(...outboxTables(table).map((t) => `"${t}"`));
      const outbox = postgresOutbox({ pool, table, partitions: 2, notify: true });
      store = outbox.store;
      await outbox.migrate();
      let wakes = 0;
      const named: number[][] = [];
      const subscription = await store.listen((partitions) => {
        wakes++;
        if (partitions !== undefined) named.push([...partitions]);
      });

      const client = await pool.connect();
      await client.query('BEGIN');
      await outbox.enqueue(client, Topic, { n: 1 });
      await delay(200);
      expect(wakes).toBe(0);
      await client.query('ROLLBACK');
      await delay(200);
      expect(wakes).toBe(0);

      await client.query('BEGIN');
      const { id } = await outbox.enqueue(client, Topic, { n: 2 });
      await client.query('COMMIT');
      client.release();
      await waitFor('a wake-up after commit', () => wakes > 0);
      // It names the partition the row went to, so a relay reads only that one.
      const [row] = (await store.readPending(0, 10)).concat(await store.readPending(1, 10));
      expect(row?.id).toBe(id);
      expect(named).toEqual([[row?.partition]]);
      await subscription.close();
      await store.close();
      await expect(store.listen(() => {})).rejects.toMatchObject({ code: 'CLOSED' });
    });

    it('refuses listen() without notify', async () => {
      const plain = postgresOutboxStore({ pool, table: uniqueName('pgx') });
      await expect(plain.listen(() => {})).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    });

    it('relays of a notifying outbox publish committed messages', async () => {
      const table = uniqueName('pgr');
      drops.push(...outboxTables(table).map((t) => `"${t}"`));
      const outbox = postgresOutbox({ pool, table, partitions: 4, notify: true });
      await outbox.migrate();
      const transport = memory();
      const bus = createBus({ transport });
      const seen: number[] = [];
      await bus.subscribe(Topic, { group: 'g', from: 'earliest' }, async (message) => {
        seen.push(message.payload.n);
      });
      // A long idle poll: delivery in time shows the NOTIFY path is what woke the relay.
      const relay = outbox.relay({ transport, pollMinMs: 30_000, pollMaxMs: 30_000 });
      await relay.start();
      await delay(100);
      await inTransaction(async (tx) => {
        await outbox.enqueueMany(
          tx,
          Topic,
          [1, 2, 3].map((n) => ({ payload: { n }, key: 'same' })),
        );
      });
      await waitFor('three relayed messages', () => seen.length === 3, 10_000);
      expect(seen).toEqual([1, 2, 3]);
      await relay.stop();
      await bus.close();
      await outbox.store.close();
    });
  });

  describe('URLs', () => {
    it('opens postgres: and postgresql: stores with ferry options from the query', async () => {
      const table = uniqueName('pgu');
      drops.push(...outboxTables(table).map((t) => `"${t}"`), `"${table}_in"`);
      const base = new URL(url as string);
      for (const scheme of ['postgres:', 'postgresql:']) {
        base.protocol = scheme;
        base.searchParams.set('table', table);
        base.searchParams.set('partitions', '3');
        base.searchParams.set('inbox', `${table}_in`);
        const opened = await openStore(base.href);
        expect(opened.dialect).toBe('postgres');
        await opened.migrate();
        expect(opened.store.partitions).toBe(3);
        const [row] = await opened.query(undefined, "SELECT ? AS n, '?' AS q", [7]);
        expect(row).toEqual({ n: '7', q: '?' });
        await opened.close();
      }
    });

    it('never shows the password of a URL it cannot use', async () => {
      const error = await openStore('postgres://u:s3cret@127.0.0.1:1/db?table=a-b').catch(
        (e: unknown) => e,
      );
      expect(isFerryError(error, 'INVALID_NAME')).toBe(true);
      const refused = postgresOutboxStore({
        url: 'postgres://u:s3cret@127.0.0.1:1/db',
      });
      const failure = await refused.migrate().catch((e: unknown) => e);
      expect(isFerryError(failure, 'CONNECTION_FAILED')).toBe(true);
      expect(String((failure as Error).message)).not.toContain('s3cret');
      await refused.close();
    });
  });
});
