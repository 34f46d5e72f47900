import type { PublishItem, PublishOptions, PublishReceipt, Inbox } from '../core/bus.js';
import { createSqlInbox } from '../outbox/sql/inbox.js';
import { FerryError } from '../core/errors.js';
import { partitionFor } from '../core/message.js';
import { createOutbox, prepareRecords, type Outbox } from '../outbox/outbox.js';
import type {
  Lease,
  NewOutboxRecord,
  OutboxRecord,
  OutboxStore,
  PartitionStatus,
} from '../outbox/store.js';
import type { Topic } from '../core/topic.js';
import { assertIdentifier, quoteIdentifier } from './identifier.js';
import {
  DEFAULT_PARTITIONS,
  FORGET_RELAYS_AFTER_MS,
  MAX_ERROR_TEXT,
  checkPartitions,
  storeError,
} from './sql-shared.js';
import {
  openSqliteDatabase,
  sqliteTransaction,
  withLock,
  type SqliteDatabase,
  type SqliteStatement,
} from './sqlite-database.js';

export {
  openSqliteDatabase,
  sqliteTransaction,
  type SqliteDatabase,
  type SqliteOpenOptions,
  type SqliteStatement,
} from './sqlite-database.js';

/** A database handle, or a path to open (lazily, with {@link openSqliteDatabase}). */
export type SqliteSource = SqliteDatabase | string;

function connector(source: SqliteSource): {
  get(): Promise<SqliteDatabase>;
  current(): SqliteDatabase | undefined;
  close(): Promise<void>;
} {
  const owned = typeof source === 'string';
  let db: SqliteDatabase | undefined = owned ? undefined : source;
  let opening: Promise<SqliteDatabase> | undefined;
  return {
    get: () => {
      if (db) return Promise.resolve(db);
      opening ??= openSqliteDatabase(source as string).then((opened) => (db = opened));
      return opening;
    },
    current: () => db,
    async close() {
      if (owned && db?.open) await withLock(db, () => db?.close());
    },
  };
}

function sqliteTableName(name: string): string {
  assertIdentifier(name);
  if (name.includes('.')) {
    throw new FerryError('INVALID_NAME', `SQLite table names cannot be schema-qualified: ${name}`);
  }
  return name;
}

export interface SqliteOutboxOptions {
  /** Outbox table; the lease and relay tables add `_lease` and `_relay`. Default `ferry_outbox`. */
  readonly table?: string;
  /** Partitions, fixed when the tables are created (read back afterwards). Default 16. */
  readonly partitions?: number;
}

/** The SQLite outbox store: synchronous inserts for use inside `db.transaction(...)`. */
export interface SqliteOutboxStore extends OutboxStore<SqliteDatabase> {
  readonly table: string;
  /** Inserts rows on `tx`, which must be inside a transaction. */
  insertSync(tx: SqliteDatabase, records: readonly NewOutboxRecord[]): void;
}

interface Row {
  id: string;
  /** As text, since the column can exceed 2^53 and is ordered by as a number. */
  seq_text: string;
  topic: string;
  key: string | null;
  partition: number;
  payload: Buffer;
  headers: string;
  created_at: number;
  available_at: number;
  attempts: number;
}

interface LeaseRow {
  partition: number;
  fence: string;
}

const toLease = (row: LeaseRow): Lease => ({ partition: row.partition, fence: BigInt(row.fence) });

/**
 * Outbox tables in a SQLite file. Several processes may run relays on one file: leases are
 * taken by compare-and-set inside SQLite's single-writer transactions. Times are this
 * host's clock (a SQLite file is shared only by processes of one host).
 */
