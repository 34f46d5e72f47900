import type { Inbox, PublishItem, PublishOptions, PublishReceipt } from '../../core/bus.js';
import { FerryError } from '../../core/errors.js';
import type { Topic } from '../../core/topic.js';
import { createOutbox, prepareRecords, type Outbox } from '../outbox.js';
import type { NewOutboxRecord, OutboxStore } from '../store.js';
import { sqliteDialect, sqliteInboxDialect, type SqliteConnector } from './dialects/sqlite.js';
import { openSqliteDatabase, withLock, type SqliteDatabase } from './drivers/sqlite-database.js';
import { createSqlInbox } from './inbox.js';
import { createSqlOutboxStore } from './outbox-store.js';
import { assertIdentifier, partitionsOf, tableOf } from './shared.js';

export {
  openSqliteDatabase,
  sqliteTransaction,
  type SqliteDatabase,
  type SqliteOpenOptions,
  type SqliteStatement,
} from './drivers/sqlite-database.js';

/** A database handle, or a path to open (lazily, with {@link openSqliteDatabase}). */
export type SqliteSource = SqliteDatabase | string;

function connector(source: SqliteSource): SqliteConnector {
  const owned = typeof source === 'string';
  let db: SqliteDatabase | undefined = owned ? undefined : source;
  let opening: Promise<SqliteDatabase> | undefined;
  return {
    get: () => {
      if (db) return Promise.resolve(db);
      opening ??= openSqliteDatabase(source as string).then((opened) => (db = opened));
      return opening;
    },
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

/** Options of {@link sqliteOutbox} and {@link sqliteOutboxStore}. */
export interface SqliteOutboxOptions {
  /**
   * Your better-sqlite3 handle (ferry never closes it), or a path: ferry opens the file on
   * first use and `close()` closes it.
   */
  readonly database: SqliteSource;
  /** Outbox table; the lease and relay tables add `_lease` and `_relay`. Default `ferry_outbox`. */
  readonly table?: string;
  /** P, used only when the tables are created; afterwards read back from the database. Default 16. */
  readonly partitions?: number;
}

/** The SQLite outbox store: synchronous inserts for use inside `db.transaction(...)`. */
export interface SqliteOutboxStore extends OutboxStore<SqliteDatabase> {
  /** The outbox table. */
  readonly table: string;
  /** Inserts rows on `tx`, which must be inside a transaction. */
  insertSync(tx: SqliteDatabase, records: readonly NewOutboxRecord[]): void;
}

/**
 * Outbox tables in a SQLite file (`better-sqlite3`, loaded on first use). Several processes
 * may run relays on one file: leases are taken by compare-and-set inside SQLite's
 * single-writer transactions. Times are this host's clock (a SQLite file is shared only by
 * processes of one host).
 */
export function sqliteOutboxStore(options: SqliteOutboxOptions): SqliteOutboxStore {
  const table = tableOf(options, 'outbox', sqliteTableName);
  const configured = partitionsOf(options);
  const dialect = sqliteDialect(connector(options.database), table);
  const core = createSqlOutboxStore(dialect, configured);
  const insertSync = (tx: SqliteDatabase, records: readonly NewOutboxRecord[]): void => {
    if (!tx.inTransaction) {
      throw new FerryError(
        'INVALID_ARGUMENT',
        'enqueue needs an open transaction on the given SQLite connection (db.transaction(...) or BEGIN)',
      );
    }
    if (!core.knowsPartitions) {
      // Not yet migrated through this store: learn P from the user's connection.
      const stored = dialect.partitionsOf(tx);
      if (stored === undefined) {
        throw new FerryError(
          'STORE_FAILED',
          `The outbox table ${table} does not exist: run migrate`,
        );
      }
      core.learnPartitions(stored);
    }
    dialect.insertSync(tx, core.rows(records));
  };
  return Object.assign(core, {
    insertSync,
    insert: async (tx: SqliteDatabase, records: readonly NewOutboxRecord[]) =>
      insertSync(tx, records),
  });
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
  /** As `enqueueSync`, for many messages of one topic. */
  enqueueManySync<T>(
    tx: SqliteDatabase,
    topic: Topic<T>,
    items: readonly PublishItem<T>[],
  ): PublishReceipt[];
}

/**
 * The transactional outbox on SQLite: `enqueue`/`enqueueSync` insert on your connection
 * inside its open transaction; relays publish committed rows.
 */
export function sqliteOutbox(options: SqliteOutboxOptions): SqliteOutbox {
  const store = sqliteOutboxStore(options);
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

/** Options of {@link sqliteInbox}. */
export interface SqliteInboxOptions {
  /** Your better-sqlite3 handle (never closed by ferry), or a path ferry opens and closes. */
  readonly database: SqliteSource;
  /** Inbox table; default `ferry_inbox`. */
  readonly table?: string;
}

/** The SQLite inbox: its transaction handle is the connection itself. */
export interface SqliteInbox extends Inbox<SqliteDatabase> {
  /** The inbox table. */
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
export function sqliteInbox(options: SqliteInboxOptions): SqliteInbox {
  const table = tableOf(options, 'inbox', sqliteTableName);
  return { table, ...createSqlInbox(sqliteInboxDialect(connector(options.database), table)) };
}
