import { createHash } from 'node:crypto';
import type { Inbox } from '../core/bus.js';
import { createSqlInbox } from '../outbox/sql/inbox.js';
import { FerryError } from '../core/errors.js';
import { partitionFor } from '../core/message.js';
import { createOutbox, type Outbox } from '../outbox/outbox.js';
import type {
  Lease,
  NewOutboxRecord,
  OutboxRecord,
  OutboxStore,
  PartitionStatus,
} from '../outbox/store.js';
import {
  DEFAULT_PARTITIONS,
  FORGET_RELAYS_AFTER_MS,
  MAX_ERROR_TEXT,
  INSERT_CHUNK,
  assertIdentifier,
  checkLimit,
  checkMs,
  checkPartitions,
  chunks,
  guarded,
  parseHeaders,
  quoteIdentifier,
  suffixIdentifier,
  toBigInt,
} from './sql-shared.js';
import {
  connection,
  transaction,
  type MysqlConnectionOptions,
  type MysqlPool,
  type MysqlPoolConnection,
  type MysqlQueryable,
} from './mysql-pool.js';

export type {
  MysqlConnectionOptions,
  MysqlPool,
  MysqlPoolConnection,
  MysqlQueryable,
} from './mysql-pool.js';

export interface MysqlOutboxOptions extends MysqlConnectionOptions {
  /**
   * Outbox table; default `ferry_outbox`. The lease and relay tables are `<table>_lease`
   * and `<table>_relay`. A plain identifier, optionally `database.table`.
   */
  readonly table?: string;
  /** P, used only when the tables are created; afterwards read back from the database. */
  readonly partitions?: number;
}

export type MysqlOutboxStore = OutboxStore<MysqlQueryable>;

const DIALECT = 'mysql';
const q = (name: string): string => quoteIdentifier(name, '`');
/** Times are kept as UTC DATETIME(6) written by the database clock; read back as ISO text. */
const ISO = `'%Y-%m-%dT%H:%i:%s.%fZ'`;
const NOW = 'UTC_TIMESTAMP(6)';
const inMs = (placeholder = '?'): string => `DATE_ADD(${NOW}, INTERVAL ${placeholder} MICROSECOND)`;

/** A JS date as a UTC DATETIME literal value (`2024-01-02 03:04:05.678`). */
const utc = (date: Date): string => date.toISOString().replace('T', ' ').replace('Z', '');

/** Runs `work` holding a named lock (`GET_LOCK`), so concurrent migrations run one by one. */
async function withNamedLock<C extends MysqlPoolConnection, T>(
  pool: MysqlPool<C>,
  name: string,
  work: (conn: C) => Promise<T>,
): Promise<T> {
  // Lock names are limited to 64 characters.
  const lock = `ferry:${createHash('sha1').update(name).digest('hex')}`;
  const conn = await pool.getConnection();
  try {
    const [rows] = await conn.query('SELECT GET_LOCK(?, 60) AS locked', [lock]);
    if (Number((rows as Row[])[0]?.locked) !== 1) {
      throw new FerryError('TIMEOUT', `Timed out waiting for the migration lock of ${name}`);
    }
    try {
      return await work(conn);
    } finally {
      await conn.query('SELECT RELEASE_LOCK(?)', [lock]);
    }
  } finally {
    conn.release();
  }
}

type Row = Record<string, unknown>;

/** ER_LOCK_DEADLOCK or ER_LOCK_WAIT_TIMEOUT. */
const isLockConflict = (error: unknown): boolean => {
  const errno = (error as { errno?: unknown } | null)?.errno;
  return errno === 1213 || errno === 1205;
};
const rowsOf = (result: [unknown, unknown]): Row[] => result[0] as Row[];
const affected = (result: [unknown, unknown]): number =>
  Number((result[0] as { affectedRows?: unknown }).affectedRows ?? 0);

const toLease = (row: Row): Lease => ({
  partition: Number(row.partition),
  fence: toBigInt(row.fence),
});

/**
 * The MySQL 8 / MariaDB 10.6+ outbox store (`mysql2`): the outbox, lease and relay tables,
 * each partition leased by one relay at a time through a fenced compare-and-set on the
 * database clock (UTC).
 */
