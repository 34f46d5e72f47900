import { FerryError } from '../../core/errors.js';
import { createOutbox, type Outbox } from '../outbox.js';
import { createRelay, type Relay } from '../relay/index.js';
import type { OutboxStore } from '../store.js';
import { postgresDialect, postgresInboxDialect } from './dialects/postgres.js';
import {
  connection,
  type PgPool,
  type PgPoolClient,
  type PgQueryable,
  type PostgresConnectionOptions,
} from './drivers/postgres-pool.js';
import { createSqlInbox, type SqlInbox, type SqlInboxOptions } from './inbox.js';
import { createSqlOutboxStore } from './outbox-store.js';
import { openListener, type WakeSubscription } from './postgres-wake.js';
import { assertIdentifier, baseName, guarded, partitionsOf, tableOf } from './shared.js';

export type {
  PgPool,
  PgPoolClient,
  PgQueryable,
  PgResult,
  PostgresConnectionOptions,
} from './drivers/postgres-pool.js';
export type { WakeSubscription } from './postgres-wake.js';

/** Options of {@link postgresOutbox} and {@link postgresOutboxStore}. */
export interface PostgresOutboxOptions extends PostgresConnectionOptions {
  /**
   * Outbox table; default `ferry_outbox`. The lease and relay tables are `<table>_lease`
   * and `<table>_relay`. A plain identifier (schema via `search_path`).
   */
  readonly table?: string;
  /** P, used only when the tables are created; afterwards read back from the database. */
  readonly partitions?: number;
  /**
   * Sends `NOTIFY` on the wake-up channel with every insert (delivered when the writer's
   * transaction commits), so a relay using {@link PostgresOutboxStore.listen} publishes
   * without waiting for its next poll. `true` uses the channel `<table>_wake`.
   * Costs the writers a short global lock at commit; polling works without it.
   */
  readonly notify?: boolean | string;
  /**
   * Enqueue through a named statement, parsed once per connection, when `tx` is a `pg`
   * client (adapters always get plain text); default true. Set false behind a
   * transaction-pooling PgBouncer older than 1.21, which cannot keep named statements.
   */
  readonly prepare?: boolean;
}

/** The PostgreSQL outbox store: the {@link OutboxStore} contract plus NOTIFY wake-ups. */
export interface PostgresOutboxStore extends OutboxStore<PgQueryable> {
  /** The wake-up channel inserts notify on, or undefined when `notify` is off. */
  readonly channel: string | undefined;
  /**
   * Calls `onWake` whenever a writer's transaction with outbox rows commits (needs
   * `notify`), with the partitions of the rows it inserted (undefined when the
   * notification does not say, as from an older writer). Holds one dedicated connection;
   * reconnects after a failure with backoff and calls `onWake()` once reconnected, since
   * notifications sent meanwhile are lost. Wake-ups are hints: a relay still polls, so a
   * lost one only adds latency.
   */
  listen(onWake: (partitions?: readonly number[]) => void): Promise<WakeSubscription>;
}

/**
 * The PostgreSQL outbox store (`pg`, loaded on first use): the outbox, lease and relay
 * tables, each partition leased by one relay at a time through a fenced compare-and-set on
 * the database clock. `close()` ends the pool it opened from `url` (never
 * yours) and the wake-up connections of `listen`.
 */
export function postgresOutboxStore(options: PostgresOutboxOptions): PostgresOutboxStore {
  const table = tableOf(options, 'outbox');
  const configured = partitionsOf(options);
  const channel =
    options.notify === true
      ? `${baseName(table)}_wake`
      : typeof options.notify === 'string'
        ? assertChannel(options.notify)
        : undefined;
  const conn = connection(options);
  const core = createSqlOutboxStore(
    postgresDialect(conn, table, { channel, prepare: options.prepare ?? true }),
    configured,
  );
  const listeners = new Set<WakeSubscription>();
  const closeCore = core.close.bind(core);
  let closed = false;
  return Object.assign(core, {
    channel,
    listen: async (onWake: (partitions?: readonly number[]) => void): Promise<WakeSubscription> => {
      if (channel === undefined) {
        throw new FerryError(
          'INVALID_ARGUMENT',
          'listen() needs the store created with `notify` enabled',
        );
      }
      if (closed) throw new FerryError('CLOSED', 'The postgres outbox store is closed');
      const pool = await guarded('postgres', 'listen', () => conn.pool());
      return openListener(pool, channel, onWake, listeners);
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await Promise.all([...listeners].map((l) => l.close()));
      await closeCore();
    },
  });
}

/** The PostgreSQL outbox: `enqueue(tx, topic, payload)` plus relays that wake on NOTIFY. */
export interface PostgresOutbox extends Outbox<PgQueryable> {
  readonly store: PostgresOutboxStore;
}

/**
 * `createOutbox` over {@link postgresOutboxStore}. With `notify`, every relay it makes also
 * listens on the wake-up channel (one dedicated connection per relay, opened by `start()`
 * and closed by `stop()`) and publishes as soon as a writer commits, reading only the
 * partitions the commit wrote; polling stays the fallback.
 */
export function postgresOutbox(options: PostgresOutboxOptions): PostgresOutbox {
  const store = postgresOutboxStore(options);
  return {
    ...createOutbox(store),
    store,
    relay: (relayOptions) => {
      const relay = createRelay(store, relayOptions);
      return store.channel === undefined ? relay : wakeOnNotify(store, relay);
    },
  };
}

function wakeOnNotify(store: PostgresOutboxStore, relay: Relay): Relay {
  let subscription: WakeSubscription | undefined;
  return {
    owner: relay.owner,
    wake: (partition) => relay.wake(partition),
    stats: () => relay.stats(),
    start: async () => {
      await relay.start();
      subscription = await store.listen((partitions) => {
        if (partitions === undefined) relay.wake();
        else for (const partition of partitions) relay.wake(partition);
      });
    },
    stop: async (stopOptions) => {
      await subscription?.close();
      await relay.stop(stopOptions);
    },
  };
}

/** Options of {@link postgresInbox}: `pool` or `url`, and `table` (default `ferry_inbox`). */
export type PostgresInboxOptions<C extends PgPoolClient> = SqlInboxOptions<PgPool<C>>;

/**
 * The PostgreSQL idempotent-consumer inbox; the handler's `tx` is the pool connection. Name
 * your client type to get it in handlers: `postgresInbox<PoolClient>({ pool })` (TypeScript
 * cannot infer it through `pg`'s overloaded `connect`).
 */
export type PostgresInbox<C extends PgPoolClient = PgPoolClient> = SqlInbox<C>;

/**
 * Effectively-once consumption on PostgreSQL: `process` borrows a pool connection, begins a
 * transaction, inserts `(group, messageId)` and, unless that row already existed (a
 * duplicate: nothing runs), calls `work` with the connection and commits. If `work` throws,
 * everything rolls back and the error propagates, so the message is handed out again.
 */
export function postgresInbox<C extends PgPoolClient = PgPoolClient>(
  options: PostgresInboxOptions<C>,
): PostgresInbox<C> {
  return createSqlInbox<C>(postgresInboxDialect(connection(options), tableOf(options, 'inbox')));
}

function assertChannel(name: string): string {
  if (assertIdentifier(name, 'notify channel').includes('.')) {
    throw new FerryError('INVALID_NAME', `Invalid notify channel name ${JSON.stringify(name)}`);
  }
  return name;
}
