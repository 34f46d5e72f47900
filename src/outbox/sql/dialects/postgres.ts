import { createHash } from 'node:crypto';
import type { InboxDialect } from '../inbox.js';
import {
  sqlCompiler,
  type InsertRow,
  type OutboxStatements,
  type SqlDialect,
  type SqlSession,
} from '../dialect.js';
import {
  transaction,
  type PgPool,
  type PgPoolClient,
  type PgQueryable,
  type PgResult,
} from '../drivers/postgres-pool.js';
import type { Connection } from '../drivers/pool.js';
import {
  INSERT_CHUNK,
  baseName,
  chunks,
  quoteIdentifier,
  suffixIdentifier,
  toDate,
} from '../shared.js';

const NAME = 'postgres';
const q = (name: string): string => quoteIdentifier(name, '"');
const compile = sqlCompiler(true);

/** Statements with `@name` or `?` parameters on a connection, pool or transaction of the driver. */
export function postgresSession(db: PgQueryable): SqlSession {
  return {
    query: async (sql, params) => {
      const { text, values } = compile(sql, params);
      const result = (await db.query(text, values)) as PgResult;
      return { rows: result.rows as Record<string, unknown>[], count: result.rowCount ?? 0 };
    },
  };
}

/** Runs `work` in a transaction holding the advisory lock of `name` until it ends. */
async function locked<T>(
  connection: Connection<PgPool>,
  name: string,
  work: (db: SqlSession) => Promise<T>,
): Promise<T> {
  return transaction(await connection.pool(), async (client) => {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`ferry.${name}`]);
    return work(postgresSession(client));
  });
}

