import type BetterSqlite3 from 'better-sqlite3';
import { sqliteInbox, sqliteOutbox } from '../../outbox/sql/sqlite.js';
import {
  openSqliteDatabase,
  sqliteTransaction,
  withLock,
  type SqliteDatabase,
} from '../../outbox/sql/drivers/sqlite-database.js';
import { inboxOptions, outboxOptions, splitStoreUrl } from '../../outbox/sql/shared.js';
import { sqliteFilePath } from '../../transports/sqlite/path.js';
import { openedStore, type OpenedStore } from '../opened-store.js';

/**
 * `sqlite:./app.db?table=ferry_outbox&inbox=ferry_inbox&partitions=16`: the outbox, inbox and
 * a transaction helper on one connection of the file (for `ferry relay`, `ferry migrate`, the
 * demo).
 */
export async function sqliteStoreFromUrl(url: URL): Promise<OpenedStore<SqliteDatabase>> {
  const path = sqliteFilePath(url);
  const parts = splitStoreUrl(url);
  const db = await openSqliteDatabase(path);
  const outbox = sqliteOutbox({ database: db, ...outboxOptions(parts) });
  const inbox = sqliteInbox({ database: db, ...inboxOptions(parts) });
  const run = (tx: SqliteDatabase, sql: string, params: readonly unknown[]) => {
    const statement = (tx as BetterSqlite3.Database).prepare(sql);
    if (statement.reader) return statement.all(...params) as Array<Record<string, unknown>>;
    statement.run(...params);
    return [];
  };
  return openedStore({
    dialect: 'sqlite',
    tables: { outbox: outbox.store.table, inbox: inbox.table },
    outbox,
    inbox,
    transaction: (work) => sqliteTransaction(db, work),
    query: async (tx, sql, params = []) =>
      tx === undefined ? withLock(db, () => run(db, sql, params)) : run(tx, sql, params),
    // The outbox and inbox were given the handle, so closing them leaves the file to this.
    release: async () => {
      await withLock(db, () => db.close());
    },
  });
}
