import { mysqlInbox, mysqlOutbox } from '../../outbox/sql/mysql.js';
import { mysqlSession } from '../../outbox/sql/dialects/mysql.js';
import {
  connection,
  transaction,
  type MysqlQueryable,
} from '../../outbox/sql/drivers/mysql-pool.js';
import type { OpenedStore } from '../opened-store.js';
import { inboxOptions, outboxOptions } from '../../outbox/sql/shared.js';
import { pooledStoreFromUrl } from './pooled.js';

/**
 * `mysql://...` / `mariadb://...` for the CLI and the demo: outbox, inbox and a query helper
 * on one pool. Query parameters: `table`, `inbox`, `partitions`; the rest goes to `mysql2`.
 */
export function mysqlStoreFromUrl(url: URL): Promise<OpenedStore<MysqlQueryable>> {
  return pooledStoreFromUrl(url, {
    dialect: 'mysql',
    connection: (text) => connection({ url: text }),
    outbox: (pool, parts) => mysqlOutbox({ pool, ...outboxOptions(parts) }),
    inbox: (pool, parts) => mysqlInbox({ pool, ...inboxOptions(parts) }),
    transaction,
    session: mysqlSession,
  });
}
