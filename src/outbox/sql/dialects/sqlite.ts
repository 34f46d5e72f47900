import type { InboxDialect } from '../inbox.js';
import {
  sqlCompiler,
  type InsertRow,
  type OutboxStatements,
  type Row,
  type SqlDialect,
  type SqlSession,
} from '../dialect.js';
import {
  sqliteTransaction,
  withLock,
  type SqliteDatabase,
  type SqliteStatement,
} from '../drivers/sqlite-database.js';
import { quoteIdentifier, toDate } from '../shared.js';

const NAME = 'sqlite';
const compile = sqlCompiler(false);

/** Statements are prepared once per connection (the store's own and each user's). */
const prepared = new WeakMap<SqliteDatabase, Map<string, SqliteStatement>>();
function prepare(db: SqliteDatabase, text: string): SqliteStatement {
  let cache = prepared.get(db);
  if (!cache) prepared.set(db, (cache = new Map<string, SqliteStatement>()));
  let statement = cache.get(text);
  if (!statement) cache.set(text, (statement = db.prepare(text)));
  return statement;
}

/** better-sqlite3 binds no booleans: they become 0 and 1. */
const bindable = (value: unknown): unknown =>
  typeof value === 'boolean' ? (value ? 1 : 0) : value === undefined ? null : value;

function session(db: SqliteDatabase): SqlSession {
  return {
    query: async (sql, params) => {
      const { text, values } = compile(sql, params);
      const statement = prepare(db, text);
      const reader = (statement as { reader?: boolean }).reader;
      if (reader ?? /^\s*(SELECT|WITH)|\bRETURNING\b/i.test(text)) {
        const rows = statement.all(...values.map(bindable)) as Row[];
        return { rows, count: rows.length };
      }
      return { rows: [], count: statement.run(...values.map(bindable)).changes };
    },
  };
}

