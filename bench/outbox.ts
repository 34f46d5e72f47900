import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { createLogger, defineTopic, type OutgoingMessage, type Transport } from '../src/index.js';
import { openSqliteDatabase, sqlite, sqliteOutbox, type SqliteOutbox } from '../src/sqlite.js';
import { buildOutgoing } from './common.js';
import type { BenchCase, BenchGroup } from './harness.js';

const MESSAGES = 5000;
/** Outbox tables filled in setup, so that rounds measure relaying only. */
const PREPARED = 12;

interface Row {
  id: string;
  topic: string;
  key: string | null;
  payload: Buffer;
  headers: string;
  created_at: number;
}

const toMessage = (row: Row): OutgoingMessage => {
  const headers = JSON.parse(row.headers) as Record<string, string>;
  return buildOutgoing({
    id: row.id,
    topic: row.topic,
    key: row.key ?? undefined,
    body: row.payload,
    contentType: headers['content-type'] ?? 'application/json',
    createdAt: new Date(row.created_at),
    headers,
  });
};

/**
 * Relay throughput, SQLite outbox to the SQLite log: the seed's relay loop (select every
 * unpublished row, send one, mark one) against ferry's relay (leased partitions, batches of
 * 500 per partition, one fenced mark per batch), on the same rows and the same transport; and
 * the transport alone publishing the same rows in batches, as the ceiling.
 */
export function outboxGroups(): BenchGroup[] {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-outbox-'));
  const silent = createLogger({ level: 'silent' });
  const topic = defineTopic<{ orderId: string; amount: number; currency: string }>('order.created');
  let db: BetterSqlite3.Database;
  let transport: Transport;
  const tables = new Map<string, SqliteOutbox[]>();

  /** The next filled outbox table of a case (refilled in the round if setup's ran out). */
  async function nextOutbox(name: string): Promise<SqliteOutbox> {
    const ready = tables.get(name)?.shift();
    if (ready) return ready;
    return fill(`${name}_${Date.now()}`);
  }
  async function fill(table: string): Promise<SqliteOutbox> {
    const outbox = sqliteOutbox({ database: db, table, partitions: 16 });
    await outbox.migrate();
    db.transaction(() => {
      for (let i = 0; i < MESSAGES; i++) {
        outbox.enqueueSync(
          db,
          topic,
          { orderId: `o-${i}`, amount: i % 997, currency: 'EUR' },
          { key: `customer-${i % 100}` },
        );
      }
    })();
    return outbox;
  }

  const naive: BenchCase = {
    name: 'naive relay: select all, send one, mark one',
    async round() {
      const { store } = await nextOutbox('naive');
      const select = db.prepare<[], Row>(
        `SELECT id, topic, key, payload, headers, created_at FROM ${store.table} WHERE status = 'pending' ORDER BY seq`,
      );
      const mark = db.prepare(
        `UPDATE ${store.table} SET status = 'published', published_at = ? WHERE id = ?`,
      );
      let sent = 0;
      for (let rows = select.all(); rows.length > 0; rows = select.all()) {
        for (const row of rows) {
          await transport.publish([toMessage(row)]);
          mark.run(Date.now(), row.id);
          sent++;
        }
      }
      return sent;
    },
  };

  const relay: BenchCase = {
    name: 'ferry relay (1 relay, 16 partitions, batch 500)',
    async round() {
      const outbox = await nextOutbox('relay');
      const running = outbox.relay({
        transport,
        logger: silent,
        pollMinMs: 1,
        pollMaxMs: 5,
        retention: 'keep',
      });
      await running.start();
      while (running.stats().published < MESSAGES) {
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      await running.stop();
      return running.stats().published;
    },
  };

  const ceiling: BenchCase = {
    name: 'ceiling: read the rows and publish them in batches of 500, no marks',
    async round() {
      const { store } = await nextOutbox('ceiling');
      const rows = db
        .prepare<[], Row>(
          `SELECT id, topic, key, payload, headers, created_at FROM ${store.table} WHERE status = 'pending' ORDER BY seq`,
        )
        .all();
      for (let i = 0; i < rows.length; i += 500) {
        await transport.publish(rows.slice(i, i + 500).map(toMessage));
      }
      return rows.length;
    },
  };

  return [
    {
      title: `Outbox relay, SQLite outbox → SQLite log (${MESSAGES.toLocaleString('en')} messages)`,
      note: 'Same rows, same transport, one process. Ratio against the naive relay.',
      async setup() {
        db = await openSqliteDatabase(join(dir, 'app.db'));
        transport = sqlite({ path: join(dir, 'log.db'), partitions: 16 });
        for (const name of ['naive', 'relay', 'ceiling']) {
          const filled: SqliteOutbox[] = [];
          for (let i = 0; i < PREPARED; i++) filled.push(await fill(`${name}_${i}`));
          tables.set(name, filled);
        }
      },
      cases: [naive, relay, ceiling],
      async teardown() {
        await transport.close();
        db.close();
        rmSync(dir, { recursive: true, force: true });
      },
    },
  ];
}
