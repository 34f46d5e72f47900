import pg from 'pg';
import { afterAll } from 'vitest';
import { postgresOutboxStore, type PgQueryable } from '../../src/postgres.js';
import { serviceUrl } from '../helpers/services.js';
import { outboxStoreContract, type OutboxStoreUnderTest } from './outbox-store.js';
import { relayContract } from './relay.js';
import { legacyPostgres } from '../fixtures/legacy-outbox.js';
import { inPgTransaction } from '../helpers/sql.js';

const url = serviceUrl('FERRY_PG_URL');
const pool = url === undefined ? undefined : new pg.Pool({ connectionString: url, max: 4 });
const tables = new Set<string>();

// Each instance opens its own pool, as separate relay processes would.
const subject: OutboxStoreUnderTest<PgQueryable> | undefined =
  pool === undefined
    ? undefined
    : {
        async create({ table, partitions }) {
          tables.add(table);
          return {
            store: postgresOutboxStore({ url: url as string, table, partitions }),
            transaction: (work) => inPgTransaction(pool, work),
          };
        },
        async legacy(table) {
          tables.add(table);
          await legacyPostgres(pool, table);
        },
      };

outboxStoreContract('postgres', subject);
relayContract('postgres', subject);

afterAll(async () => {
  if (!pool) return;
  for (const table of tables) {
    await pool.query(
      `DROP TABLE IF EXISTS "${table}", "${table}_lease", "${table}_relay", "${table}_schema"`,
    );
  }
  await pool.end();
});