/** The outbox statements of SQLite over `table`: times are this host's clock, in ms. */
function statements(table: string): OutboxStatements {
  const t = (suffix = ''): string => quoteIdentifier(suffix === '' ? table : `${table}_${suffix}`);
  const [T, L, R, S] = [t(), t('lease'), t('relay'), t('schema')];
  const guard = `EXISTS (SELECT 1 FROM ${L} WHERE "partition" = @partition AND owner = @owner
    AND fence = CAST(@fence AS INTEGER) AND expires_at > @now)`;
  const blockedBy = (o: string): string =>
    `EXISTS (SELECT 1 FROM ${T} d WHERE d.status = 'dead' AND d."partition" = ${o}."partition"
       AND d."key" = ${o}."key" AND d.seq < ${o}.seq)`;
  const inList = (param: string): string => `IN (SELECT value FROM json_each(@${param}))`;
  return {
    migrations: [
      {
        version: 1,
        up: [
          `CREATE TABLE IF NOT EXISTS ${T} (
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
          )`,
          `CREATE INDEX IF NOT EXISTS ${t('pending')} ON ${T} ("partition", status, seq)`,
          `CREATE TABLE IF NOT EXISTS ${L} (
            "partition" INTEGER PRIMARY KEY,
            owner TEXT,
            fence INTEGER NOT NULL DEFAULT 0,
            expires_at INTEGER NOT NULL DEFAULT 0
          )`,
          `CREATE TABLE IF NOT EXISTS ${R} (
            owner TEXT PRIMARY KEY,
            expires_at INTEGER NOT NULL
          ) WITHOUT ROWID`,
        ],
      },
      {
        // Relays record their destination; dead rows get an index of their own.
        version: 2,
        up: async (db) => {
          const has = await db.query(
            `SELECT 1 FROM pragma_table_info(@relay) WHERE name = 'destination'`,
            { relay: `${table}_relay` },
          );
          if (has.rows.length === 0) {
            await db.query(`ALTER TABLE ${R} ADD COLUMN destination TEXT`);
          }
          await db.query(
            `CREATE INDEX IF NOT EXISTS ${t('dead')} ON ${T} ("partition", "key", seq) WHERE status = 'dead'`,
          );
        },
      },
    ],
    createSchemaTable: `CREATE TABLE IF NOT EXISTS ${S} (
      version INTEGER PRIMARY KEY,
      applied_at INTEGER NOT NULL
    )`,
    recordVersion: `INSERT INTO ${S} (version, applied_at) VALUES (@version, @now)`,
    appliedVersion: `SELECT max(version) AS v FROM ${S}`,
    countLeases: `SELECT count(*) AS n FROM ${L}`,
    seedLeases: `WITH RECURSIVE p(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM p WHERE n + 1 < @partitions)
      INSERT INTO ${L} ("partition") SELECT n FROM p WHERE NOT EXISTS (SELECT 1 FROM ${L})`,
    heartbeat: async (db, p) => {
      await db.query(
        `INSERT INTO ${R} (owner, expires_at) VALUES (@owner, @now + @ttlMs)
         ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at`,
        p,
      );
      await db.query(`DELETE FROM ${R} WHERE owner <> @owner AND expires_at < @now - @forgetMs`, p);
      return db.query(
        `UPDATE ${L} SET expires_at = @now + @ttlMs WHERE owner = @owner
         RETURNING "partition", CAST(fence AS TEXT) AS fence`,
        p,
      );
    },
    otherDestination: `SELECT destination FROM ${R} WHERE owner <> @owner AND expires_at > @now
      AND destination IS NOT NULL AND destination <> @destination LIMIT 1`,
    register: `INSERT INTO ${R} (owner, expires_at, destination) VALUES (@owner, @now + @ttlMs, @destination)
      ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at,
        destination = excluded.destination`,
    liveRelays: `SELECT count(*) AS n FROM ${R} WHERE expires_at > @now`,
    // One writer at a time (BEGIN IMMEDIATE): the select and the update are one CAS.
    acquire: `UPDATE ${L} SET owner = @owner, fence = fence + 1, expires_at = @now + @ttlMs
      WHERE "partition" IN (
        SELECT "partition" FROM ${L} WHERE owner IS NULL OR expires_at <= @now
        ORDER BY owner IS NOT NULL, "partition" LIMIT @max)
      RETURNING "partition", CAST(fence AS TEXT) AS fence`,
    release: async (db, p) => {
      const released = await db.query(
        `UPDATE ${L} SET owner = NULL, expires_at = 0
         WHERE owner = @owner AND "partition" ${inList('partitions')}`,
        p,
      );
      if (p.deregister === true) await db.query(`DELETE FROM ${R} WHERE owner = @owner`, p);
      return released;
    },
    readPending: `SELECT id, CAST(seq AS TEXT) AS seq_text, topic, "key", "partition", payload,
        headers, created_at, available_at, attempts, available_at <= @now AS ready
      FROM ${T} o WHERE "partition" = @partition AND status = 'pending'
        AND seq NOT IN (SELECT CAST(value AS INTEGER) FROM json_each(@exclude))
        AND NOT ${blockedBy('o')}
      ORDER BY seq LIMIT @limit`,
    markPublished: `UPDATE ${T} SET status = 'published', published_at = @now
      WHERE id ${inList('ids')} AND "partition" = @partition AND status = 'pending' AND ${guard}`,
    markFailed: `UPDATE ${T} SET attempts = attempts + 1, last_error = @error,
        status = CASE WHEN @dead = 1 THEN 'dead' ELSE status END,
        available_at = CASE WHEN @dead = 1 THEN available_at ELSE @now + @retryInMs END
      WHERE id = @id AND "partition" = @partition AND status = 'pending' AND ${guard}`,
    status: `WITH counts AS (
        SELECT "partition" AS p, sum(status = 'pending') AS pending, sum(status = 'dead') AS dead,
               min(CASE WHEN status = 'pending' THEN created_at END) AS oldest
        FROM ${T} WHERE status IN ('pending', 'dead') GROUP BY "partition"
      ), blocked AS (
        SELECT o."partition" AS p, count(*) AS blocked, count(DISTINCT o."key") AS keys
        FROM ${T} o WHERE o.status = 'pending' AND ${blockedBy('o')}
        GROUP BY o."partition"
      ), parts AS (SELECT "partition" AS p FROM ${L} UNION SELECT p FROM counts)
      SELECT parts.p AS partition, l.owner AS owner, CAST(l.fence AS TEXT) AS fence,
             l.expires_at AS expires_at, coalesce(c.pending, 0) AS pending,
             coalesce(c.dead, 0) AS dead, @now - c.oldest AS oldest_ms,
             coalesce(b.blocked, 0) AS blocked, coalesce(b.keys, 0) AS keys
      FROM parts LEFT JOIN ${L} l ON l."partition" = parts.p
        LEFT JOIN counts c ON c.p = parts.p LEFT JOIN blocked b ON b.p = parts.p
      ORDER BY parts.p`,
    skipDead: `UPDATE ${T} SET status = 'skipped' WHERE status = 'dead' AND id ${inList('ids')}`,
    retryDead: `UPDATE ${T} SET status = 'pending', attempts = 0, available_at = @now
      WHERE status = 'dead' AND (@all = 1 OR id ${inList('ids')})`,
    republish: `UPDATE ${T} SET status = 'pending', attempts = 0, available_at = @now,
        published_at = NULL
      WHERE status = 'published' AND created_at >= @since`,
    purgePublished: `DELETE FROM ${T} WHERE seq IN (
        SELECT seq FROM ${T} WHERE status = 'published' AND published_at < @before
        ORDER BY seq LIMIT @limit)`,
  };
}

