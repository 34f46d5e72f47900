import pg from 'pg';
import { afterAll } from 'vitest';
import { postgresInbox } from '../../src/postgres.js';
import { serviceUrl } from '../helpers/services.js';
import { uniqueName } from '../helpers/wait.js';
import { inboxContract } from './inbox.js';

const url = serviceUrl('FERRY_PG_URL');
const pool = url === undefined ? undefined : new pg.Pool({ connectionString: url, max: 8 });
afterAll(async () => pool?.end());

inboxContract<pg.PoolClient>(
  'postgres',
  pool &&
    (async () => {
      const table = uniqueName('pgin');
      const effects = uniqueName('pgfx');
      await pool.query(`CREATE TABLE "${effects}" (message_id TEXT, grp TEXT)`);
      return {
        inbox: postgresInbox<pg.PoolClient>({ pool, table }),
        writeEffect: async (tx, id, group) => {
          await tx.query(`INSERT INTO "${effects}" VALUES ($1, $2)`, [id, group]);
        },
        readEffects: async () =>
          (
            await pool.query<{ message_id: string; grp: string }>(
              `SELECT message_id, grp FROM "${effects}" ORDER BY message_id, grp`,
            )
          ).rows,
        cleanup: async () => {
          await pool.query(`DROP TABLE IF EXISTS "${effects}", "${table}"`);
        },
      };
    }),
);
