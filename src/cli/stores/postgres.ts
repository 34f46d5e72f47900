import { postgresInbox, postgresOutbox } from '../../outbox/sql/postgres.js';
import { postgresSession } from '../../outbox/sql/dialects/postgres.js';
import {
  connection,
  transaction,
  type PgQueryable,
} from '../../outbox/sql/drivers/postgres-pool.js';
import type { OpenedStore } from '../opened-store.js';
import { inboxOptions, outboxOptions } from '../../outbox/sql/shared.js';
import { pooledStoreFromUrl } from './pooled.js';

/**
 * `postgres://...` for the CLI and the demo: outbox, inbox and a query helper on one pool.
 * Query parameters: `table`, `inbox`, `partitions`, `notify`; the rest goes to `pg`.
 */
export function postgresStoreFromUrl(url: URL): Promise<OpenedStore<PgQueryable>> {
  return pooledStoreFromUrl(url, {
    dialect: 'postgres',
    connection: (text) => connection({ url: text }),
    outbox: (pool, parts) =>
      postgresOutbox({
        pool,
        ...outboxOptions(parts),
        ...(parts.notify === undefined ? {} : { notify: parts.notify }),
      }),
    inbox: (pool, parts) => postgresInbox({ pool, ...inboxOptions(parts) }),
    transaction,
    session: postgresSession,
  });
}
