import type { Inbox } from '../core/bus.js';
import { createSqlInbox } from '../outbox/sql/inbox.js';
import { FerryError } from '../core/errors.js';
import { partitionFor } from '../core/message.js';
import { createOutbox, type Outbox } from '../outbox/outbox.js';
import { createRelay, type Relay } from '../outbox/relay.js';
import type { Lease, OutboxRecord, OutboxStore, PartitionStatus } from '../outbox/store.js';
import {
  DEFAULT_PARTITIONS,
  FORGET_RELAYS_AFTER_MS,
  MAX_ERROR_TEXT,
  checkLimit,
  checkMs,
  checkPartitions,
  assertIdentifier,
  baseName,
  guarded,
  parseHeaders,
  quoteIdentifier,
  suffixIdentifier,
  toBigInt,
} from './sql-shared.js';
import {
  connection,
  transaction,
  type PgPool,
  type PgPoolClient,
  type PgQueryable,
  type PgResult,
  type PostgresConnectionOptions,
} from './postgres-pool.js';

export type {
  PgPool,
  PgPoolClient,
  PgQueryable,
  PgResult,
  PostgresConnectionOptions,
} from './postgres-pool.js';

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
}

/** A wake-up subscription opened by {@link PostgresOutboxStore.listen}. */
export interface WakeSubscription {
  /** Stops listening and returns the dedicated connection (destroyed, not pooled). */
  close(): Promise<void>;
}

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

const DIALECT = 'postgres';

const q = (name: string): string => quoteIdentifier(name, '"');

type Row = Record<string, unknown>;
const rowsOf = (result: PgResult): Row[] => result.rows as Row[];

const toLease = (row: Row): Lease => ({
  partition: Number(row.partition),
  fence: toBigInt(row.fence),
});

/**
 * The PostgreSQL outbox store (`pg`): the outbox, lease and relay tables, each partition
 * leased by one relay at a time through a fenced compare-and-set on the database clock.
 */