export function mysqlOutboxStore(options: MysqlOutboxOptions): MysqlOutboxStore {
  const table = assertIdentifier(options.table ?? 'ferry_outbox');
  const configured = checkPartitions(options.partitions ?? DEFAULT_PARTITIONS);
  /** P as the database has it, once read (fixed from the first migration on). */
  let partitions: number | undefined;
  const conn = connection(options);
  const T = q(table);
  const L = q(suffixIdentifier(table, 'lease'));
  const R = q(suffixIdentifier(table, 'relay'));
  const S = q(suffixIdentifier(table, 'schema'));
  let closed = false;

  const countLeases = async (c: MysqlQueryable): Promise<number> =>
    Number(
      rowsOf((await c.query(`SELECT COUNT(*) AS n FROM ${L}`)) as [unknown, unknown])[0]?.n ?? 0,
    );

  const run = async <X>(operation: string, work: (pool: MysqlPool) => Promise<X>): Promise<X> => {
    if (closed) throw new FerryError('CLOSED', 'The mysql outbox store is closed');
    return guarded(DIALECT, operation, async () => {
      const pool = await conn.pool();
      if (partitions === undefined && operation !== 'migrate') {
        const stored = await countLeases(pool);
        if (stored === 0) {
          throw new FerryError('STORE_FAILED', `The outbox ${table} is not migrated: run migrate`);
        }
        partitions = stored;
      }
      // InnoDB may pick ferry's own statements as deadlock victims (rolled back whole):
      // they are safe to run again.
      for (let attempt = 1; ; attempt++) {
        try {
          return await work(pool);
        } catch (error) {
          if (attempt >= 5 || !isLockConflict(error)) throw error;
          await new Promise((resolve) => setTimeout(resolve, attempt * 10 * Math.random()));
        }
      }
    });
  };

  // A multi-table UPDATE reads the lease row with a shared lock, so a takeover waits for
  // this statement, and rows are written only while the fence is current and unexpired.
  // The outbox rows are found through the unique id index (forced): record locks only. A
  // range scan of outbox_pending would take next-key locks that block, and deadlock with,
  // writers inserting into the same partition.
  const leaseJoin = `JOIN ${L} l ON l.\`partition\` = ? AND l.owner = ? AND l.fence = ? AND l.expires_at > ${NOW}`;

  const toRecord = (row: Row): OutboxRecord => ({
    id: row.id as string,
    seq: toBigInt(row.seq_text),
    topic: row.topic as string,
    key: (row.key as string | null) ?? undefined,
    partition: Number(row.partition),
    body: row.payload as Buffer,
    headers: parseHeaders(row.headers),
    createdAt: new Date(row.created_at as string),
    attempts: Number(row.attempts),
    availableAt: new Date(row.available_at as string),
  });

  const insertChunk = async (
    tx: MysqlQueryable,
    rows: NewOutboxRecord[],
    p: number,
  ): Promise<void> => {
    const values: unknown[] = [];
    for (const r of rows) {
      values.push(
        r.id,
        r.topic,
        r.key ?? null,
        r.partition ?? partitionFor(r.key ?? r.id, p),
        r.body,
        JSON.stringify(r.headers),
        utc(r.createdAt),
      );
    }
    await tx.query(
      `INSERT INTO ${T} (id, topic, \`key\`, \`partition\`, payload, headers, created_at, available_at) VALUES ` +
        rows.map(() => `(?, ?, ?, ?, ?, ?, ?, ${NOW})`).join(', '),
      values,
    );
  };

  const store: MysqlOutboxStore = {
    dialect: DIALECT,
    get partitions() {
      return partitions ?? configured;
    },

    migrate: () =>
      run('migrate', (pool) =>
        withNamedLock(pool, `migrate.${table}`, async (c) => {
          await c.query(`
            CREATE TABLE IF NOT EXISTS ${T} (
              seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
              id VARCHAR(64) CHARACTER SET ascii NOT NULL,
              topic VARCHAR(255) NOT NULL,
              \`key\` VARCHAR(1024) NULL,
              \`partition\` INT NOT NULL,
              payload LONGBLOB NOT NULL,
              headers LONGTEXT NOT NULL,
              status VARCHAR(9) CHARACTER SET ascii NOT NULL DEFAULT 'pending',
              attempts INT NOT NULL DEFAULT 0,
              last_error TEXT NULL,
              created_at DATETIME(6) NOT NULL,
              available_at DATETIME(6) NOT NULL,
              published_at DATETIME(6) NULL,
              UNIQUE KEY outbox_id (id),
              KEY outbox_pending (status, \`partition\`, seq)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`);
          await c.query(`
            CREATE TABLE IF NOT EXISTS ${L} (
              \`partition\` INT NOT NULL PRIMARY KEY,
              owner VARCHAR(255) NULL,
              fence BIGINT NOT NULL DEFAULT 0,
              expires_at DATETIME(6) NOT NULL DEFAULT '1970-01-01 00:00:00'
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`);
          await c.query(`
            CREATE TABLE IF NOT EXISTS ${R} (
              owner VARCHAR(255) NOT NULL PRIMARY KEY,
              expires_at DATETIME(6) NOT NULL
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`);
          await c.query(`
            CREATE TABLE IF NOT EXISTS ${S} (
              version INT NOT NULL PRIMARY KEY,
              applied_at DATETIME(6) NOT NULL
            ) ENGINE=InnoDB`);
          // Versions after the first: each applied once, recorded in the schema table. DDL
          // commits on its own here, so each step checks what is already done.
          const applied = Number(
            rowsOf(await c.query(`SELECT COALESCE(MAX(version), 1) AS v FROM ${S}`))[0]?.v,
          );
          if (applied < 2) {
            const [relayName, relaySchema] = splitName(suffixIdentifier(table, 'relay'));
            const has = rowsOf(
              await c.query(
                `SELECT 1 FROM information_schema.columns WHERE table_schema = COALESCE(?, DATABASE())
                 AND table_name = ? AND column_name = 'destination'`,
                [relaySchema, relayName],
              ),
            );
            if (has.length === 0) {
              await c.query(`ALTER TABLE ${R} ADD COLUMN destination VARCHAR(1024) NULL`);
            }
            await c.query(`INSERT IGNORE INTO ${S} (version, applied_at) VALUES (2, ${NOW})`);
          }
          // One lease row per partition: their count is P, fixed from the first migration on.
          if ((await countLeases(c)) === 0) {
            await c.query(
              `INSERT IGNORE INTO ${L} (\`partition\`) VALUES ` +
                Array.from({ length: configured }, (_, i) => `(${i})`).join(', '),
            );
          }
          partitions = await countLeases(c);
        }),
      ),

    insert: async (tx, records) => {
      if (records.length === 0) return;
      const p = await run('insert', async () => store.partitions);
      await guarded(DIALECT, 'insert', async () => {
        for (const chunk of chunks(records, INSERT_CHUNK)) await insertChunk(tx, chunk, p);
      });
    },

    heartbeat: (owner, ttlMs) =>
      run('heartbeat', async (pool) => {
        const micros = checkMs(ttlMs, 'ttlMs') * 1000;
        await pool.query(
          `INSERT INTO ${R} (owner, expires_at) VALUES (?, ${inMs()})
           ON DUPLICATE KEY UPDATE expires_at = ${inMs()}`,
          [owner, micros, micros],
        );
        await pool.query(
          `DELETE FROM ${R} WHERE owner <> ? AND expires_at < DATE_SUB(${NOW}, INTERVAL ? MICROSECOND)`,
          [owner, FORGET_RELAYS_AFTER_MS * 1000],
        );
        // Look up by owner without locks, then renew by primary key: an UPDATE filtered on
        // the unindexed owner column would lock every lease row while it scans.
        const mine = rowsOf(
          await pool.query(`SELECT \`partition\` FROM ${L} WHERE owner = ?`, [owner]),
        ).map((row) => Number(row.partition));
        if (mine.length === 0) return [];
        await pool.query(
          `UPDATE ${L} SET expires_at = ${inMs()} WHERE \`partition\` IN (?) AND owner = ?`,
          [micros, mine, owner],
        );
        const held = await pool.query(
          `SELECT \`partition\`, CAST(fence AS CHAR) AS fence FROM ${L}
           WHERE \`partition\` IN (?) AND owner = ? ORDER BY \`partition\``,
          [mine, owner],
        );
        return rowsOf(held).map(toLease);
      }),

    register: (owner, ttlMs, destination) =>
      run('register', (pool) =>
        // Registrations of one table one at a time: two relays starting at once with
        // different transports cannot both get in.
        withNamedLock(pool, `register.${table}`, async (c) => {
          const other = rowsOf(
            await c.query(
              `SELECT destination FROM ${R} WHERE owner <> ? AND expires_at > ${NOW}
               AND destination IS NOT NULL AND destination <> ? LIMIT 1`,
              [owner, destination],
            ),
          )[0];
          if (other) return String(other.destination);
          const micros = checkMs(ttlMs, 'ttlMs') * 1000;
          await c.query(
            `INSERT INTO ${R} (owner, expires_at, destination) VALUES (?, ${inMs()}, ?)
             ON DUPLICATE KEY UPDATE expires_at = ${inMs()}, destination = ?`,
            [owner, micros, destination, micros, destination],
          );
          return undefined;
        }),
      ),

    liveRelays: () =>
      run('liveRelays', async (pool) => {
        const result = await pool.query(`SELECT COUNT(*) AS n FROM ${R} WHERE expires_at > ${NOW}`);
        return Number(rowsOf(result)[0]?.n ?? 0);
      }),

    acquire: (owner, max, ttlMs) =>
      run('acquire', async (pool) => {
        if (checkLimit(max, 'max') === 0) return [];
        const micros = checkMs(ttlMs, 'ttlMs') * 1000;
        return transaction(pool, async (c) => {
          // SKIP LOCKED lets relays acquiring at once take different partitions; the locks
          // held until commit make select-then-update one compare-and-set.
          const free = rowsOf(
            await c.query(
              `SELECT \`partition\` FROM ${L} WHERE owner IS NULL OR expires_at <= ${NOW}
               ORDER BY \`partition\` LIMIT ? FOR UPDATE SKIP LOCKED`,
              [max],
            ),
          ).map((row) => Number(row.partition));
          if (free.length === 0) return [];
          await c.query(
            `UPDATE ${L} SET owner = ?, fence = fence + 1, expires_at = ${inMs()}
             WHERE \`partition\` IN (?) AND (owner IS NULL OR expires_at <= ${NOW})`,
            [owner, micros, free],
          );
          const taken = await c.query(
            `SELECT \`partition\`, CAST(fence AS CHAR) AS fence FROM ${L}
             WHERE \`partition\` IN (?) AND owner = ? ORDER BY \`partition\``,
            [free, owner],
          );
          return rowsOf(taken).map(toLease);
        });
      }),

    release: (owner, released, deregister = false) =>
      run('release', async (pool) => {
        if (released.length > 0) {
          await pool.query(
            `UPDATE ${L} SET owner = NULL, expires_at = '1970-01-01 00:00:00'
             WHERE \`partition\` IN (?) AND owner = ?`,
            [[...released], owner],
          );
        }
        if (deregister) await pool.query(`DELETE FROM ${R} WHERE owner = ?`, [owner]);
      }),

    readPending: (partition, limit, exclude) =>
      run('readPending', async (pool) => {
        if (checkLimit(limit, 'limit') === 0) return [];
        const skipping = exclude !== undefined && exclude.length > 0;
        const result = await pool.query(
          `SELECT id, CAST(seq AS CHAR) AS seq_text, topic, \`key\`, \`partition\`, payload, headers,
                  DATE_FORMAT(created_at, ${ISO}) AS created_at, attempts,
                  DATE_FORMAT(available_at, ${ISO}) AS available_at,
                  available_at <= ${NOW} AS ready
           FROM ${T} o WHERE status = 'pending' AND \`partition\` = ?${skipping ? ' AND seq NOT IN (?)' : ''}
             AND NOT EXISTS (SELECT 1 FROM ${T} d WHERE d.status = 'dead'
               AND d.\`partition\` = o.\`partition\` AND d.seq < o.seq
               AND CAST(d.\`key\` AS BINARY) = CAST(o.\`key\` AS BINARY))
           ORDER BY seq LIMIT ?`,
          skipping ? [partition, exclude.map(String), limit] : [partition, limit],
        );
        const out: OutboxRecord[] = [];
        for (const row of rowsOf(result)) {
          if (Number(row.ready) !== 1) break;
          out.push(toRecord(row));
        }
        return out;
      }),

    markPublished: (owner, lease, ids) =>
      run('markPublished', async (pool) => {
        if (ids.length === 0) return 0;
        const result = await pool.query(
          `UPDATE ${T} o FORCE INDEX (outbox_id) ${leaseJoin}
           SET o.status = 'published', o.published_at = ${NOW}
           WHERE o.id IN (?) AND o.\`partition\` = ? AND o.status = 'pending'`,
          [lease.partition, owner, lease.fence.toString(), [...ids], lease.partition],
        );
        return affected(result);
      }),

    markFailed: (owner, lease, id, error, retry) =>
      run('markFailed', async (pool) => {
        const result = await pool.query(
          `UPDATE ${T} o FORCE INDEX (outbox_id) ${leaseJoin}
           SET o.attempts = o.attempts + 1, o.last_error = ?,
               o.status = IF(?, 'dead', o.status),
               o.available_at = IF(?, o.available_at, ${inMs()})
           WHERE o.id = ? AND o.\`partition\` = ? AND o.status = 'pending'`,
          [
            lease.partition,
            owner,
            lease.fence.toString(),
            error.slice(0, MAX_ERROR_TEXT),
            retry.dead,
            retry.dead,
            checkMs(retry.retryInMs, 'retryInMs') * 1000,
            id,
            lease.partition,
          ],
        );
        return affected(result) > 0;
      }),

    status: () =>
      run('status', async (pool) => {
        const result = await pool.query(
          `SELECT parts.p AS \`partition\`, l.owner, CAST(l.fence AS CHAR) AS fence,
                  DATE_FORMAT(l.expires_at, ${ISO}) AS expires_at,
                  COALESCE(c.pending, 0) AS pending, COALESCE(c.dead, 0) AS dead,
                  COALESCE(b.blocked, 0) AS blocked, COALESCE(b.\`keys\`, 0) AS \`keys\`,
                  TIMESTAMPDIFF(MICROSECOND, c.oldest, ${NOW}) / 1000 AS oldest_ms
           FROM (
             SELECT \`partition\` AS p FROM ${L}
             UNION SELECT DISTINCT \`partition\` FROM ${T} WHERE status IN ('pending', 'dead')
           ) parts
           LEFT JOIN ${L} l ON l.\`partition\` = parts.p
           LEFT JOIN (
             SELECT \`partition\` AS p, SUM(status = 'pending') AS pending, SUM(status = 'dead') AS dead,
                    MIN(CASE WHEN status = 'pending' THEN created_at END) AS oldest
             FROM ${T} WHERE status IN ('pending', 'dead') GROUP BY \`partition\`
           ) c ON c.p = parts.p
           LEFT JOIN (
             SELECT o.\`partition\` AS p, COUNT(*) AS blocked,
                    COUNT(DISTINCT CAST(o.\`key\` AS BINARY)) AS \`keys\`
             FROM ${T} o WHERE o.status = 'pending' AND EXISTS (
               SELECT 1 FROM ${T} d WHERE d.status = 'dead' AND d.\`partition\` = o.\`partition\`
                 AND d.seq < o.seq AND CAST(d.\`key\` AS BINARY) = CAST(o.\`key\` AS BINARY))
             GROUP BY o.\`partition\`
           ) b ON b.p = parts.p
           ORDER BY parts.p`,
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
          leaseExpiresAt: row.owner === null ? undefined : new Date(row.expires_at as string),
        }));
      }),

    skipDead: (ids) =>
      run('skipDead', async (pool) => {
        if (ids.length === 0) return 0;
        const result = await pool.query(
          `UPDATE ${T} SET status = 'skipped' WHERE status = 'dead' AND id IN (?)`,
          [[...ids]],
        );
        return affected(result);
      }),

    retryDead: (ids) =>
      run('retryDead', async (pool) => {
        if (ids !== undefined && ids.length === 0) return 0;
        const result = await pool.query(
          `UPDATE ${T} SET status = 'pending', attempts = 0, available_at = ${NOW}
           WHERE status = 'dead'${ids === undefined ? '' : ' AND id IN (?)'}`,
          ids === undefined ? [] : [[...ids]],
        );
        return affected(result);
      }),

    republish: (since) =>
      run('republish', async (pool) => {
        const result = await pool.query(
          `UPDATE ${T} SET status = 'pending', published_at = NULL, attempts = 0, available_at = ${NOW}
           WHERE status = 'published' AND created_at >= ?`,
          [utc(since)],
        );
        return affected(result);
      }),

    purgePublished: (before, limit) =>
      run('purgePublished', async (pool) => {
        if (checkLimit(limit, 'limit') === 0) return 0;
        // Find the rows with a plain (lock-free) read, then delete them by primary key: a
        // locking range scan could reach the end of the table and block every writer.
        const found = rowsOf(
          await pool.query(
            `SELECT seq FROM ${T} WHERE status = 'published' AND published_at < ? ORDER BY seq LIMIT ?`,
            [utc(before), limit],
          ),
        ).map((row) => String(row.seq));
        if (found.length === 0) return 0;
        const result = await pool.query(
          `DELETE FROM ${T} WHERE seq IN (?) AND status = 'published'`,
          [found],
        );
        return affected(result);
      }),

    close: async () => {
      if (closed) return;
      closed = true;
      await conn.end();
    },
  };
  return store;
}

