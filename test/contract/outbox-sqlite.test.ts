import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  openSqliteDatabase,
  sqliteOutboxStore,
  sqliteTransaction,
  type SqliteDatabase,
} from '../../src/sqlite.js';
import { outboxStoreContract, type OutboxStoreUnderTest } from './outbox-store.js';
import { relayContract } from './relay.js';
import { legacySqlite } from '../fixtures/legacy-outbox.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-outbox-contract-'));

// Each instance opens its own connection to one file, as separate relay processes would.
const subject: OutboxStoreUnderTest<SqliteDatabase> = {
  async create({ table, partitions }) {
    const file = join(dir, `${table}.db`);
    const db = await openSqliteDatabase(file);
    return {
      store: sqliteOutboxStore({ database: file, table, partitions }),
      transaction: (work) => sqliteTransaction(db, work),
      close: async () => void db.close(),
    };
  },
  async legacy(table) {
    const db = await openSqliteDatabase(join(dir, `${table}.db`));
    legacySqlite(db, table);
    db.close();
  },
};

outboxStoreContract('sqlite', subject);
relayContract('sqlite', subject);
