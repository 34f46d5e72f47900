import type mysql from 'mysql2/promise';
import type pg from 'pg';

/**
 * A transaction the way an application writes one with its own driver: begin, work,
 * commit, roll back on a throw, give the connection back. Tests enqueue through these so
 * the outbox is exercised inside the user's transaction, not one of ferry's.
 */
export async function inPgTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  } finally {
    client.release();
  }
}

export async function inMysqlTransaction<T>(
  pool: mysql.Pool,
  work: (conn: mysql.PoolConnection) => Promise<T>,
): Promise<T> {
  const conn = await pool.getConnection();
  try {
    await conn.beginTransaction();
    const result = await work(conn);
    await conn.commit();
    return result;
  } catch (error) {
    await conn.rollback();
    throw error;
  } finally {
    conn.release();
  }
}
