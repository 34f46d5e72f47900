import { loadDriver } from '../../../core/driver.js';
import { FerryError } from '../../../core/errors.js';

/**
 * Anything that runs a statement with `?` placeholders the mysql2 way: a `mysql2/promise`
 * connection inside `beginTransaction()`/`commit()`, a pool (then the insert commits on its
 * own), or an adapter over an ORM's transaction. ferry never begins, commits or rolls back
 * this transaction.
 */
export interface MysqlQueryable {
  query(sql: string, values?: unknown): Promise<unknown>;
}

/** A connection checked out of a pool (structurally, a `mysql2/promise` `PoolConnection`). */
export interface MysqlPoolConnection {
  query(sql: string, values?: unknown): Promise<[unknown, unknown]>;
  beginTransaction(): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  release(): void;
  destroy(): void;
}

/** A connection pool (structurally, a `mysql2/promise` `Pool`). */
export interface MysqlPool<C extends MysqlPoolConnection = MysqlPoolConnection> {
  query(sql: string, values?: unknown): Promise<[unknown, unknown]>;
  getConnection(): Promise<C>;
  end(): Promise<void>;
}

/**
 * Where a MySQL/MariaDB store gets connections: a `mysql2` pool of yours (ferry then does not
 * end it) or a connection string ferry makes a pool from and ends on `close()`.
 */
export interface MysqlConnectionOptions<C extends MysqlPoolConnection = MysqlPoolConnection> {
  /** Your `mysql2/promise` pool; ferry borrows connections and never ends it. */
  readonly pool?: MysqlPool<C>;
  /** Or a URL (`mysql://user:pass@host:3306/db`): ferry opens and `close()` ends a pool. */
  readonly connectionString?: string;
  /** Size of the pool ferry opens from `connectionString`; default 10. */
  readonly poolSize?: number;
}

export interface Connection<C extends MysqlPoolConnection> {
  pool(): Promise<MysqlPool<C>>;
  end(): Promise<void>;
}

export function connection<C extends MysqlPoolConnection>(
  options: MysqlConnectionOptions<C>,
): Connection<C> {
  const { pool, connectionString } = options;
  if ((pool === undefined) === (connectionString === undefined)) {
    throw new FerryError('INVALID_ARGUMENT', 'Pass exactly one of `pool` or `connectionString`');
  }
  if (pool) return { pool: async () => pool, end: async () => {} };
  let own: Promise<MysqlPool<C>> | undefined;
  return {
    pool: () =>
      (own ??= (async () => {
        const mysql = await loadDriver('mysql2', () => import('mysql2/promise'));
        const url = new URL(connectionString as string);
        if (url.protocol === 'mariadb:') url.protocol = 'mysql:';
        return mysql.default.createPool({
          uri: url.toString(),
          connectionLimit: options.poolSize ?? 10,
        }) as unknown as MysqlPool<C>;
      })()),
    end: async () => {
      if (own) await (await own).end();
    },
  };
}

export async function transaction<C extends MysqlPoolConnection, T>(
  pool: MysqlPool<C>,
  work: (conn: C) => Promise<T>,
): Promise<T> {
  const conn = await pool.getConnection();
  try {
    await conn.beginTransaction();
    const result = await work(conn);
    await conn.commit();
    conn.release();
    return result;
  } catch (error) {
    await conn.rollback().then(
      () => conn.release(),
      () => conn.destroy(),
    );
    throw error;
  }
}
