// `ferry/sqlite`: everything ferry offers on SQLite — the embedded log transport, the outbox
// and the inbox.
export {
  openSqliteDatabase,
  sqliteInbox,
  sqliteOutbox,
  sqliteOutboxStore,
  sqliteTransaction,
  type SqliteDatabase,
  type SqliteInbox,
  type SqliteInboxOptions,
  type SqliteOpenOptions,
  type SqliteOutbox,
  type SqliteOutboxOptions,
  type SqliteOutboxStore,
  type SqliteSource,
  type SqliteStatement,
} from './outbox/sql/sqlite.js';
export {
  sqlite,
  type SqliteRetention,
  type SqliteTransportOptions,
} from './transports/sqlite/index.js';