/** The outbox statements of PostgreSQL over `table` and its companion tables. */
function statements(table: string): OutboxStatements {
  const T = q(table);
  const L = q(suffixIdentifier(table, 'lease'));
  const R = q(suffixIdentifier(table, 'relay'));
  const S = q(suffixIdentifier(table, 'schema'));
  const index = (suffix: string): string => q(`${baseName(table)}_${suffix}`);
  const ms = (param: string): string => `now() + @${param} * interval '1 millisecond'`;
  // A lease is valid while it has not expired; the row lock makes a concurrent takeover
  // wait until this statement's transaction ends, so a write guarded by it is never
  // interleaved with a newer owner's reads.
  const leaseHeld = `EXISTS (SELECT 1 FROM ${L} WHERE partition = @partition AND owner = @owner
    AND fence = @fence::bigint AND expires_at > now() FOR SHARE)`;
  const blockedBy = (o: string): string =>
    `EXISTS (SELECT 1 FROM ${T} d WHERE d.status = 'dead' AND d.partition = ${o}.partition
       AND d.key = ${o}.key AND d.seq < ${o}.seq)`;
  return {
    migrations: [
      {
        version: 1,
        up: [
          `
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
            CREATE UNIQUE INDEX IF NOT EXISTS ${index('id')} ON ${T} (id);
            CREATE INDEX IF NOT EXISTS ${index('pending')} ON ${T} (partition, seq) WHERE status = 'pending';
            CREATE TABLE IF NOT EXISTS ${L} (
              partition integer PRIMARY KEY,
              owner text,
              fence bigint NOT NULL DEFAULT 0,
              expires_at timestamptz NOT NULL DEFAULT '-infinity'
            );
            CREATE TABLE IF NOT EXISTS ${R} (
              owner text PRIMARY KEY,
              expires_at timestamptz NOT NULL
            )`,
        ],
      },
      {
        // Relays record their destination; a dead row can also be `skipped`.
        version: 2,
        up: async (db) => {
          await db.query(`ALTER TABLE ${R} ADD COLUMN IF NOT EXISTS destination text`);
          const checks = await db.query(
            `SELECT conname FROM pg_constraint WHERE conrelid = @table::regclass AND contype = 'c'
             AND pg_get_constraintdef(oid) LIKE '%status%'`,
            { table: T },
          );
          for (const row of checks.rows) {
            await db.query(`ALTER TABLE ${T} DROP CONSTRAINT ${q(String(row.conname))}`);
          }
          await db.query(
            `ALTER TABLE ${T} ADD CONSTRAINT ${index('status')}
             CHECK (status IN ('pending', 'published', 'dead', 'skipped'))`,
          );
          await db.query(
            `CREATE INDEX IF NOT EXISTS ${index('dead')} ON ${T} (partition, key, seq) WHERE status = 'dead'`,
          );
        },
      },
    ],
    createSchemaTable: `CREATE TABLE IF NOT EXISTS ${S} (
      version integer PRIMARY KEY,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`,
    recordVersion: `INSERT INTO ${S} (version) VALUES (@version)`,
    appliedVersion: `SELECT max(version) AS v FROM ${S}`,
    countLeases: `SELECT count(*)::int AS n FROM ${L}`,
    seedLeases: `INSERT INTO ${L} (partition) SELECT generate_series(0, @partitions::int - 1)
      WHERE NOT EXISTS (SELECT 1 FROM ${L})`,
    heartbeat: `WITH registered AS (
        INSERT INTO ${R} (owner, expires_at) VALUES (@owner, ${ms('ttlMs')})
        ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at
      ), forgotten AS (
        DELETE FROM ${R} WHERE owner <> @owner AND expires_at < now() - @forgetMs * interval '1 millisecond'
      )
      UPDATE ${L} SET expires_at = ${ms('ttlMs')}
      WHERE owner = @owner RETURNING partition, fence::text AS fence`,
    otherDestination: `SELECT destination FROM ${R} WHERE owner <> @owner AND expires_at > now()
      AND destination IS NOT NULL AND destination <> @destination LIMIT 1`,
    register: `INSERT INTO ${R} (owner, expires_at, destination)
      VALUES (@owner, ${ms('ttlMs')}, @destination)
      ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at,
        destination = excluded.destination`,
    liveRelays: `SELECT count(*)::int AS n FROM ${R} WHERE expires_at > now()`,
    // SKIP LOCKED lets relays acquiring at once take different partitions; the outer
    // condition re-checks each row after its lock, which makes the takeover a CAS.
    acquire: `UPDATE ${L} SET owner = @owner, fence = fence + 1, expires_at = ${ms('ttlMs')}
      WHERE partition IN (
        SELECT partition FROM ${L} WHERE owner IS NULL OR expires_at <= now()
        ORDER BY partition LIMIT @max FOR UPDATE SKIP LOCKED
      ) AND (owner IS NULL OR expires_at <= now())
      RETURNING partition, fence::text AS fence`,
    release: `WITH released AS (
        UPDATE ${L} SET owner = NULL, expires_at = '-infinity'
        WHERE owner = @owner AND partition = ANY(@partitions::int[])
      )
      DELETE FROM ${R} WHERE @deregister::boolean AND owner = @owner`,
    readPending: `SELECT id, seq::text AS seq_text, topic, key, partition, payload, headers,
        created_at, attempts, available_at, available_at <= now() AS ready
      FROM ${T} o WHERE status = 'pending' AND partition = @partition
        AND seq <> ALL(@exclude::bigint[]) AND NOT ${blockedBy('o')}
      ORDER BY seq LIMIT @limit`,
    readPendingMany: `SELECT o.id, o.seq::text AS seq_text, o.topic, o.key, o.partition, o.payload,
        o.headers, o.created_at, o.attempts, o.available_at, o.available_at <= now() AS ready
      FROM unnest(@partitions::int[], @skipFrom::bigint[], @skipTo::bigint[])
        AS wanted(partition, skip_from, skip_to)
      CROSS JOIN LATERAL (
        SELECT * FROM ${T} o WHERE status = 'pending' AND partition = wanted.partition
          AND (o.seq < wanted.skip_from OR o.seq > wanted.skip_to) AND NOT ${blockedBy('o')}
        ORDER BY seq LIMIT @limit
      ) o
      ORDER BY o.partition, o.seq`,
    markPublishedMany: `UPDATE ${T} o SET status = 'published', published_at = now()
      FROM unnest(@partitions::int[], @fences::bigint[]) AS held(partition, fence)
      WHERE o.id = ANY(@ids::text[]) AND o.partition = held.partition AND o.status = 'pending'
        AND EXISTS (SELECT 1 FROM ${L} l WHERE l.partition = held.partition AND l.owner = @owner
          AND l.fence = held.fence AND l.expires_at > now() FOR SHARE)
      RETURNING o.partition`,
    markPublished: `UPDATE ${T} SET status = 'published', published_at = now()
      WHERE id = ANY(@ids::text[]) AND partition = @partition AND status = 'pending' AND ${leaseHeld}`,
    markFailed: `UPDATE ${T} SET attempts = attempts + 1, last_error = @error,
        status = CASE WHEN @dead::boolean THEN 'dead' ELSE status END,
        available_at = CASE WHEN @dead::boolean THEN available_at ELSE ${ms('retryInMs')} END
      WHERE id = @id AND partition = @partition AND status = 'pending' AND ${leaseHeld}`,
    status: `WITH counts AS (
        SELECT partition,
               count(*) FILTER (WHERE status = 'pending') AS pending,
               count(*) FILTER (WHERE status = 'dead') AS dead,
               min(created_at) FILTER (WHERE status = 'pending') AS oldest
        FROM ${T} WHERE status IN ('pending', 'dead') GROUP BY partition
      ), blocked AS (
        SELECT o.partition, count(*) AS blocked, count(DISTINCT o.key) AS keys
        FROM ${T} o WHERE o.status = 'pending' AND ${blockedBy('o')}
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
    skipDead: `UPDATE ${T} SET status = 'skipped' WHERE status = 'dead' AND id = ANY(@ids::text[])`,
    retryDead: `UPDATE ${T} SET status = 'pending', attempts = 0, available_at = now()
      WHERE status = 'dead' AND (@all::boolean OR id = ANY(@ids::text[]))`,
    republish: `UPDATE ${T} SET status = 'pending', published_at = NULL, attempts = 0,
        available_at = now()
      WHERE status = 'published' AND created_at >= @since`,
    purgePublished: `DELETE FROM ${T} WHERE seq IN (
        SELECT seq FROM ${T} WHERE status = 'published' AND published_at < @before
        ORDER BY seq LIMIT @limit)`,
  };
}

/** How PostgreSQL inserts outbox rows, and whether each insert sends a wake-up. */
export interface PostgresInsertOptions {
  /** The wake-up channel every insert notifies (at commit), or undefined for none. */
  readonly channel: string | undefined;
  /** Whether a `pg` client gets the insert as a named statement (parsed once per connection). */
  readonly prepare: boolean;
}

const COLUMNS = 7;

/**
 * The insert of `count` rows: a plain multi-row `VALUES` list (rows get their seq in list
 * order). With a channel it also notifies, with the partitions of its rows as the payload
 * (comma-separated), so a relay woken by it can read just those partitions.
 */
function insertStatement(table: string, count: number, channel: boolean): string {
  const rows = Array.from({ length: count }, (_, row) => {
    const first = row * COLUMNS;
    return `($${first + 1}, $${first + 2}, $${first + 3}, $${first + 4}, $${first + 5}, $${first + 6}, $${first + 7})`;
  });
  const insert = `INSERT INTO ${q(table)} (id, topic, key, partition, payload, headers, created_at) VALUES ${rows.join(', ')}`;
  return channel
    ? `WITH inserted AS (${insert}) SELECT pg_notify($${count * COLUMNS + 1}, $${count * COLUMNS + 2})`
    : insert;
}

/** A `pg` client rather than an adapter: it takes a named statement, parsed once per connection. */
const takesNamed = (tx: PgQueryable): tx is PgQueryable & NamedQueryable =>
  typeof tx === 'object' && tx !== null && 'connectionParameters' in tx;

interface NamedQueryable {
  query(config: { name: string; text: string; values: unknown[] }): Promise<unknown>;
}

function inserter(table: string, { channel, prepare }: PostgresInsertOptions) {
  const texts = new Map<number, { text: string; name: string }>();
  const statement = (count: number): { text: string; name: string } => {
    let found = texts.get(count);
    if (found === undefined) {
      const text = insertStatement(table, count, channel !== undefined);
      found = { text, name: `ferry_${createHash('sha1').update(text).digest('hex').slice(0, 24)}` };
      // Batches of any size come and go: keep the texts of the common sizes only.
      if (count <= 64) texts.set(count, found);
    }
    return found;
  };
  return async (tx: PgQueryable, rows: readonly InsertRow[]): Promise<void> => {
    for (const chunk of chunks(rows, INSERT_CHUNK)) {
      const values: unknown[] = [];
      for (const r of chunk) {
        values.push(r.id, r.topic, r.key, r.partition, r.body, r.headers, r.createdAt);
      }
      if (channel !== undefined) {
        values.push(channel, [...new Set(chunk.map((r) => r.partition))].join(','));
      }
      const { text, name } = statement(chunk.length);
      await (prepare && chunk.length <= 64 && takesNamed(tx)
        ? tx.query({ name, text, values })
        : tx.query(text, values));
    }
  };
}

/**
 * The PostgreSQL dialect of the outbox store over `connection`: times on the database
 * clock, leases taken with `FOR UPDATE SKIP LOCKED`, migrations under an advisory lock.
 * Each operation is one statement, so none needs a transaction of its own.
 */
export function postgresDialect(
  connection: Connection<PgPool>,
  table: string,
  options: PostgresInsertOptions,
): SqlDialect<PgQueryable> {
  const insert = inserter(table, options);
  const use = async <T>(work: (db: SqlSession) => Promise<T>): Promise<T> =>
    work(postgresSession(await connection.pool()));
  return {
    name: NAME,
    table,
    statements: statements(table),
    use,
    atomic: use,
    exclusive: (name, work) => locked(connection, name, work),
    insert,
    toDate,
    fromDate: (date) => date,
    list: (values) => [...values],
    close: () => connection.end(),
  };
}

/** The PostgreSQL inbox statements over `table`. */
export function postgresInboxDialect<C extends PgPoolClient>(
  connection: Connection<PgPool<C>>,
  table: string,
): InboxDialect<C> {
  const I = q(table);
  return {
    name: NAME,
    migrate: () =>
      locked(connection as Connection<PgPool>, `migrate.${table}`, async (db) => {
        await db.query(`
          CREATE TABLE IF NOT EXISTS ${I} (
            consumer_group text NOT NULL,
            message_id text NOT NULL,
            processed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer_group, message_id)
          );
          CREATE INDEX IF NOT EXISTS ${q(`${baseName(table)}_processed`)} ON ${I} (processed_at)`);
      }),
    transaction: async (work) => transaction(await connection.pool(), work),
    insert: async (client, group, messageId) => {
      const inserted = await client.query(
        `INSERT INTO ${I} (consumer_group, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
        [group, messageId],
      );
      return inserted.rowCount !== 0;
    },
    purge: async (before, limit) => {
      const result = await (
        await connection.pool()
      ).query(
        `DELETE FROM ${I} WHERE ctid = ANY(ARRAY(
           SELECT ctid FROM ${I} WHERE processed_at < $1 LIMIT $2))`,
        [before, limit],
      );
      return result.rowCount ?? 0;
    },
    close: () => connection.end(),
  };
}
