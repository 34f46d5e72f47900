import mysql from 'mysql2/promise';
import { afterAll, describe, expect, it } from 'vitest';
import { defineTopic, newMessageId } from '../../src/index.js';
import { mysqlInbox, mysqlOutbox, mysqlOutboxStore } from '../../src/mysql.js';
import { openStore } from '../../src/cli/open-store.js';
import { serviceUrl } from '../helpers/services.js';
import { uniqueName, waitFor } from '../helpers/wait.js';
import { inMysqlTransaction } from '../helpers/sql.js';

const url = serviceUrl('FERRY_MYSQL_URL');

describe.skipIf(url === undefined)('mysql store and inbox', () => {
  const pool = mysql.createPool({ uri: url as string, connectionLimit: 6 });
  const drops: string[] = [];
  const outboxTables = (table: string): string[] => [
    table,
    `${table}_lease`,
    `${table}_relay`,
    `${table}_schema`,
  ];

  afterAll(async () => {
    for (const table of drops) await pool.query(`DROP TABLE IF EXISTS \`${table}\``);
    await pool.end();
  });

  const inTransaction = <T>(work: (conn: mysql.PoolConnection) => Promise<T>): Promise<T> =>
    inMysqlTransaction(pool, work);

  it('migrates from many processes at once and agrees on P', async () => {
    const table = uniqueName('mym');
    drops.push(...outboxTables(table));
    const stores = Array.from({ length: 6 }, (_, i) =>
      mysqlOutboxStore({ url: url as string, table, partitions: 5 + i }),
    );
    await Promise.all(stores.map((store) => store.migrate()));
    const counts = new Set(stores.map((store) => store.partitions));
    expect(counts.size).toBe(1);
    expect((await stores[0]?.status())?.length).toBe([...counts][0]);
    await Promise.all(stores.map((store) => store.close()));
  });

  describe('pool ownership', () => {
    it('ends the pools it opened from `url` on close()', async () => {
      // A database of its own tells this test's connections from the others'.
      const database = uniqueName('ferry_own');
      await pool.query(`CREATE DATABASE \`${database}\``);
      const sessions = async (): Promise<number> => {
        const [rows] = await pool.query(
          'SELECT COUNT(*) AS n FROM information_schema.processlist WHERE db = ?',
          [database],
        );
        return Number((rows as Array<{ n: unknown }>)[0]?.n);
      };
      try {
        const own = new URL(url as string);
        own.pathname = `/${database}`;
        const outbox = mysqlOutbox({ url: own.href, table: 'outbox' });
        const inbox = mysqlInbox({ url: own.href, table: 'inbox' });
        await outbox.migrate();
        await inbox.migrate();
        expect((await outbox.store.status()).length).toBe(outbox.store.partitions);
        expect(await sessions()).toBeGreaterThan(0);
        await outbox.store.close();
        await inbox.close();
        await waitFor('the pools ended', async () => (await sessions()) === 0);
      } finally {
        await pool.query(`DROP DATABASE \`${database}\``);
      }
    });

    it('never ends a pool of yours', async () => {
      const table = uniqueName('myy');
      drops.push(...outboxTables(table), `${table}_in`);
      const mine = mysql.createPool({ uri: url as string, connectionLimit: 2 });
      const outbox = mysqlOutbox({ pool: mine, table });
      const inbox = mysqlInbox({ pool: mine, table: `${table}_in` });
      await outbox.migrate();
      await inbox.migrate();
      await outbox.store.close();
      await inbox.close();
      const [rows] = await mine.query('SELECT 1 AS one');
      expect(rows).toEqual([{ one: 1 }]);
      await mine.end();
    });
  });

  it('inserts large batches in several statements, in order, all or nothing', async () => {
    const table = uniqueName('myb');
    drops.push(...outboxTables(table));
    const outbox = mysqlOutbox({ pool, table, partitions: 1 });
    await outbox.migrate();
    const Topic = defineTopic<{ n: number }>('my.batch');
    const items = Array.from({ length: 2500 }, (_, n) => ({ payload: { n }, key: 'k' }));
    await expect(
      inTransaction(async (tx) => {
        await outbox.enqueueMany(tx, Topic, items);
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await outbox.store.readPending(0, 10)).toEqual([]);
    const receipts = await inTransaction((tx) => outbox.enqueueMany(tx, Topic, items));
    const rows = await outbox.store.readPending(0, 5000);
    expect(rows.map((r) => r.id)).toEqual(receipts.map((r) => r.id));
    expect(rows.map((r) => (JSON.parse(r.body.toString()) as { n: number }).n)).toEqual(
      items.map((i) => i.payload.n),
    );
    await outbox.store.close();
  });

  it('keeps times in UTC whatever the session time zone', async () => {
    const table = uniqueName('myz');
    drops.push(...outboxTables(table));
    // One connection, so the store and the writer both run in the +09:00 session.
    const zoned = mysql.createPool({ uri: url as string, connectionLimit: 1 });
    await zoned.query(`SET time_zone = '+09:00'`);
    const store = mysqlOutboxStore({ pool: zoned, table, partitions: 1 });
    await store.migrate();
    const created = new Date();
    const id = newMessageId();
    await store.insert(zoned, [
      {
        id,
        topic: 't',
        key: undefined,
        partition: 0,
        body: Buffer.from('x'),
        headers: {},
        createdAt: created,
      },
    ]);
    const [lease] = await store.acquire('relay-a', 1, 60_000);
    const expires = (await store.status())[0]?.leaseExpiresAt?.getTime() ?? 0;
    expect(Math.abs(expires - (Date.now() + 60_000))).toBeLessThan(30_000);
    const [row] = await store.readPending(0, 1);
    expect(row?.createdAt.getTime()).toBe(created.getTime());
    expect(Math.abs((row?.availableAt.getTime() ?? 0) - Date.now())).toBeLessThan(30_000);
    expect(lease && (await store.markPublished('relay-a', lease, [id]))).toBe(1);
    await store.close();
    await zoned.end();
  });

  // The shared behaviour is in test/contract/inbox.ts; this is MySQL's key length limit.
  it('inbox: refuses a message id longer than its key column, clearly', async () => {
    const table = uniqueName('myi');
    drops.push(table);
    const inbox = mysqlInbox({ pool, table });
    await inbox.migrate();
    await expect(inbox.process('billing', 'x'.repeat(1100), async () => {})).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await inbox.close();
  });

  it('opens mysql: and mariadb: stores with ferry options from the query', async () => {
    const table = uniqueName('myu');
    drops.push(...outboxTables(table), `${table}_in`);
    const base = new URL(url as string);
    for (const scheme of ['mysql:', 'mariadb:']) {
      const text = `${scheme}${base.href.slice(base.protocol.length)}${base.search ? '&' : '?'}table=${table}&partitions=3&inbox=${table}_in`;
      const opened = await openStore(text);
      expect(opened.dialect).toBe('mysql');
      await opened.migrate();
      expect(opened.store.partitions).toBe(3);
      const [row] = await opened.query(undefined, 'SELECT ? AS N', [7]);
      expect(row).toEqual({ n: 7 });
      await opened.close();
    }
  });
});
