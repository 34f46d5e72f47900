import { loadDriver } from '../../../core/driver.js';
import { FerryError } from '../../../core/errors.js';

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
 * it) or a connection string ferry makes a pool from and ends on `close()`.
 */
export interface PostgresConnectionOptions<C extends PgPoolClient = PgPoolClient> {
  /** Your pool; ferry borrows connections and never ends it. */
  readonly pool?: PgPool<C>;
  /** Or a URL: ferry opens (and `close()` ends) a pool of its own. */
  readonly connectionString?: string;
  /** Size of the pool ferry opens from `connectionString`; default 10. */
  readonly poolSize?: number;
}

export interface Connection<C extends PgPoolClient> {
  pool(): Promise<PgPool<C>>;
  end(): Promise<void>;
}

export function connection<C extends PgPoolClient>(
  options: PostgresConnectionOptions<C>,
): Connection<C> {
  const { pool, connectionString } = options;
  if ((pool === undefined) === (connectionString === undefined)) {
    throw new FerryError('INVALID_ARGUMENT', 'Pass exactly one of `pool` or `connectionString`');
  }
  if (pool) return { pool: async () => pool, end: async () => {} };
  let own: Promise<PgPool<C>> | undefined;
  return {
    pool: () =>
      (own ??= (async () => {
        const pg = await loadDriver('pg', () => import('pg'));
        const created = new pg.default.Pool({
          connectionString,
          max: options.poolSize ?? 10,
        });
        // An idle client's error is reported here; without a listener it would crash the process.
        created.on('error', () => {});
        return created as unknown as PgPool<C>;
      })()),
    end: async () => {
      if (own) await (await own).end();
    },
  };
}

export async function transaction<C extends PgPoolClient, T>(
  pool: PgPool<C>,
  work: (client: C) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (error) {
    await client.query('ROLLBACK').then(
      () => client.release(),
      (rollbackError: Error) => client.release(rollbackError),
    );
    throw error;
  }
}