export function sqliteOutboxStore(
  source: SqliteSource,
  options: SqliteOutboxOptions = {},
): SqliteOutboxStore {
  const table = sqliteTableName(options.table ?? 'ferry_outbox');
  const configured = checkPartitions(options.partitions ?? DEFAULT_PARTITIONS);
  const t = quoteIdentifier(table);
  const lease = quoteIdentifier(`${table}_lease`);
  const relay = quoteIdentifier(`${table}_relay`);
  const pendingIndex = quoteIdentifier(`${table}_pending`);
  const deadIndex = quoteIdentifier(`${table}_dead`);
  const schema = quoteIdentifier(`${table}_schema`);
  const connection = connector(source);
  let partitions: number | undefined;

  /** Statements are prepared once per connection (the store's own and each user's). */
  const statements = new WeakMap<SqliteDatabase, Map<string, SqliteStatement>>();
  const sql = (db: SqliteDatabase, text: string): SqliteStatement => {
    let cache = statements.get(db);
    if (!cache) statements.set(db, (cache = new Map<string, SqliteStatement>()));
    let statement = cache.get(text);
    if (!statement) cache.set(text, (statement = db.prepare(text)));
    return statement;
  };

  /** P as stored by the migration, or undefined before the tables exist. */
  const readPartitions = (db: SqliteDatabase): number | undefined => {
    const exists = db
      .prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`)
      .get(`${table}_lease`);
    if (!exists) return undefined;
    const row = sql(db, `SELECT count(*) AS n FROM ${lease}`).get() as { n: number };
    return row.n > 0 ? row.n : undefined;
  };
  const current = connection.current();
  if (current) partitions = readPartitions(current);

  const run = <T>(work: (db: SqliteDatabase) => T): Promise<T> =>
    connection.get().then((db) => withLock(db, () => work(db)));
  const write = <T>(work: (db: SqliteDatabase) => T): Promise<T> =>
    run((db) => {
      db.exec('BEGIN IMMEDIATE');
      try {
        const result = work(db);
        db.exec('COMMIT');
        return result;
      } catch (error) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw error;
      }
    });
  const guard = `EXISTS (SELECT 1 FROM ${lease} WHERE "partition" = @partition AND owner = @owner AND fence = @fence AND expires_at > @now)`;

  const store: SqliteOutboxStore = {
    dialect: 'sqlite',
    table,
    get partitions() {
      return partitions ?? configured;
    },

    migrate: () =>
      write((db) => {
        db.exec(`
          CREATE TABLE IF NOT EXISTS ${t} (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            topic TEXT NOT NULL,
            "key" TEXT,
            "partition" INTEGER NOT NULL,
            payload BLOB NOT NULL,
            headers TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            available_at INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            status TEXT NOT NULL DEFAULT 'pending',
            published_at INTEGER
          );
          CREATE INDEX IF NOT EXISTS ${pendingIndex} ON ${t} ("partition", status, seq);
          CREATE TABLE IF NOT EXISTS ${lease} (
            "partition" INTEGER PRIMARY KEY,
            owner TEXT,
            fence INTEGER NOT NULL DEFAULT 0,
            expires_at INTEGER NOT NULL DEFAULT 0
          );
          CREATE TABLE IF NOT EXISTS ${relay} (
            owner TEXT PRIMARY KEY,
            expires_at INTEGER NOT NULL
          ) WITHOUT ROWID;
          CREATE TABLE IF NOT EXISTS ${schema} (
            version INTEGER PRIMARY KEY,
            applied_at INTEGER NOT NULL
          );
        `);
        // Versions after the first: each applied once, recorded in the schema table.
        const applied = (
          db.prepare(`SELECT coalesce(max(version), 1) AS v FROM ${schema}`).get() as { v: number }
        ).v;
        if (applied < 2) {
          const columns = db.prepare(`PRAGMA table_info(${relay})`).all() as Array<{
            name: string;
          }>;
          if (!columns.some((column) => column.name === 'destination')) {
            db.exec(`ALTER TABLE ${relay} ADD COLUMN destination TEXT`);
          }
          db.exec(
            `CREATE INDEX IF NOT EXISTS ${deadIndex} ON ${t} ("partition", "key", seq) WHERE status = 'dead'`,
          );
          db.prepare(`INSERT INTO ${schema} (version, applied_at) VALUES (2, ?)`).run(Date.now());
        }
        if (readPartitions(db) === undefined) {
          const insert = db.prepare(`INSERT INTO ${lease} ("partition") VALUES (?)`);
          for (let p = 0; p < configured; p++) insert.run(p);
        }
        partitions = readPartitions(db);
      }).catch((cause: unknown) => {
        throw storeError('sqlite', `migrate ${table}`, cause);
      }),

    insertSync(tx, records) {
      if (!tx.inTransaction) {
        throw new FerryError(
          'INVALID_ARGUMENT',
          'enqueue needs an open transaction on the given SQLite connection (db.transaction(...) or BEGIN)',
        );
      }
      if (partitions === undefined) {
        // Opened from a path and not yet migrated here: learn P from the user's connection.
        const stored = readPartitions(tx);
        if (stored === undefined) {
          throw new FerryError(
            'STORE_FAILED',
            `The outbox table ${table} does not exist: run migrate`,
          );
        }
        partitions = stored;
      }
      const p = partitions;
      const insert = sql(
        tx,
        `INSERT INTO ${t} (id, topic, "key", "partition", payload, headers, created_at, available_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      for (const record of records) {
        const createdAt = record.createdAt.getTime();
        insert.run(
          record.id,
          record.topic,
          record.key ?? null,
          record.partition ?? partitionFor(record.key ?? record.id, p),
          record.body,
          JSON.stringify(record.headers),
          createdAt,
          createdAt,
        );
      }
    },

    insert: async (tx, records) => store.insertSync(tx, records),

    heartbeat: (owner, ttlMs) =>
      write((db) => {
        const now = Date.now();
        sql(
          db,
          `INSERT INTO ${relay} (owner, expires_at) VALUES (?, ?)
           ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at`,
        ).run(owner, now + ttlMs);
        sql(db, `DELETE FROM ${relay} WHERE expires_at < ?`).run(now - FORGET_RELAYS_AFTER_MS);
        const rows = sql(
          db,
          `UPDATE ${lease} SET expires_at = ? WHERE owner = ?
           RETURNING "partition", CAST(fence AS TEXT) AS fence`,
        ).all(now + ttlMs, owner) as LeaseRow[];
        return rows.map(toLease).sort((a, b) => a.partition - b.partition);
      }),

    register: (owner, ttlMs, destination) =>
      write((db) => {
        const now = Date.now();
        const other = sql(
          db,
          `SELECT destination FROM ${relay}
           WHERE owner <> ? AND expires_at > ? AND destination IS NOT NULL AND destination <> ?
           LIMIT 1`,
        ).get(owner, now, destination) as { destination: string } | undefined;
        if (other) return other.destination;
        sql(
          db,
          `INSERT INTO ${relay} (owner, expires_at, destination) VALUES (?, ?, ?)
           ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at,
             destination = excluded.destination`,
        ).run(owner, now + ttlMs, destination);
        return undefined;
      }),

    liveRelays: () =>
      run(
        (db) =>
          (
            sql(db, `SELECT count(*) AS n FROM ${relay} WHERE expires_at > ?`).get(Date.now()) as {
              n: number;
            }
          ).n,
      ),

    acquire: (owner, max, ttlMs) =>
      write((db) => {
        if (max <= 0) return [];
        const now = Date.now();
        const rows = sql(
          db,
          `UPDATE ${lease} SET owner = @owner, fence = fence + 1, expires_at = @expires
           WHERE "partition" IN (
             SELECT "partition" FROM ${lease} WHERE owner IS NULL OR expires_at <= @now
             ORDER BY owner IS NOT NULL, "partition" LIMIT @max)
           RETURNING "partition", CAST(fence AS TEXT) AS fence`,
        ).all({ owner, expires: now + ttlMs, now, max }) as LeaseRow[];
        return rows.map(toLease).sort((a, b) => a.partition - b.partition);
      }),

    release: (owner, released, deregister = false) =>
      write((db) => {
        sql(
          db,
          `UPDATE ${lease} SET owner = NULL, expires_at = 0
           WHERE owner = ? AND "partition" IN (SELECT value FROM json_each(?))`,
        ).run(owner, JSON.stringify(released));
        if (deregister) sql(db, `DELETE FROM ${relay} WHERE owner = ?`).run(owner);
      }),

    readPending: (partition, limit, exclude) =>
      run((db) => {
        const skipping = exclude !== undefined && exclude.length > 0;
        const rows = sql(
          db,
          `SELECT id, CAST(seq AS TEXT) AS seq_text, topic, "key", "partition", payload, headers,
                  created_at, available_at, attempts
           FROM ${t} o WHERE "partition" = ? AND status = 'pending'${skipping ? ' AND seq NOT IN (SELECT value FROM json_each(?))' : ''}
             AND NOT EXISTS (SELECT 1 FROM ${t} d WHERE d.status = 'dead'
               AND d."partition" = o."partition" AND d."key" = o."key" AND d.seq < o.seq)
           ORDER BY seq LIMIT ?`,
        ).all(
          ...(skipping ? [partition, `[${exclude.join(',')}]`, limit] : [partition, limit]),
        ) as Row[];
        const now = Date.now();
        const records: OutboxRecord[] = [];
        for (const row of rows) {
          if (row.available_at > now) break;
          records.push({
            id: row.id,
            seq: BigInt(row.seq_text),
            topic: row.topic,
            key: row.key ?? undefined,
            partition: row.partition,
            body: row.payload,
            headers: JSON.parse(row.headers) as Record<string, string>,
            createdAt: new Date(row.created_at),
            attempts: row.attempts,
            availableAt: new Date(row.available_at),
          });
        }
        return records;
      }),

    markPublished: (owner, held, ids) =>
      run((db) => {
        if (ids.length === 0) return 0;
        const now = Date.now();
        return sql(
          db,
          `UPDATE ${t} SET status = 'published', published_at = @now
           WHERE id IN (SELECT value FROM json_each(@ids)) AND "partition" = @partition
             AND status = 'pending' AND ${guard}`,
        ).run({
          now,
          ids: JSON.stringify(ids),
          partition: held.partition,
          owner,
          fence: held.fence,
        }).changes;
      }),

    markFailed: (owner, held, id, error, retry) =>
      run((db) => {
        const now = Date.now();
        return (
          sql(
            db,
            `UPDATE ${t} SET attempts = attempts + 1, last_error = @error,
               status = CASE WHEN @dead = 1 THEN 'dead' ELSE status END,
               available_at = CASE WHEN @dead = 1 THEN available_at ELSE @retryAt END
             WHERE id = @id AND "partition" = @partition AND status = 'pending' AND ${guard}`,
          ).run({
            now,
            error: error.slice(0, MAX_ERROR_TEXT),
            dead: retry.dead ? 1 : 0,
            retryAt: now + retry.retryInMs,
            id,
            partition: held.partition,
            owner,
            fence: held.fence,
          }).changes === 1
        );
      }),

    status: () =>
      run((db) => {
        const rows = sql(
          db,
          `WITH counts AS (
             SELECT "partition" AS p, sum(status = 'pending') AS pending, sum(status = 'dead') AS dead,
                    min(CASE WHEN status = 'pending' THEN created_at END) AS oldest
             FROM ${t} WHERE status IN ('pending', 'dead') GROUP BY "partition"
           ), blocked AS (
             SELECT o."partition" AS p, count(*) AS blocked, count(DISTINCT o."key") AS keys
             FROM ${t} o WHERE o.status = 'pending' AND EXISTS (
               SELECT 1 FROM ${t} d WHERE d.status = 'dead' AND d."partition" = o."partition"
                 AND d."key" = o."key" AND d.seq < o.seq)
             GROUP BY o."partition"
           ), parts AS (SELECT "partition" AS p FROM ${lease} UNION SELECT p FROM counts)
           SELECT parts.p AS partition, l.owner AS owner, CAST(l.fence AS TEXT) AS fence,
                  l.expires_at AS expires_at, coalesce(c.pending, 0) AS pending,
                  coalesce(c.dead, 0) AS dead, c.oldest AS oldest,
                  coalesce(b.blocked, 0) AS blocked, coalesce(b.keys, 0) AS keys
           FROM parts LEFT JOIN ${lease} l ON l."partition" = parts.p
             LEFT JOIN counts c ON c.p = parts.p LEFT JOIN blocked b ON b.p = parts.p
           ORDER BY parts.p`,
        ).all() as Array<{
          partition: number;
          owner: string | null;
          fence: string | null;
          expires_at: number | null;
          pending: number;
          dead: number;
          oldest: number | null;
          blocked: number;
          keys: number;
        }>;
        const now = Date.now();
        return rows.map((row): PartitionStatus => ({
          partition: row.partition,
          pending: row.pending,
          dead: row.dead,
          blocked: row.blocked,
          blockedKeys: row.keys,
          oldestPendingMs: row.oldest === null ? undefined : Math.max(0, now - row.oldest),
          owner: row.owner ?? undefined,
          fence: row.fence === null ? undefined : BigInt(row.fence),
          leaseExpiresAt:
            row.owner === null || row.expires_at === null ? undefined : new Date(row.expires_at),
        }));
      }),

    skipDead: (ids) =>
      run(
        (db) =>
          sql(
            db,
            `UPDATE ${t} SET status = 'skipped'
             WHERE status = 'dead' AND id IN (SELECT value FROM json_each(?))`,
          ).run(JSON.stringify(ids)).changes,
      ),

    retryDead: (ids) =>
      run((db) => {
        const now = Date.now();
        if (ids === undefined) {
          return sql(
            db,
            `UPDATE ${t} SET status = 'pending', attempts = 0, available_at = ? WHERE status = 'dead'`,
          ).run(now).changes;
        }
        return sql(
          db,
          `UPDATE ${t} SET status = 'pending', attempts = 0, available_at = ?
           WHERE status = 'dead' AND id IN (SELECT value FROM json_each(?))`,
        ).run(now, JSON.stringify(ids)).changes;
      }),

    republish: (since) =>
      run(
        (db) =>
          sql(
            db,
            `UPDATE ${t} SET status = 'pending', attempts = 0, available_at = ?, published_at = NULL
             WHERE status = 'published' AND created_at >= ?`,
          ).run(Date.now(), since.getTime()).changes,
      ),

    purgePublished: (before, limit) =>
      run(
        (db) =>
          sql(
            db,
            `DELETE FROM ${t} WHERE seq IN (
               SELECT seq FROM ${t} WHERE status = 'published' AND published_at < ? ORDER BY seq LIMIT ?)`,
          ).run(before.getTime(), limit).changes,
      ),

    close: () => connection.close(),
  };
  return store;
}

