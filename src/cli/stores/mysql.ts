import { mysqlInbox, mysqlOutbox } from '../../outbox/sql/mysql.js';
import {
  connection,
  transaction,
  type MysqlQueryable,
} from '../../outbox/sql/drivers/mysql-pool.js';
import { guarded, splitStoreUrl } from '../../outbox/sql/shared.js';
import { openedStore, type OpenedStore } from '../opened-store.js';

const DIALECT = 'mysql';

type Row = Record<string, unknown>;

/**
 * `mysql://...` / `mariadb://...` for the CLI and the demo: outbox, inbox and a query helper
 * on one pool. Query parameters: `table`, `inbox`, `partitions`; the rest goes to `mysql2`.
 */
export async function mysqlStoreFromUrl(url: URL): Promise<OpenedStore<MysqlQueryable>> {
  const { connectionString, table, inbox: inboxTable, partitions } = splitStoreUrl(url);
  const pool = await connection({ connectionString }).pool();
  const outbox = mysqlOutbox({
    pool,
    ...(table === undefined ? {} : { table }),
    ...(partitions === undefined ? {} : { partitions }),
  });
  const inbox = mysqlInbox({ pool, ...(inboxTable === undefined ? {} : { table: inboxTable }) });
  return openedStore({
    dialect: DIALECT,
    tables: { outbox: table ?? 'ferry_outbox', inbox: inboxTable ?? 'ferry_inbox' },
    outbox,
    inbox,
    transaction: (work) => transaction(pool, work),
    query: async (tx, sql, params = []) => {
      const result = (await guarded(DIALECT, 'query', () =>
        (tx ?? pool).query(sql, [...params]),
      )) as [unknown, unknown];
      const rows = result[0];
      if (!Array.isArray(rows)) return [];
      return (rows as Row[]).map((row) =>
        Object.fromEntries(Object.entries(row).map(([k, v]) => [k.toLowerCase(), v])),
      );
    },
    release: () => pool.end(),
  });
}
