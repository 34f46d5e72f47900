import { sql, type SQL } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgSchema, text } from 'drizzle-orm/pg-core';
import { CompiledQuery, Kysely, PostgresDialect, type Transaction } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineTopic } from '../../src/index.js';
import { postgresOutbox, type PgQueryable } from '../../src/postgres.js';
import { serviceUrl } from '../helpers/services.js';
import { uniqueName } from '../helpers/wait.js';

// The two adapters below are the ones the docs show: an ORM transaction as the
// `{ query(text, values) }` that ferry's PostgreSQL store writes through.

/** Kysely: run ferry's statement on the transaction's connection. */
const kyselyTx = <Db>(trx: Transaction<Db>): PgQueryable => ({
  query: (text, values) => trx.executeQuery(CompiledQuery.raw(text, values)),
});

/** Drizzle (node-postgres): rebuild ferry's `$n` statement as a drizzle `sql` value. */
const drizzleTx = (tx: { execute(query: SQL): PromiseLike<unknown> }): PgQueryable => ({
  query: async (text, values = []) =>
    tx.execute(
      sql.join(
        text
          .split(/(\$\d+)/)
          .map((part) =>
            /^\$\d+$/.test(part) ? sql.param(values[Number(part.slice(1)) - 1]) : sql.raw(part),
          ),
      ),
    ),
});

interface Order {
  id: string;
  total: number;
}
const OrderCreated = defineTopic<Order>('order.created');

const url = serviceUrl('FERRY_PG_URL');

describe.skipIf(url === undefined)('enqueue from ORM transactions (PostgreSQL)', () => {
  const schema = uniqueName('orm');
  const pool = new pg.Pool({ connectionString: url, max: 4 });

  beforeAll(async () => {
    await pool.query(`CREATE SCHEMA "${schema}"`);
    await pool.query(`CREATE TABLE "${schema}".orders (id text PRIMARY KEY, total integer)`);
  });
  afterAll(async () => {
    await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
    await pool.end();
  });

  const orderIds = async (): Promise<string[]> =>
    (await pool.query<{ id: string }>(`SELECT id FROM "${schema}".orders ORDER BY id`)).rows.map(
      (row) => row.id,
    );

  for (const notify of [false, true]) {
    const mode = notify ? 'with NOTIFY' : 'without NOTIFY';

    it(`Kysely ${mode}: order and message commit together, or neither`, async () => {
      interface Db {
        orders: Order;
      }
      const db = new Kysely<Db>({ dialect: new PostgresDialect({ pool }) }).withSchema(schema);
      const outbox = postgresOutbox({ pool, table: `${schema}.kysely_${notify}`, notify });
      await outbox.migrate();
      const order = { id: `k-${notify}-1`, total: 42 };

      const receipt = await db.transaction().execute(async (trx) => {
        await trx.insertInto('orders').values(order).execute();
        return outbox.enqueue(kyselyTx(trx), OrderCreated, order, { key: order.id });
      });

      const rolledBack = { id: `k-${notify}-2`, total: 7 };
      await expect(
        db.transaction().execute(async (trx) => {
          await trx.insertInto('orders').values(rolledBack).execute();
          await outbox.enqueue(kyselyTx(trx), OrderCreated, rolledBack, { key: rolledBack.id });
          throw new Error('payment declined');
        }),
      ).rejects.toThrow('payment declined');

      expect((await orderIds()).filter((id) => id.startsWith(`k-${notify}`))).toEqual([order.id]);
      const pending = await pendingOf(outbox);
      expect(pending.map((row) => row.id)).toEqual([receipt.id]);
      expect(JSON.parse(pending[0]?.body.toString() ?? '')).toEqual(order);
      expect(pending[0]?.key).toBe(order.id);
      await outbox.store.close();
    });

    it(`Drizzle ${mode}: order and message commit together, or neither`, async () => {
      const orders = pgSchema(schema).table('orders', {
        id: text('id').primaryKey(),
        total: integer('total'),
      });
      const db = drizzle({ client: pool });
      const outbox = postgresOutbox({ pool, table: `${schema}.drizzle_${notify}`, notify });
      await outbox.migrate();
      const order = { id: `d-${notify}-1`, total: 42 };

      const receipt = await db.transaction(async (tx) => {
        await tx.insert(orders).values(order);
        return outbox.enqueue(drizzleTx(tx), OrderCreated, order, { key: order.id });
      });

      const rolledBack = { id: `d-${notify}-2`, total: 7 };
      await expect(
        db.transaction(async (tx) => {
          await tx.insert(orders).values(rolledBack);
          await outbox.enqueue(drizzleTx(tx), OrderCreated, rolledBack, { key: rolledBack.id });
          throw new Error('payment declined');
        }),
      ).rejects.toThrow('payment declined');

      expect((await orderIds()).filter((id) => id.startsWith(`d-${notify}`))).toEqual([order.id]);
      const pending = await pendingOf(outbox);
      expect(pending.map((row) => row.id)).toEqual([receipt.id]);
      expect(JSON.parse(pending[0]?.body.toString() ?? '')).toEqual(order);
      await outbox.store.close();
    });
  }
});

async function pendingOf(outbox: ReturnType<typeof postgresOutbox>) {
  const all = await Promise.all(
    Array.from({ length: outbox.store.partitions }, (_, p) => outbox.store.readPending(p, 100)),
  );
  return all.flat();
}
