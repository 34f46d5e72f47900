import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { afterAll } from 'vitest';
import { openSqliteDatabase, sqliteInbox, type SqliteDatabase } from '../../src/sqlite.js';
import { uniqueName } from '../helpers/wait.js';
import { inboxContract } from './inbox.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-inbox-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

inboxContract<SqliteDatabase>('sqlite', async () => {
  const db = await openSqliteDatabase(join(dir, `${uniqueName('app')}.db`));
  db.exec('CREATE TABLE effects (message_id TEXT, grp TEXT)');
  return {
    inbox: sqliteInbox({ database: db }),
    writeEffect: async (tx, id, group) =>
      void (tx as BetterSqlite3.Database)
        .prepare('INSERT INTO effects VALUES (?, ?)')
        .run(id, group),
    readEffects: async () =>
      db.prepare('SELECT message_id, grp FROM effects ORDER BY message_id, grp').all() as Array<{
        message_id: string;
        grp: string;
      }>,
    cleanup: async () => void db.close(),
  };
});