/** `[name, schema]` of `schema.table` (schema null when unqualified). */
function splitName(name: string): [string, string | null] {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? [name, null] : [name.slice(dot + 1), name.slice(0, dot)];
}

/** The MySQL/MariaDB outbox: `createOutbox` over {@link mysqlOutboxStore}. */
export interface MysqlOutbox extends Outbox<MysqlQueryable> {
  readonly store: MysqlOutboxStore;
}

export function mysqlOutbox(options: MysqlOutboxOptions): MysqlOutbox {
  const store = mysqlOutboxStore(options);
  return { ...createOutbox(store), store };
}

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

/** UTF-8 bytes of a group name and of a message id the inbox keeps. */
const MAX_GROUP = 764;
const MAX_MESSAGE_ID = 1020;
// Binary, not a `_bin` collation: those still ignore trailing spaces (PAD SPACE). Ids that
// differ in case, accents or trailing spaces are distinct messages.
const GROUP_COLUMN = `VARBINARY(${MAX_GROUP}) NOT NULL`;
const MESSAGE_ID_COLUMN = `VARBINARY(${MAX_MESSAGE_ID}) NOT NULL`;

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
  const I = q(table);
  const conn = connection(options);
  return createSqlInbox<C>({
    name: DIALECT,
    migrate: async () =>
      withNamedLock(await conn.pool(), `migrate.${table}`, async (c) => {
        await c.query(`
          CREATE TABLE IF NOT EXISTS ${I} (
            consumer_group ${GROUP_COLUMN},
            message_id ${MESSAGE_ID_COLUMN},
            processed_at DATETIME(6) NOT NULL,
            PRIMARY KEY (consumer_group, message_id),
            KEY inbox_processed (processed_at)
          ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`);
        // Tables made before ids were compared byte for byte: binary columns only tell
        // more values apart, so existing rows stay valid.
        const [name, schema] = splitName(table);
        const types = rowsOf(
          await c.query(
            `SELECT data_type AS t FROM information_schema.columns
             WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?
               AND column_name IN ('consumer_group', 'message_id')`,
            [schema, name],
          ),
        );
        if (types.some((row) => String(row.t).toLowerCase() !== 'varbinary')) {
          await c.query(
            `ALTER TABLE ${I} MODIFY consumer_group ${GROUP_COLUMN}, MODIFY message_id ${MESSAGE_ID_COLUMN}`,
          );
        }
      }),
    // INSERT IGNORE would truncate an over-long value into a false duplicate: refuse it.
    check: (group, messageId) => {
      if (Buffer.byteLength(group) > MAX_GROUP || Buffer.byteLength(messageId) > MAX_MESSAGE_ID) {
        throw new FerryError(
          'INVALID_ARGUMENT',
          `The mysql inbox keeps groups up to ${MAX_GROUP} and message ids up to ${MAX_MESSAGE_ID} UTF-8 bytes`,
          { details: { group } },
        );
      }
    },
    transaction: async (work) => transaction(await conn.pool(), work),
    insert: async (c, group, messageId) =>
      affected(
        await c.query(
          `INSERT IGNORE INTO ${I} (consumer_group, message_id, processed_at) VALUES (?, ?, ${NOW})`,
          [group, messageId],
        ),
      ) !== 0,
    purge: async (before, limit) =>
      affected(
        await (
          await conn.pool()
        ).query(`DELETE FROM ${I} WHERE processed_at < ? LIMIT ?`, [utc(before), limit]),
      ),
    close: () => conn.end(),
  });
}
