import { FerryError } from '../../../core/errors.js';

/**
 * Where a PostgreSQL or MySQL store gets connections: a pool of yours, which ferry borrows
 * and never ends, or a `url` ferry opens a pool from, owns, and ends on `close()`.
 */
export interface PoolOptions<P> {
  /** Your pool; ferry borrows connections and never ends it. */
  readonly pool?: P;
  /** Or a database URL: ferry opens (and `close()` ends) a pool of its own. */
  readonly url?: string;
  /** Size of the pool ferry opens from `url`; default 10. */
  readonly poolSize?: number;
}

/** A pool of the caller's or one opened on first use; `end()` ends only the latter. */
export interface Connection<P> {
  pool(): Promise<P>;
  end(): Promise<void>;
}

/**
 * The connection of `options`: the caller's pool as is, or one `open` makes from `url` on
 * first use (ended by `end()`).
 */
export function pooledConnection<P extends { end(): Promise<void> }>(
  options: PoolOptions<P>,
  open: (url: string, size: number) => Promise<P>,
): Connection<P> {
  if ('connectionString' in options) {
    throw new FerryError('INVALID_ARGUMENT', '`connectionString` is now `url`');
  }
  const { pool, url } = options;
  if ((pool === undefined) === (url === undefined)) {
    throw new FerryError('INVALID_ARGUMENT', 'Pass exactly one of `pool` or `url`');
  }
  if (pool !== undefined) return { pool: async () => pool, end: async () => {} };
  let own: Promise<P> | undefined;
  return {
    pool: () => (own ??= open(url as string, options.poolSize ?? 10)),
    end: async () => {
      if (own) await (await own).end();
    },
  };
}

/** How one driver begins, ends and gives back a transaction's connection. */
export interface TransactionSteps<C> {
  begin(conn: C): Promise<unknown>;
  commit(conn: C): Promise<unknown>;
  rollback(conn: C): Promise<unknown>;
  /** Gives a healthy connection back to its pool. */
  release(conn: C): void;
  /** Drops a connection whose rollback failed, so the pool does not hand it out again. */
  discard(conn: C, error: unknown): void;
}

/** Runs `work` in one transaction on `conn`: commits when it resolves, rolls back when it throws. */
export async function inTransaction<C, T>(
  conn: C,
  steps: TransactionSteps<C>,
  work: (conn: C) => Promise<T>,
): Promise<T> {
  try {
    await steps.begin(conn);
    const result = await work(conn);
    await steps.commit(conn);
    steps.release(conn);
    return result;
  } catch (error) {
    await steps.rollback(conn).then(
      () => steps.release(conn),
      (rollbackError: unknown) => steps.discard(conn, rollbackError),
    );
    throw error;
  }
}