export function postgresOutboxStore(options: PostgresOutboxOptions): PostgresOutboxStore {
  const table = assertIdentifier(options.table ?? 'ferry_outbox');
  const configured = checkPartitions(options.partitions ?? DEFAULT_PARTITIONS);
  /** P as the database has it, once read (fixed from the first migration on). */
  let partitions: number | undefined;
  const channel =
    options.notify === true
      ? `${baseName(table)}_wake`
      : typeof options.notify === 'string'
        ? assertChannel(options.notify)
        : undefined;
  const conn = connection(options);
  const T = q(table);
  const L = q(suffixIdentifier(table, 'lease'));
  const R = q(suffixIdentifier(table, 'relay'));
  const S = q(suffixIdentifier(table, 'schema'));
  const listeners = new Set<WakeSubscription>();
  let closed = false;

  const countLeases = async (client: PgQueryable): Promise<number> =>
    Number(rowsOf((await client.query(`SELECT count(*)::int AS n FROM ${L}`)) as PgResult)[0]?.n);

  const run = async <X>(operation: string, work: (pool: PgPool) => Promise<X>): Promise<X> => {
    if (closed) throw new FerryError('CLOSED', 'The postgres outbox store is closed');
    return guarded(DIALECT, operation, async () => {
      const pool = await conn.pool();
      if (partitions === undefined && operation !== 'migrate') {
        const stored = await countLeases(pool);
        if (stored === 0) {
          throw new FerryError('STORE_FAILED', `The outbox ${table} is not migrated: run migrate`);
        }
        partitions = stored;
      }
      return work(pool);
    });
  };

  const insertSql =
    `INSERT INTO ${T} (id, topic, key, partition, payload, headers, created_at) ` +
    `SELECT id, topic, key, partition, payload, headers, created_at FROM unnest(` +
    `$1::text[], $2::text[], $3::text[], $4::int[], $5::bytea[], $6::jsonb[], $7::timestamptz[]` +
    `) WITH ORDINALITY AS r(id, topic, key, partition, payload, headers, created_at, ord) ORDER BY ord`;
  const insertStatement =
    channel === undefined
      ? insertSql
      : // The payload names the partitions written, so a relay reads only those.
        `WITH inserted AS (${insertSql} RETURNING partition) ` +
        `SELECT pg_notify($8, coalesce(string_agg(DISTINCT partition::text, ','), '')) FROM inserted`;

  // A lease is valid while it has not expired; the row lock makes a concurrent takeover
  // wait until this statement's transaction ends, so a write guarded by it is never
  // interleaved with a newer owner's reads.
  const leaseHeld = `EXISTS (SELECT 1 FROM ${L} WHERE partition = $1 AND owner = $2 AND fence = $3 AND expires_at > now() FOR SHARE)`;

  const selectColumns = `id, seq::text AS seq_text, topic, key, partition, payload, headers, created_at, attempts, available_at`;

  const toRecord = (row: Row): OutboxRecord => ({
    id: row.id as string,
    seq: toBigInt(row.seq_text),
    topic: row.topic as string,
    key: (row.key as string | null) ?? undefined,
    partition: Number(row.partition),
    body: row.payload as Buffer,
    headers: parseHeaders(row.headers),
    createdAt: row.created_at as Date,
    attempts: Number(row.attempts),
    availableAt: row.available_at as Date,
  });

  const store: PostgresOutboxStore = {
    dialect: DIALECT,
    get partitions() {
      return partitions ?? configured;
    },
    channel,

    migrate: () =>
      run('migrate', (pool) =>
        transaction(pool, async (client) => {
          await client.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [
            `ferry.migrate.${table}`,
          ]);
          await client.query(`
            CREATE TABLE IF NOT EXISTS ${T} (
              seq bigserial PRIMARY KEY,
              id text NOT NULL,
              topic text NOT NULL,
              key text,
              partition integer NOT NULL,
              payload bytea NOT NULL,
              headers jsonb NOT NULL DEFAULT '{}',
              status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'published', 'dead')),
              attempts integer NOT NULL DEFAULT 0,
              last_error text,
              created_at timestamptz NOT NULL DEFAULT now(),
              available_at timestamptz NOT NULL DEFAULT now(),
              published_at timestamptz
            );
            CREATE UNIQUE INDEX IF NOT EXISTS ${q(`${baseName(table)}_id`)} ON ${T} (id);
            CREATE INDEX IF NOT EXISTS ${q(`${baseName(table)}_pending`)} ON ${T} (partition, seq) WHERE status = 'pending';
            CREATE TABLE IF NOT EXISTS ${L} (
              partition integer PRIMARY KEY,
              owner text,
              fence bigint NOT NULL DEFAULT 0,
              expires_at timestamptz NOT NULL DEFAULT '-infinity'
            );
            CREATE TABLE IF NOT EXISTS ${R} (
              owner text PRIMARY KEY,
              expires_at timestamptz NOT NULL
            );
            CREATE TABLE IF NOT EXISTS ${S} (
              version integer PRIMARY KEY,
              applied_at timestamptz NOT NULL DEFAULT now()
            );
          `);
          // Versions after the first: each applied once, recorded in the schema table.
          const applied = Number(
            rowsOf(await client.query(`SELECT coalesce(max(version), 1) AS v FROM ${S}`))[0]?.v,
          );
          if (applied < 2) {
            await client.query(`ALTER TABLE ${R} ADD COLUMN IF NOT EXISTS destination text`);
            // A dead row can now also be `skipped`: replace the status check.
            const checks = await client.query(
              `SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%status%'`,
              [T],
            );
            for (const row of rowsOf(checks)) {
              await client.query(`ALTER TABLE ${T} DROP CONSTRAINT ${q(String(row.conname))}`);
            }
            await client.query(
              `ALTER TABLE ${T} ADD CONSTRAINT ${q(`${baseName(table)}_status`)}
               CHECK (status IN ('pending', 'published', 'dead', 'skipped'))`,
            );
            await client.query(
              `CREATE INDEX IF NOT EXISTS ${q(`${baseName(table)}_dead`)} ON ${T} (partition, key, seq) WHERE status = 'dead'`,
            );
            await client.query(`INSERT INTO ${S} (version) VALUES (2)`);
          }
          // One lease row per partition: their count is P, fixed from the first migration on.
          await client.query(
            `INSERT INTO ${L} (partition) SELECT generate_series(0, $1::int - 1) WHERE NOT EXISTS (SELECT 1 FROM ${L})`,
            [configured],
          );
          partitions = await countLeases(client);
        }),
      ),

    insert: async (tx, records) => {
      if (records.length === 0) return;
      const p = await run('insert', async () => store.partitions);
      const n = records.length;
      const ids = new Array<string>(n);
      const topics = new Array<string>(n);
      const keys = new Array<string | null>(n);
      const parts = new Array<number>(n);
      const bodies = new Array<Buffer>(n);
      const headers = new Array<string>(n);
      const created = new Array<Date>(n);
      records.forEach((r, i) => {
        ids[i] = r.id;
        topics[i] = r.topic;
        keys[i] = r.key ?? null;
        parts[i] = r.partition ?? partitionFor(r.key ?? r.id, p);
        bodies[i] = r.body;
        headers[i] = JSON.stringify(r.headers);
        created[i] = r.createdAt;
      });
      const values: unknown[] = [ids, topics, keys, parts, bodies, headers, created];
      if (channel !== undefined) values.push(channel);
      await guarded(DIALECT, 'insert', () => tx.query(insertStatement, values));
    },

    heartbeat: (owner, ttlMs) =>
      run('heartbeat', async (pool) => {
        const result = await pool.query(
          `WITH registered AS (
             INSERT INTO ${R} (owner, expires_at) VALUES ($1, now() + $2 * interval '1 millisecond')
             ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at
           ), forgotten AS (
             DELETE FROM ${R} WHERE owner <> $1 AND expires_at < now() - $3 * interval '1 millisecond'
           )
           UPDATE ${L} SET expires_at = now() + $2 * interval '1 millisecond'
           WHERE owner = $1 RETURNING partition, fence::text AS fence`,
          [owner, checkMs(ttlMs, 'ttlMs'), FORGET_RELAYS_AFTER_MS],
        );
        return rowsOf(result)
          .map(toLease)
          .sort((a, b) => a.partition - b.partition);
      }),

    register: (owner, ttlMs, destination) =>
      run('register', (pool) =>
        transaction(pool, async (client) => {
          // Registrations of one table one at a time: two relays starting at once with
          // different transports cannot both get in.
          await client.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [
            `ferry.register.${table}`,
          ]);
          const other = await client.query(
            `SELECT destination FROM ${R} WHERE owner <> $1 AND expires_at > now()
             AND destination IS NOT NULL AND destination <> $2 LIMIT 1`,
            [owner, destination],
          );
          const found = rowsOf(other)[0];
          if (found) return String(found.destination);
          await client.query(
            `INSERT INTO ${R} (owner, expires_at, destination)
             VALUES ($1, now() + $2 * interval '1 millisecond', $3)
             ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at,
               destination = excluded.destination`,
            [owner, checkMs(ttlMs, 'ttlMs'), destination],
          );
          return undefined;
        }),
      ),

    liveRelays: () =>
      run('liveRelays', async (pool) => {
        const result = await pool.query(
          `SELECT count(*)::int AS n FROM ${R} WHERE expires_at > now()`,
        );
        return Number(rowsOf(result)[0]?.n ?? 0);
      }),

    acquire: (owner, max, ttlMs) =>
      run('acquire', async (pool) => {
        if (checkLimit(max, 'max') === 0) return [];
        // SKIP LOCKED lets relays acquiring at once take different partitions; the outer
        // condition re-checks each row after its lock, which makes the takeover a CAS.
        const result = await pool.query(
          `UPDATE ${L} SET owner = $1, fence = fence + 1, expires_at = now() + $3 * interval '1 millisecond'
           WHERE partition IN (
             SELECT partition FROM ${L} WHERE owner IS NULL OR expires_at <= now()
             ORDER BY partition LIMIT $2 FOR UPDATE SKIP LOCKED
           ) AND (owner IS NULL OR expires_at <= now())
           RETURNING partition, fence::text AS fence`,
          [owner, max, checkMs(ttlMs, 'ttlMs')],
        );
        return rowsOf(result)
          .map(toLease)
          .sort((a, b) => a.partition - b.partition);
      }),

    release: (owner, released, deregister = false) =>
      run('release', async (pool) => {
        await pool.query(
          `WITH released AS (
             UPDATE ${L} SET owner = NULL, expires_at = '-infinity'
             WHERE owner = $1 AND partition = ANY($2::int[])
           )
           DELETE FROM ${R} WHERE $3::boolean AND owner = $1`,
          [owner, released, deregister],
        );
      }),

    readPending: (partition, limit, exclude) =>
      run('readPending', async (pool) => {
        if (checkLimit(limit, 'limit') === 0) return [];
        const skipping = exclude !== undefined && exclude.length > 0;
        const result = await pool.query(
          `SELECT ${selectColumns}, available_at <= now() AS ready FROM ${T} o
           WHERE status = 'pending' AND partition = $1${skipping ? ' AND seq <> ALL($3::bigint[])' : ''}
             AND NOT EXISTS (SELECT 1 FROM ${T} d WHERE d.status = 'dead'
               AND d.partition = o.partition AND d.key = o.key AND d.seq < o.seq)
           ORDER BY seq LIMIT $2`,
          skipping ? [partition, limit, exclude.map(String)] : [partition, limit],
        );
        const out: OutboxRecord[] = [];
        for (const row of rowsOf(result)) {
          if (row.ready !== true) break;
          out.push(toRecord(row));
        }
        return out;
      }),

    markPublished: (owner, lease, ids) =>
      run('markPublished', async (pool) => {
        if (ids.length === 0) return 0;
        const result = await pool.query(
          `UPDATE ${T} SET status = 'published', published_at = now()
           WHERE id = ANY($4::text[]) AND partition = $1 AND status = 'pending' AND ${leaseHeld}`,
          [lease.partition, owner, lease.fence.toString(), ids],
        );
        return result.rowCount ?? 0;
      }),

    markFailed: (owner, lease, id, error, retry) =>
      run('markFailed', async (pool) => {
        const result = await pool.query(
          `UPDATE ${T} SET attempts = attempts + 1, last_error = $5,
             status = CASE WHEN $6::boolean THEN 'dead' ELSE status END,
             available_at = CASE WHEN $6::boolean THEN available_at
                                 ELSE now() + $7 * interval '1 millisecond' END
           WHERE id = $4 AND partition = $1 AND status = 'pending' AND ${leaseHeld}`,
          [
            lease.partition,
            owner,
            lease.fence.toString(),
            id,
            error.slice(0, MAX_ERROR_TEXT),
            retry.dead,
            checkMs(retry.retryInMs, 'retryInMs'),
          ],
        );
        return (result.rowCount ?? 0) > 0;
      }),

    status: () =>
      run('status', async (pool) => {
        const result = await pool.query(
          `WITH counts AS (
             SELECT partition,
                    count(*) FILTER (WHERE status = 'pending') AS pending,
                    count(*) FILTER (WHERE status = 'dead') AS dead,
                    min(created_at) FILTER (WHERE status = 'pending') AS oldest
             FROM ${T} WHERE status IN ('pending', 'dead') GROUP BY partition
           ), blocked AS (
             SELECT o.partition, count(*) AS blocked, count(DISTINCT o.key) AS keys
             FROM ${T} o WHERE o.status = 'pending' AND EXISTS (
               SELECT 1 FROM ${T} d WHERE d.status = 'dead' AND d.partition = o.partition
                 AND d.key = o.key AND d.seq < o.seq)
             GROUP BY o.partition
           ), parts AS (SELECT partition FROM ${L} UNION SELECT partition FROM counts)
           SELECT parts.partition, l.owner, l.fence::text AS fence, l.expires_at,
                  coalesce(c.pending, 0)::int AS pending, coalesce(c.dead, 0)::int AS dead,
                  coalesce(b.blocked, 0)::int AS blocked, coalesce(b.keys, 0)::int AS keys,
                  (extract(epoch FROM now() - c.oldest) * 1000)::float8 AS oldest_ms
           FROM parts LEFT JOIN ${L} l ON l.partition = parts.partition
             LEFT JOIN counts c ON c.partition = parts.partition
             LEFT JOIN blocked b ON b.partition = parts.partition
           ORDER BY parts.partition`,
        );
        return rowsOf(result).map((row): PartitionStatus => ({
          partition: Number(row.partition),
          pending: Number(row.pending),
          dead: Number(row.dead),
          blocked: Number(row.blocked),
          blockedKeys: Number(row.keys),
          oldestPendingMs: row.oldest_ms === null ? undefined : Math.max(0, Number(row.oldest_ms)),
          owner: (row.owner as string | null) ?? undefined,
          fence: row.owner === null ? undefined : toBigInt(row.fence),
          leaseExpiresAt: row.owner === null ? undefined : (row.expires_at as Date),
        }));
      }),

    skipDead: (ids) =>
      run('skipDead', async (pool) => {
        const result = await pool.query(
          `UPDATE ${T} SET status = 'skipped' WHERE status = 'dead' AND id = ANY($1::text[])`,
          [[...ids]],
        );
        return result.rowCount ?? 0;
      }),

    retryDead: (ids) =>
      run('retryDead', async (pool) => {
        const result = await pool.query(
          `UPDATE ${T} SET status = 'pending', attempts = 0, available_at = now()
           WHERE status = 'dead' AND ($1::text[] IS NULL OR id = ANY($1::text[]))`,
          [ids === undefined ? null : [...ids]],
        );
        return result.rowCount ?? 0;
      }),

    republish: (since) =>
      run('republish', async (pool) => {
        const result = await pool.query(
          `UPDATE ${T} SET status = 'pending', published_at = NULL, attempts = 0, available_at = now()
           WHERE status = 'published' AND created_at >= $1`,
          [since],
        );
        return result.rowCount ?? 0;
      }),

    purgePublished: (before, limit) =>
      run('purgePublished', async (pool) => {
        if (checkLimit(limit, 'limit') === 0) return 0;
        const result = await pool.query(
          `DELETE FROM ${T} WHERE seq IN (
             SELECT seq FROM ${T} WHERE status = 'published' AND published_at < $1
             ORDER BY seq LIMIT $2)`,
          [before, limit],
        );
        return result.rowCount ?? 0;
      }),

    listen: async (onWake) => {
      if (channel === undefined) {
        throw new FerryError(
          'INVALID_ARGUMENT',
          'listen() needs the store created with `notify` enabled',
        );
      }
      const pool = await run('listen', async (p) => p);
      return openListener(pool, channel, onWake, (sub) => listeners.delete(sub), listeners);
    },

    close: async () => {
      if (closed) return;
      closed = true;
      await Promise.all([...listeners].map((l) => l.close()));
      await conn.end();
    },
  };
  return store;
}

