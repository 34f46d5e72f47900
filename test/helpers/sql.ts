import type mysql from 'mysql2/promise';
import type pg from 'pg';
import { transaction as mysqlTransaction } from '../../src/outbox/sql/drivers/mysql-pool.js';
import { transaction as pgTransaction } from '../../src/outbox/sql/drivers/postgres-pool.js';

/**
 * A transaction begun outside the outbox on the test's own driver pool: begin, work, commit,
 * roll back on a throw, give the connection back. Tests enqueue through these so the outbox
 * is exercised inside a transaction it did not open. The begin/commit code is the one the
 * stores and inboxes run, so the tests exercise it too.
 */
export function inPgTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  return pgTransaction(pool, work);
}

export function inMysqlTransaction<T>(
  pool: mysql.Pool,
  work: (conn: mysql.PoolConnection) => Promise<T>,
): Promise<T> {
  return mysqlTransaction(pool, work);
}
