import mysql from 'mysql2/promise';
import { afterAll } from 'vitest';
import { mysqlInbox } from '../../src/mysql.js';
import { serviceUrl } from '../helpers/services.js';
import { uniqueName } from '../helpers/wait.js';
import { inboxContract } from './inbox.js';

const url = serviceUrl('FERRY_MYSQL_URL');
const pool = url === undefined ? undefined : mysql.createPool({ uri: url, connectionLimit: 8 });
afterAll(async () => pool?.end());

inboxContract<mysql.PoolConnection>(
  'mysql',
  pool &&
    (async () => {
      const table = uniqueName('myin');
      const effects = uniqueName('myfx');
      await pool.query(`CREATE TABLE \`${effects}\` (message_id VARCHAR(64), grp VARCHAR(64))`);
      return {
        inbox: mysqlInbox<mysql.PoolConnection>({ pool, table }),
        writeEffect: async (tx, id, group) => {
          await tx.query(`INSERT INTO \`${effects}\` VALUES (?, ?)`, [id, group]);
        },
        readEffects: async () => {
          const [rows] = await pool.query(
            `SELECT message_id, grp FROM \`${effects}\` ORDER BY message_id, grp`,
          );
          return rows as Array<{ message_id: string; grp: string }>;
        },
        cleanup: async () => {
          await pool.query(`DROP TABLE IF EXISTS \`${effects}\`, \`${table}\``);
        },
      };
    }),
);