/** The SQLite outbox, with synchronous enqueue for use inside `db.transaction(() => ...)`. */
export interface SqliteOutbox extends Outbox<SqliteDatabase> {
  readonly store: SqliteOutboxStore;
  /**
   * Validates, encodes and inserts on `tx` at once. Throws `UNSUPPORTED` when the topic's
   * schema validates asynchronously (use `enqueue` in an async transaction then).
   */
  enqueueSync<T>(
    tx: SqliteDatabase,
    topic: Topic<T>,
    payload: T,
    options?: PublishOptions,
  ): PublishReceipt;
  enqueueManySync<T>(
    tx: SqliteDatabase,
    topic: Topic<T>,
    items: readonly PublishItem<T>[],
  ): PublishReceipt[];
}

export function sqliteOutbox(
  source: SqliteSource,
  options: SqliteOutboxOptions = {},
): SqliteOutbox {
  const store = sqliteOutboxStore(source, options);
  const enqueueManySync = <T>(
    tx: SqliteDatabase,
    topic: Topic<T>,
    items: readonly PublishItem<T>[],
  ): PublishReceipt[] => {
    const records = prepareRecords(topic, items, true);
    store.insertSync(tx, records);
    return records.map((record) => ({ id: record.id }));
  };
  return {
    ...createOutbox(store),
    store,
    enqueueManySync,
    enqueueSync: (tx, topic, payload, enqueueOptions = {}) =>
      enqueueManySync(tx, topic, [{ ...enqueueOptions, payload }])[0] as PublishReceipt,
  };
}