/** A database handle, or a path to open (lazily) on first use. */
export interface SqliteConnector {
  get(): Promise<SqliteDatabase>;
  close(): Promise<void>;
}

/** The SQLite dialect, with the synchronous insert `enqueueSync` needs. */
export interface SqliteDialect extends SqlDialect<SqliteDatabase> {
  /** P as the lease table of `tx` has it, or undefined before the first migration. */
  partitionsOf(tx: SqliteDatabase): number | undefined;
  insertSync(tx: SqliteDatabase, rows: readonly InsertRow[]): void;
}

/**
 * The SQLite dialect over `connector`: one writer at a time per file (`BEGIN IMMEDIATE`,
 * and ferry's own operations on one file never interleave within a process), times on this
 * host's clock (a SQLite file is shared only by processes of one host).
 */
export function sqliteDialect(connector: SqliteConnector, table: string): SqliteDialect {
  const use = async <T>(work: (db: SqlSession) => Promise<T>): Promise<T> => {
    const db = await connector.get();
    return withLock(db, () => work(session(db)));
  };
  const atomic = async <T>(work: (db: SqlSession) => Promise<T>): Promise<T> => {
    const db = await connector.get();
    return withLock(db, async () => {
      db.exec('BEGIN IMMEDIATE');
      try {
        const result = await work(session(db));
        db.exec('COMMIT');
        return result;
      } catch (error) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw error;
      }
    });
  };
  const lease = quoteIdentifier(`${table}_lease`);
  const insert = `INSERT INTO ${quoteIdentifier(table)} (id, topic, "key", "partition", payload,
    headers, created_at, available_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`;
  const insertSync = (tx: SqliteDatabase, rows: readonly InsertRow[]): void => {
    const statement = prepare(tx, insert);
    for (const r of rows) {
      const at = r.createdAt.getTime();
      statement.run(r.id, r.topic, r.key, r.partition, r.body, r.headers, at, at);
    }
  };
  return {
    name: NAME,
    table,
    statements: statements(table),
    use,
    atomic,
    exclusive: (_name, work) => atomic(work),
    partitionsOf: (tx) => {
      const exists = prepare(tx, `SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`);
      if (!exists.get(`${table}_lease`)) return undefined;
      const n = Number((prepare(tx, `SELECT count(*) AS n FROM ${lease}`).get() as Row).n);
      return n > 0 ? n : undefined;
    },
    insertSync,
    insert: async (tx, rows) => insertSync(tx, rows),
    toDate,
    fromDate: (date) => date.getTime(),
    list: (values) => JSON.stringify(values),
    close: () => connector.close(),
  };
}

/** The SQLite inbox statements over `table`. */
export function sqliteInboxDialect(
  connector: SqliteConnector,
  table: string,
): InboxDialect<SqliteDatabase> {
  const I = quoteIdentifier(table);
  const inserting = `INSERT INTO ${I} (consumer_group, message_id, processed_at) VALUES (?, ?, ?)
    ON CONFLICT DO NOTHING`;
  return {
    name: NAME,
    migrate: async () => {
      const db = await connector.get();
      await withLock(db, () =>
        db.exec(`CREATE TABLE IF NOT EXISTS ${I} (
          consumer_group TEXT NOT NULL,
          message_id TEXT NOT NULL,
          processed_at INTEGER NOT NULL,
          PRIMARY KEY (consumer_group, message_id)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS ${quoteIdentifier(`${table}_processed`)} ON ${I} (processed_at)`),
      );
    },
    transaction: async (work) => sqliteTransaction(await connector.get(), work),
    insert: async (tx, group, messageId) =>
      prepare(tx, inserting).run(group, messageId, Date.now()).changes !== 0,
    purge: async (before, limit) => {
      const db = await connector.get();
      return withLock(
        db,
        () =>
          prepare(
            db,
            `DELETE FROM ${I} WHERE (consumer_group, message_id) IN (
               SELECT consumer_group, message_id FROM ${I} WHERE processed_at < ? LIMIT ?)`,
          ).run(before.getTime(), limit).changes,
      );
    },
    close: () => connector.close(),
  };
}
