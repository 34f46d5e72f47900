import { loadDriver } from '../../../core/driver.js';
import {
  inTransaction,
  pooledConnection,
  type Connection,
  type PoolOptions,
  type TransactionSteps,
} from './pool.js';

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
 * end it) or a `url` (`mysql://user:pass@host:3306/db`) ferry makes a pool from and ends on
 * `close()`.
 */
export type MysqlConnectionOptions<C extends MysqlPoolConnection = MysqlPoolConnection> =
  PoolOptions<MysqlPool<C>>;

export function connection<C extends MysqlPoolConnection>(
  options: MysqlConnectionOptions<C>,
): Connection<MysqlPool<C>> {
  return pooledConnection(options, async (text, connectionLimit) => {
    const mysql = await loadDriver('mysql2', () => import('mysql2/promise'));
    const url = new URL(text);
    if (url.protocol === 'mariadb:') url.protocol = 'mysql:';
    return mysql.default.createPool({
      uri: url.toString(),
      connectionLimit,
    }) as unknown as MysqlPool<C>;
  });
}

const steps: TransactionSteps<MysqlPoolConnection> = {
  begin: (conn) => conn.beginTransaction(),
  commit: (conn) => conn.commit(),
  rollback: (conn) => conn.rollback(),
  release: (conn) => conn.release(),
  discard: (conn) => conn.destroy(),
};

export function transaction<C extends MysqlPoolConnection, T>(
  pool: MysqlPool<C>,
  work: (conn: C) => Promise<T>,
): Promise<T> {
  return pool.getConnection().then((conn) => inTransaction(conn, steps, work));
}