/** The PostgreSQL outbox: `enqueue(tx, topic, payload)` plus relays that wake on NOTIFY. */
export interface PostgresOutbox extends Outbox<PgQueryable> {
  readonly store: PostgresOutboxStore;
}

/**
 * `createOutbox` over {@link postgresOutboxStore}. With `notify`, every relay it makes also
 * listens on the wake-up channel (one dedicated connection per relay, opened by `start()`
 * and closed by `stop()`) and publishes as soon as a writer commits; polling stays the
 * fallback.
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

async function openListener(
  pool: PgPool,
  channel: string,
  onWake: (partitions?: readonly number[]) => void,
  forget: (sub: WakeSubscription) => void,
  registry: Set<WakeSubscription>,
): Promise<WakeSubscription> {
  let client: PgPoolClient | undefined;
  let stopped = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let backoffMs = 100;

  const drop = (error?: Error): void => {
    const current = client;
    client = undefined;
    // Destroyed, not pooled: it still has listeners and a LISTEN registered.
    current?.release(error ?? true);
  };

  const connect = async (): Promise<void> => {
    const fresh = await pool.connect();
    fresh.on('notification', (message) => {
      if (message.channel === channel) onWake(partitionsOf(message.payload));
    });
    fresh.on('error', (error) => {
      if (client !== fresh) return;
      drop(error);
      schedule();
    });
    try {
      await fresh.query(`LISTEN "${channel}"`);
    } catch (error) {
      fresh.release(error as Error);
      throw error;
    }
    if (stopped) {
      fresh.release(true);
      return;
    }
    client = fresh;
    backoffMs = 100;
  };

  const schedule = (): void => {
    if (stopped) return;
    retryTimer = setTimeout(() => {
      connect().then(
        () => {
          if (!stopped) onWake();
        },
        () => {
          backoffMs = Math.min(backoffMs * 2, 5000);
          schedule();
        },
      );
    }, backoffMs);
    retryTimer.unref();
  };

  await guarded(DIALECT, 'listen', connect);
  const subscription: WakeSubscription = {
    close: async () => {
      if (stopped) return;
      stopped = true;
      if (retryTimer) clearTimeout(retryTimer);
      forget(subscription);
      drop();
    },
  };
  registry.add(subscription);
  return subscription;
}

export interface PostgresInboxOptions<C extends PgPoolClient> extends PostgresConnectionOptions<C> {
  /** Inbox table; default `ferry_inbox`. */
  readonly table?: string;
}