export interface SqliteInboxOptions {
  /** Default `ferry_inbox`. */
  readonly table?: string;
}

/** The SQLite inbox: its transaction handle is the connection itself. */
export interface SqliteInbox extends Inbox<SqliteDatabase> {
  readonly table: string;
  /** Creates the inbox table if missing (idempotent). */
  migrate(): Promise<void>;
  /** Deletes up to `limit` inbox rows processed before `before`; returns how many. */
  purge(before: Date, limit: number): Promise<number>;
  /** Closes the connection ferry opened from a path (never yours). */
  close(): Promise<void>;
}

/**
 * Idempotent consumer on SQLite. Each message runs in a `BEGIN IMMEDIATE` transaction on the
 * inbox's connection, serialized with ferry's other work on that connection; the handler
 * writes its effects through the `tx` it is given (the same connection), so effects and the
 * inbox row commit together. Keep handlers short: the file's write lock is held meanwhile,
 * and write through `tx` only (another ferry transaction on the same file would wait for
 * this one forever).
 */
export function sqliteInbox(source: SqliteSource, options: SqliteInboxOptions = {}): SqliteInbox {
  const table = sqliteTableName(options.table ?? 'ferry_inbox');
  const t = quoteIdentifier(table);
  const connection = connector(source);
  const inserts = new WeakMap<SqliteDatabase, SqliteStatement>();
  const inbox = createSqlInbox<SqliteDatabase>({
    name: 'sqlite',
    migrate: async () => {
      const db = await connection.get();
      await withLock(db, () =>
        db.exec(`CREATE TABLE IF NOT EXISTS ${t} (
          consumer_group TEXT NOT NULL,
          message_id TEXT NOT NULL,
          processed_at INTEGER NOT NULL,
          PRIMARY KEY (consumer_group, message_id)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS ${quoteIdentifier(`${table}_processed`)} ON ${t} (processed_at)`),
      );
    },
    transaction: async (work) => sqliteTransaction(await connection.get(), work),
    insert: async (tx, group, messageId) => {
      let insert = inserts.get(tx);
      if (!insert) {
        insert = tx.prepare(
          `INSERT INTO ${t} (consumer_group, message_id, processed_at) VALUES (?, ?, ?)
           ON CONFLICT DO NOTHING`,
        );
        inserts.set(tx, insert);
      }
      return insert.run(group, messageId, Date.now()).changes !== 0;
    },
    purge: async (before, limit) => {
      const db = await connection.get();
      return withLock(
        db,
        () =>
          db
            .prepare(
              `DELETE FROM ${t} WHERE (consumer_group, message_id) IN (
                 SELECT consumer_group, message_id FROM ${t} WHERE processed_at < ? LIMIT ?)`,
            )
            .run(before.getTime(), limit).changes,
      );
    },
    close: () => connection.close(),
  });
  return { table, ...inbox };
}
