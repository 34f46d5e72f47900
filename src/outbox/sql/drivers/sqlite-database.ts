import { resolve } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { loadDriver } from '../../../core/driver.js';
import { FerryError } from '../../../core/errors.js';

/** What ferry needs of a better-sqlite3 statement. */
export interface SqliteStatement {
  run(...params: unknown[]): { changes: number };
  all(...params: unknown[]): unknown[];
  get(...params: unknown[]): unknown;
}

/**
 * A better-sqlite3 `Database` (typed structurally: any object with these members works).
 * It is the transaction handle of the SQLite outbox and inbox: enqueue inside
 * `db.transaction(() => ...)` or between `BEGIN` and `COMMIT` on it.
 */
export interface SqliteDatabase {
  prepare(sql: string): SqliteStatement;
  exec(sql: string): unknown;
  readonly inTransaction: boolean;
  readonly open: boolean;
  /** The file it was opened with (`:memory:` or empty for in-memory databases). */
  readonly name: string;
  close(): unknown;
}

/** How {@link openSqliteDatabase} opens a file: how long a writer waits for another's lock. */
export interface SqliteOpenOptions {
  /** How long a write waits for another connection's lock. Default 5000 ms. */
  readonly busyTimeoutMs?: number;
}

/**
 * Opens a SQLite file the way ferry uses it from several processes at once: WAL journal,
 * `synchronous=NORMAL` (durable at checkpoints, never corrupt), and a busy timeout so writers
 * wait for each other instead of failing.
 */
export async function openSqliteDatabase(
  path: string,
  options: SqliteOpenOptions = {},
): Promise<BetterSqlite3.Database> {
  const { default: Database } = await loadDriver('better-sqlite3', () => import('better-sqlite3'));
  let db: BetterSqlite3.Database;
  try {
    db = new Database(path);
  } catch (cause) {
    throw new FerryError('CONNECTION_FAILED', `Cannot open SQLite database ${path}`, { cause });
  }
  db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = NORMAL');
  return db;
}

/**
 * Async work on one SQLite file must not interleave within a process. On one connection, a
 * statement run while another caller's transaction is open would join that transaction; on
 * two connections to one file, a write would wait (synchronously, blocking the event loop)
 * for a lock that the other connection can only release once the event loop moves on. So
 * every async transaction and store operation of ferry takes this lock, per file (per
 * connection for in-memory databases).
 */
const fileLocks = new Map<string, Promise<unknown>>();
const connectionLocks = new WeakMap<SqliteDatabase, Promise<unknown>>();

export function withLock<T>(db: SqliteDatabase, work: () => T | Promise<T>): Promise<T> {
  const file = db.name && db.name !== ':memory:' ? resolve(db.name) : undefined;
  const previous = (file ? fileLocks.get(file) : connectionLocks.get(db)) ?? Promise.resolve();
  const next = previous.then(work, work);
  const settled = next.catch(() => undefined);
  if (file) fileLocks.set(file, settled);
  else connectionLocks.set(db, settled);
  return next;
}

/**
 * Runs `work` in a write transaction (`BEGIN IMMEDIATE`) on `db`, serialized with every
 * other ferry transaction on that file in this process: commits when it resolves, rolls back
 * when it throws. Use it to enqueue from async code. Inside `work`, write through `tx` only:
 * starting another ferry transaction on the same file there would wait for this one forever.
 */
export function sqliteTransaction<T>(
  db: SqliteDatabase,
  work: (tx: SqliteDatabase) => Promise<T>,
): Promise<T> {
  return withLock(db, async () => {
    if (db.inTransaction) {
      throw new FerryError(
        'INVALID_ARGUMENT',
        'This SQLite connection is already inside a transaction; give ferry its own connection',
      );
    }
    db.exec('BEGIN IMMEDIATE');
    try {
      const result = await work(db);
      db.exec('COMMIT');
      return result;
    } catch (error) {
      if (db.inTransaction) db.exec('ROLLBACK');
      throw error;
    }
  });
}
