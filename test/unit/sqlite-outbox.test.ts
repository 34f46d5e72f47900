import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTopic, isFerryError, type Codec } from '../../src/index.js';
import { partitionFor } from '../../src/core/message.js';
import {
  openSqliteDatabase,
  sqliteInbox,
  sqliteOutbox,
  sqliteOutboxStore,
} from '../../src/sqlite.js';
import { deferred, uniqueName } from '../helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-sqlite-outbox-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const open: BetterSqlite3.Database[] = [];
afterEach(() => {
  for (const db of open.splice(0)) db.close();
});

async function database(): Promise<BetterSqlite3.Database> {
  const db = await openSqliteDatabase(join(dir, `${uniqueName('db')}.db`));
  open.push(db);
  return db;
}
const pendingCount = (db: BetterSqlite3.Database, table: string): number =>
  (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;

describe('sqlite outbox', () => {
  it('rejects table names that are not identifiers', async () => {
    const db = await database();
    for (const table of ['x; drop table users', 'a b', '1abc', '"quoted"', 'main.outbox', '']) {
      let error: unknown;
      try {
        sqliteOutboxStore({ database: db, table });
      } catch (caught) {
        error = caught;
      }
      expect(isFerryError(error, 'INVALID_NAME')).toBe(true);
    }
    expect(() => sqliteInbox({ database: db, table: 'x; drop table y' })).toThrow(
      /Invalid table name/,
    );
  });

  it('enqueues inside db.transaction() with enqueueSync and with the async enqueue', async () => {
    const db = await database();
    const outbox = sqliteOutbox({ database: db, partitions: 8 });
    await outbox.migrate();
    const topic = defineTopic('order.created', { schema: z.object({ id: z.string() }) });
    const ids = db.transaction(() => {
      const first = outbox.enqueueSync(db, topic, { id: 'a' }, { key: 'customer-1' });
      // The insert runs before enqueue returns when the schema validates synchronously.
      void outbox.enqueue(db, topic, { id: 'b' }, { key: 'customer-1' });
      return first;
    })();
    expect(pendingCount(db, 'ferry_outbox')).toBe(2);
    const rows = await outbox.store.readPending(partitionFor('customer-1', 8), 10);
    expect(rows.map((row) => row.id)[0]).toBe(ids.id);
    expect(rows.map((row) => JSON.parse(row.body.toString()) as unknown)).toEqual([
      { id: 'a' },
      { id: 'b' },
    ]);
    expect(rows[0]?.headers['content-type']).toBe('application/json');
  });

  it('validates and encodes before writing anything', async () => {
    const db = await database();
    const outbox = sqliteOutbox({ database: db });
    await outbox.migrate();
    const strict = defineTopic('strict', { schema: z.object({ n: z.number() }) });
    const failing: Codec<unknown> = {
      contentType: 'x/fail',
      encode: () => {
        throw new Error('no bytes today');
      },
      decode: (body) => body,
    };
    const broken = defineTopic('broken', { codec: failing });
    db.exec('BEGIN');
    await expect(outbox.enqueue(db, strict, { n: 'one' } as never)).rejects.toMatchObject({
      code: 'SCHEMA_VIOLATION',
    });
    expect(() => outbox.enqueueSync(db, strict, { n: 'one' } as never)).toThrow(/invalid/);
    await expect(outbox.enqueue(db, broken, 1)).rejects.toMatchObject({ code: 'CODEC_FAILED' });
    db.exec('COMMIT');
    expect(pendingCount(db, 'ferry_outbox')).toBe(0);
  });

  it('refuses enqueue outside a transaction and sync enqueue of async schemas', async () => {
    const db = await database();
    const outbox = sqliteOutbox({ database: db });
    await outbox.migrate();
    const plain = defineTopic<{ n: number }>('plain');
    await expect(outbox.enqueue(db, plain, { n: 1 })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    const asyncSchema: StandardSchemaV1<unknown, { n: number }> = {
      '~standard': {
        version: 1,
        vendor: 'test',
        validate: (value) => Promise.resolve({ value: value as { n: number } }),
      },
    };
    const slow = defineTopic('slow', { schema: asyncSchema });
    db.exec('BEGIN');
    expect(() => outbox.enqueueSync(db, slow, { n: 1 })).toThrow(/asynchronously/);
    await outbox.enqueue(db, slow, { n: 1 });
    db.exec('COMMIT');
    expect(pendingCount(db, 'ferry_outbox')).toBe(1);
  });

  it('learns the partition count from the tables when opened by path', async () => {
    const db = await database();
    await sqliteOutbox({ database: db, partitions: 4 }).migrate();
    const byPath = sqliteOutbox({ database: db.name, partitions: 16 });
    const topic = defineTopic<{ n: number }>('t');
    db.transaction(() => {
      for (let n = 0; n < 50; n++) byPath.enqueueSync(db, topic, { n }, { key: `k${n}` });
    })();
    const max = db.prepare('SELECT max("partition") AS p FROM ferry_outbox').get() as { p: number };
    expect(max.p).toBeLessThan(4);
    expect(byPath.store.partitions).toBe(4);
    await byPath.store.close();
  });

  // The shared inbox behaviour is in test/contract/inbox.ts; this is SQLite's one connection.
  it('inbox: serializes concurrent messages on one connection instead of nesting them', async () => {
    const db = await database();
    const inbox = sqliteInbox({ database: db });
    await inbox.migrate();
    db.exec('CREATE TABLE effects (id TEXT)');
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        inbox.process('audit', `m${i % 10}`, async (tx) => {
          await new Promise((resolve) => setTimeout(resolve, 1));
          tx.prepare('INSERT INTO effects VALUES (?)').run(`audit-${i}`);
        }),
      ),
    );
    expect(results.filter((r) => r.duplicate)).toHaveLength(10);
    expect(pendingCount(db, 'effects')).toBe(10);
  });

  it('serializes ferry work on one file across connections in one process', async () => {
    const db = await database();
    const inbox = sqliteInbox({ database: db });
    await inbox.migrate();
    const store = sqliteOutboxStore({ database: db.name });
    await store.migrate();
    const release = deferred();
    const entered = deferred();
    // A handler that waits on I/O while its transaction holds the file's write lock.
    const handling = inbox.process('billing', 'm1', async (tx) => {
      tx.prepare('SELECT 1').get();
      entered.resolve();
      await release.promise;
    });
    await entered.promise;
    // Without the per-file lock this write would block the event loop until SQLITE_BUSY.
    const beat = store.heartbeat('relay-a', 60_000);
    setTimeout(() => release.resolve(), 20);
    await expect(beat).resolves.toEqual([]);
    await expect(handling).resolves.toEqual({ duplicate: false });
    await store.close();
  });
});
