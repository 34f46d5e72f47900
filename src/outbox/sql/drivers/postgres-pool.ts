import { loadDriver } from '../../../core/driver.js';
import {
  inTransaction,
  pooledConnection,
  type Connection,
  type PoolOptions,
  type TransactionSteps,
} from './pool.js';

/**
 * Anything that runs a parameterised statement the node-postgres way (`$1`, `$2`, ...): a
 * `pg` `PoolClient` inside `BEGIN`/`COMMIT`, a `Client`, a `Pool` (then the insert commits
 * on its own), or a two-line adapter over an ORM's transaction (see the docs for Kysely
 * and Drizzle). ferry never begins, commits or rolls back this transaction.
 */
export interface PgQueryable {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

/** The result shape ferry reads from its own queries. */
export interface PgResult {
  readonly rows: unknown[];
  readonly rowCount: number | null;
}

/** A connection checked out of a pool (structurally, `pg`'s `PoolClient`). */
export interface PgPoolClient {
  query(text: string, values?: unknown[]): Promise<PgResult>;
  release(destroy?: boolean | Error): void;
  on(
    event: 'notification',
    listener: (message: { channel: string; payload?: string | undefined }) => void,
  ): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** A connection pool (structurally, `pg`'s `Pool`). */
export interface PgPool<C extends PgPoolClient = PgPoolClient> {
  query(text: string, values?: unknown[]): Promise<PgResult>;
  connect(): Promise<C>;
  end(): Promise<void>;
}

/**
 * Where a PostgreSQL store gets connections: a `pg` pool of yours (ferry then does not end
 * it) or a `url` ferry makes a pool from and ends on `close()`.
 */
export type PostgresConnectionOptions<C extends PgPoolClient = PgPoolClient> = PoolOptions<
  PgPool<C>
>;

export function connection<C extends PgPoolClient>(
  options: PostgresConnectionOptions<C>,
): Connection<PgPool<C>> {
  return pooledConnection(options, async (url, max) => {
    const pg = await loadDriver('pg', () => import('pg'));
    const created = new pg.default.Pool({ connectionString: url, max });
    // An idle client's error is reported here; without a listener it would crash the process.
    created.on('error', () => {});
    return created as unknown as PgPool<C>;
  });
}

const steps: TransactionSteps<PgPoolClient> = {
  begin: (client) => client.query('BEGIN'),
  commit: (client) => client.query('COMMIT'),
  rollback: (client) => client.query('ROLLBACK'),
  release: (client) => client.release(),
  discard: (client, error) =>
    client.release(error instanceof Error ? error : new Error(String(error))),
};

export function transaction<C extends PgPoolClient, T>(
  pool: PgPool<C>,
  work: (client: C) => Promise<T>,
): Promise<T> {
  return pool.connect().then((client) => inTransaction(client, steps, work));
}