/**
 * The PostgreSQL idempotent-consumer inbox; the handler's `tx` is the pool connection. Name
 * your client type to get it in handlers: `postgresInbox<PoolClient>({ pool })` (TypeScript
 * cannot infer it through `pg`'s overloaded `connect`).
 */
export interface PostgresInbox<C extends PgPoolClient = PgPoolClient> extends Inbox<C> {
  /** Creates the inbox table if missing (idempotent, safe from many processes). */
  migrate(): Promise<void>;
  /** Deletes up to `limit` inbox rows processed before `before`; returns how many. */
  purge(before: Date, limit: number): Promise<number>;
  /** Ends the pool ferry opened from `connectionString` (never yours). */
  close(): Promise<void>;
}

/**
 * Effectively-once consumption on PostgreSQL: `process` borrows a pool connection, begins a
 * transaction, inserts `(group, messageId)` and, unless that row already existed (a
 * duplicate: nothing runs), calls `work` with the connection and commits. If `work` throws,
 * everything rolls back and the error propagates, so the message is handed out again.
 */
export function postgresInbox<C extends PgPoolClient = PgPoolClient>(
  options: PostgresInboxOptions<C>,
): PostgresInbox<C> {
  const table = assertIdentifier(options.table ?? 'ferry_inbox');
  const I = q(table);
  const conn = connection(options);
  return createSqlInbox<C>({
    name: DIALECT,
    migrate: async () =>
      transaction(await conn.pool(), async (client) => {
        await client.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [
          `ferry.migrate.${table}`,
        ]);
        await client.query(`
          CREATE TABLE IF NOT EXISTS ${I} (
            consumer_group text NOT NULL,
            message_id text NOT NULL,
            processed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer_group, message_id)
          );
          CREATE INDEX IF NOT EXISTS ${q(`${baseName(table)}_processed`)} ON ${I} (processed_at);
        `);
      }),
    transaction: async (work) => transaction(await conn.pool(), work),
    insert: async (client, group, messageId) => {
      const inserted = await client.query(
        `INSERT INTO ${I} (consumer_group, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
        [group, messageId],
      );
      return inserted.rowCount !== 0;
    },
    purge: async (before, limit) => {
      const result = await (
        await conn.pool()
      ).query(
        `DELETE FROM ${I} WHERE ctid = ANY(ARRAY(
           SELECT ctid FROM ${I} WHERE processed_at < $1 LIMIT $2))`,
        [before, limit],
      );
      return result.rowCount ?? 0;
    },
    close: () => conn.end(),
  });
}

function assertChannel(name: string): string {
  if (assertIdentifier(name, 'notify channel').includes('.')) {
    throw new FerryError('INVALID_NAME', `Invalid notify channel name ${JSON.stringify(name)}`);
  }
  return name;
}

/** The partitions a wake-up names (`3,7`), or undefined when it names none. */
function partitionsOf(payload: string | undefined): number[] | undefined {
  if (payload === undefined || payload === '') return undefined;
  const partitions = payload.split(',').map(Number);
  return partitions.every((partition) => Number.isInteger(partition) && partition >= 0)
    ? partitions
    : undefined;
}
