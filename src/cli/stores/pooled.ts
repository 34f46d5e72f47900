import type { Outbox } from '../../outbox/outbox.js';
import type { SqlSession } from '../../outbox/sql/dialect.js';
import type { SqlInbox } from '../../outbox/sql/inbox.js';
import type { Connection } from '../../outbox/sql/drivers/pool.js';
import { guarded, splitStoreUrl, type StoreUrl } from '../../outbox/sql/shared.js';
import { openedStore, type OpenedStore } from '../opened-store.js';

/** What a pooled database (PostgreSQL, MySQL/MariaDB) brings to a store opened from a URL. */
export interface PooledDatabase<P, Tx> {
  readonly dialect: string;
  /** The pool of a URL, opened on first use and ended by `end()`. */
  connection(url: string): Connection<P>;
  /** The outbox on a pool it borrows, with the URL's `table`, `partitions` (and `notify`). */
  outbox(pool: P, url: StoreUrl): Outbox<Tx>;
  /** The inbox on a pool it borrows, with the URL's `inbox` table. */
  inbox(pool: P, url: StoreUrl): SqlInbox<Tx>;
  transaction<T>(pool: P, work: (tx: Tx) => Promise<T>): Promise<T>;
  /** Statements with `?` placeholders on the pool or a transaction. */
  session(db: P | Tx): SqlSession;
}

/**
 * The outbox, inbox and a query helper on one pool ferry opens from `url` and ends on
 * `close()` (after the outbox and inbox, which only borrow it).
 */
export async function pooledStoreFromUrl<P, Tx>(
  url: URL,
  database: PooledDatabase<P, Tx>,
): Promise<OpenedStore<Tx>> {
  const { dialect } = database;
  const parts = splitStoreUrl(url);
  const connection = database.connection(parts.url);
  const pool = await connection.pool();
  let outbox: Outbox<Tx>;
  let inbox: SqlInbox<Tx>;
  try {
    outbox = database.outbox(pool, parts);
    inbox = database.inbox(pool, parts);
  } catch (error) {
    await connection.end();
    throw error;
  }
  return openedStore({
    dialect,
    tables: { outbox: parts.table ?? 'ferry_outbox', inbox: parts.inbox ?? 'ferry_inbox' },
    outbox,
    inbox,
    transaction: (work) => database.transaction(pool, work),
    query: async (tx, sql, params = []) => {
      const { rows } = await guarded(dialect, 'query', () =>
        database.session(tx ?? pool).query(sql, params),
      );
      return rows.map((row) =>
        Object.fromEntries(Object.entries(row).map(([k, v]) => [k.toLowerCase(), v])),
      );
    },
    release: () => connection.end(),
  });
}
