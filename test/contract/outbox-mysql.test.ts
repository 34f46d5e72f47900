import mysql from 'mysql2/promise';
import { afterAll } from 'vitest';
import { mysqlOutboxStore, type MysqlQueryable } from '../../src/stores/mysql.js';
import { serviceUrl } from '../helpers/services.js';
import { outboxStoreContract } from './outbox-store.js';

const url = serviceUrl('FERRY_MYSQL_URL');
const pool = url === undefined ? undefined : mysql.createPool({ uri: url, connectionLimit: 4 });
const tables = new Set<string>();

// Each instance opens its own pool, as separate relay processes would.
outboxStoreContract<MysqlQueryable>(
  'mysql',
  pool === undefined
    ? undefined
    : {
        async create({ table, partitions }) {
          tables.add(table);
          return {
            store: mysqlOutboxStore({ connectionString: url as string, table, partitions }),
            async transaction(work) {
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
            },
          };
        },
      },
);

afterAll(async () => {
  if (!pool) return;
  for (const table of tables) {
    await pool.query(`DROP TABLE IF EXISTS \`${table}\`, \`${table}_lease\`, \`${table}_relay\``);
  }
  await pool.end();
});
