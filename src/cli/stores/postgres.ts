import { postgresInbox, postgresOutbox } from '../../outbox/sql/postgres.js';
import {
  connection,
  transaction,
  type PgQueryable,
  type PgResult,
} from '../../outbox/sql/drivers/postgres-pool.js';
import { guarded, splitStoreUrl } from '../../outbox/sql/shared.js';
import { openedStore, type OpenedStore } from '../opened-store.js';

const DIALECT = 'postgres';

/**
 * `postgres://...` for the CLI and the demo: outbox, inbox and a query helper on one pool.
 * Query parameters: `table`, `inbox`, `partitions`, `notify`; the rest goes to `pg`.
 */
export async function postgresStoreFromUrl(url: URL): Promise<OpenedStore<PgQueryable>> {
  const { connectionString, table, inbox: inboxTable, partitions, notify } = splitStoreUrl(url);
  const pool = await connection({ connectionString }).pool();
  const outbox = postgresOutbox({
    pool,
    ...(table === undefined ? {} : { table }),
    ...(partitions === undefined ? {} : { partitions }),
    ...(notify === undefined ? {} : { notify }),
  });
  const inbox = postgresInbox({ pool, ...(inboxTable === undefined ? {} : { table: inboxTable }) });
  return openedStore({
    dialect: DIALECT,
    tables: { outbox: table ?? 'ferry_outbox', inbox: inboxTable ?? 'ferry_inbox' },
    outbox,
    inbox,
    transaction: (work) => transaction(pool, work),
    query: async (tx, text, params = []) => {
      const result = (await guarded(DIALECT, 'query', () =>
        (tx ?? pool).query(numberPlaceholders(text), [...params]),
      )) as PgResult;
      return (result.rows ?? []) as Array<Record<string, unknown>>;
    },
    release: () => pool.end(),
  });
}

/** `?` placeholders (outside quotes) to PostgreSQL's `$1`, `$2`, ... */
export function numberPlaceholders(text: string): string {
  let n = 0;
  return text.replace(/'(?:[^']|'')*'|"(?:[^"]|"")*"|\?/g, (match) =>
    match === '?' ? `$${++n}` : match,
  );
}
