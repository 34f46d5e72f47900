import mysql from 'mysql2/promise';
import { afterAll } from 'vitest';
import { mysqlOutboxStore, type MysqlQueryable } from '../../src/mysql.js';
import { serviceUrl } from '../helpers/services.js';
import { outboxStoreContract, type OutboxStoreUnderTest } from './outbox-store.js';
import { relayContract } from './relay.js';
import { legacyMysql } from '../fixtures/legacy-outbox.js';
import { inMysqlTransaction } from '../helpers/sql.js';

const url = serviceUrl('FERRY_MYSQL_URL');
const pool = url === undefined ? undefined : mysql.createPool({ uri: url, connectionLimit: 4 });
const tables = new Set<string>();

// Each instance opens its own pool, as separate relay processes would.
const subject: OutboxStoreUnderTest<MysqlQueryable> | undefined =
  pool === undefined
    ? undefined
    : {
        async create({ table, partitions }) {
          tables.add(table);
          return {
            store: mysqlOutboxStore({ url: url as string, table, partitions }),
            transaction: (work) => inMysqlTransaction(pool, work),
          };
        },
        async legacy(table) {
          tables.add(table);
          await legacyMysql(pool, table);
        },
      };

outboxStoreContract('mysql', subject);
relayContract('mysql', subject);

afterAll(async () => {
  if (!pool) return;
  for (const table of tables) {
    await pool.query(
      `DROP TABLE IF EXISTS \`${table}\`, \`${table}_lease\`, \`${table}_relay\`, \`${table}_schema\``,
    );
  }
  await pool.end();
});
