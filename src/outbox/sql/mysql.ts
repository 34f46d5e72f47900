import type { Inbox } from '../../core/bus.js';
import { createOutbox, type Outbox } from '../outbox.js';
import type { OutboxStore } from '../store.js';
import { mysqlDialect, mysqlInboxDialect } from './dialects/mysql.js';
import {
  connection,
  type MysqlConnectionOptions,
  type MysqlPoolConnection,
  type MysqlQueryable,
} from './drivers/mysql-pool.js';
import { createSqlInbox } from './inbox.js';
import { createSqlOutboxStore } from './outbox-store.js';
import { DEFAULT_PARTITIONS, assertIdentifier, checkPartitions } from './shared.js';

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
 * `connectionString` (never yours).
 */
export function mysqlOutboxStore(options: MysqlOutboxOptions): MysqlOutboxStore {
  const table = assertIdentifier(options.table ?? 'ferry_outbox');
  const configured = checkPartitions(options.partitions ?? DEFAULT_PARTITIONS);
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

/** Options of {@link mysqlInbox}. */
export interface MysqlInboxOptions<
  C extends MysqlPoolConnection,
> extends MysqlConnectionOptions<C> {
  /** Inbox table; default `ferry_inbox`. */
  readonly table?: string;
}

/** The MySQL/MariaDB idempotent-consumer inbox; the handler's `tx` is the pool connection. */
export interface MysqlInbox<C extends MysqlPoolConnection = MysqlPoolConnection> extends Inbox<C> {
  /** Creates the inbox table if missing (idempotent, safe from many processes). */
  migrate(): Promise<void>;
  /** Deletes up to `limit` inbox rows processed before `before`; returns how many. */
  purge(before: Date, limit: number): Promise<number>;
  /** Ends the pool ferry opened from `connectionString` (never yours). */
  close(): Promise<void>;
}

/**
 * Effectively-once consumption on MySQL/MariaDB: `process` borrows a pool connection, begins
 * a transaction, inserts `(group, messageId)` with `INSERT IGNORE` and, unless the row
 * already existed (a duplicate: nothing runs), calls `work` with the connection and commits.
 * If `work` throws, everything rolls back and the error propagates.
 */
export function mysqlInbox<C extends MysqlPoolConnection = MysqlPoolConnection>(
  options: MysqlInboxOptions<C>,
): MysqlInbox<C> {
  const table = assertIdentifier(options.table ?? 'ferry_inbox');
  return createSqlInbox<C>(mysqlInboxDialect(connection(options), table));
}
