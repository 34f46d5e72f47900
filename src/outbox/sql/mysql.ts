import { createOutbox, type Outbox } from '../outbox.js';
import type { OutboxStore } from '../store.js';
import { mysqlDialect, mysqlInboxDialect } from './dialects/mysql.js';
import {
  connection,
  type MysqlConnectionOptions,
  type MysqlPool,
  type MysqlPoolConnection,
  type MysqlQueryable,
} from './drivers/mysql-pool.js';
import { createSqlInbox, type SqlInbox, type SqlInboxOptions } from './inbox.js';
import { createSqlOutboxStore } from './outbox-store.js';
import { partitionsOf, tableOf } from './shared.js';

export type {
  MysqlConnectionOptions,
  MysqlPool,
  MysqlPoolConnection,
  MysqlQueryable,
} from './drivers/mysql-pool.js';

/** Options of {@link mysqlOutbox} and {@link mysqlOutboxStore}. */
export interface MysqlOutboxOptions extends MysqlConnectionOptions {
  /**
   * Outbox table; default `ferry_outbox`. The lease and relay tables are `<table>_lease`
   * and `<table>_relay`. A plain identifier, optionally `database.table`.
   */
  readonly table?: string;
  /** P, used only when the tables are created; afterwards read back from the database. */
  readonly partitions?: number;
}

/** The MySQL/MariaDB outbox store: the {@link OutboxStore} contract on a `mysql2` pool. */
export type MysqlOutboxStore = OutboxStore<MysqlQueryable>;

/**
 * The MySQL 8 / MariaDB 10.6+ outbox store (`mysql2`, loaded on first use): the outbox,
 * lease and relay tables, each partition leased by one relay at a time through a fenced
 * compare-and-set on the database clock (UTC). `close()` ends the pool it opened from
 * `url` (never yours).
 */
export function mysqlOutboxStore(options: MysqlOutboxOptions): MysqlOutboxStore {
  const table = tableOf(options, 'outbox');
  const configured = partitionsOf(options);
  return createSqlOutboxStore(mysqlDialect(connection(options), table), configured);
}

/** The MySQL/MariaDB outbox: `createOutbox` over {@link mysqlOutboxStore}. */
export interface MysqlOutbox extends Outbox<MysqlQueryable> {
  readonly store: MysqlOutboxStore;
}

/**
 * The transactional outbox on MySQL/MariaDB: `enqueue(tx, topic, payload)` inserts inside
 * your transaction (a `mysql2/promise` connection between `beginTransaction()` and
 * `commit()`); relays poll for committed rows.
 */
export function mysqlOutbox(options: MysqlOutboxOptions): MysqlOutbox {
  const store = mysqlOutboxStore(options);
  return { ...createOutbox(store), store };
}

/** Options of {@link mysqlInbox}: `pool` or `url`, and `table` (default `ferry_inbox`). */
export type MysqlInboxOptions<C extends MysqlPoolConnection> = SqlInboxOptions<MysqlPool<C>>;

/** The MySQL/MariaDB idempotent-consumer inbox; the handler's `tx` is the pool connection. */
export type MysqlInbox<C extends MysqlPoolConnection = MysqlPoolConnection> = SqlInbox<C>;

/**
 * Effectively-once consumption on MySQL/MariaDB: `process` borrows a pool connection, begins
 * a transaction, inserts `(group, messageId)` with `INSERT IGNORE` and, unless the row
 * already existed (a duplicate: nothing runs), calls `work` with the connection and commits.
 * If `work` throws, everything rolls back and the error propagates.
 */
export function mysqlInbox<C extends MysqlPoolConnection = MysqlPoolConnection>(
  options: MysqlInboxOptions<C>,
): MysqlInbox<C> {
  return createSqlInbox<C>(mysqlInboxDialect(connection(options), tableOf(options, 'inbox')));
}
