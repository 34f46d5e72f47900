// Longer than 400 lines: MySQL's statements for the outbox, the inbox and every schema
// migration, in one file as for the other dialects; MySQL needs more of them (no RETURNING).
import { createHash } from 'node:crypto';
import { FerryError } from '../../../core/errors.js';
import type { InboxDialect } from '../inbox.js';
import {
  sqlCompiler,
  type InsertRow,
  type OutboxStatements,
  type Row,
  type SqlDialect,
  type SqlResult,
  type SqlSession,
} from '../dialect.js';
import {
  transaction,
  type MysqlPool,
  type MysqlPoolConnection,
  type MysqlQueryable,
} from '../drivers/mysql-pool.js';
import type { Connection } from '../drivers/pool.js';
import { INSERT_CHUNK, chunks, quoteIdentifier, suffixIdentifier, toDate } from '../shared.js';

const NAME = 'mysql';
const q = (name: string): string => quoteIdentifier(name, '`');
const compile = sqlCompiler(false);
/** Times are kept as UTC DATETIME(6) written by the database clock; read back as ISO text. */
const iso = (column: string): string => `DATE_FORMAT(${column}, '%Y-%m-%dT%H:%i:%s.%fZ')`;
const NOW = 'UTC_TIMESTAMP(6)';
const later = (param: string): string =>
  `DATE_ADD(${NOW}, INTERVAL (@${param} * 1000) MICROSECOND)`;
/** A JS date as a UTC DATETIME value (`2024-01-02 03:04:05.678`). */
const utc = (date: Date): string => date.toISOString().replace('T', ' ').replace('Z', '');

/** Statements with `@name` or `?` parameters on a connection, pool or transaction of the driver. */
export function mysqlSession(db: MysqlQueryable): SqlSession {
  return {
    query: async (sql, params) => {
      const { text, values } = compile(sql, params);
      const [result] = (await db.query(text, values)) as [unknown, unknown];
      if (Array.isArray(result)) return { rows: result as Row[], count: result.length };
      return { rows: [], count: Number((result as { affectedRows?: unknown }).affectedRows ?? 0) };
    },
  };
}

/** Runs `work` on one connection holding `GET_LOCK` of `name`: migrations one by one. */
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
      throw new FerryError('TIMEOUT', `Timed out waiting for the lock of ${name}`);
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

/** ER_LOCK_DEADLOCK or ER_LOCK_WAIT_TIMEOUT. */
const isLockConflict = (error: unknown): boolean => {
  const errno = (error as { errno?: unknown } | null)?.errno;
  return errno === 1213 || errno === 1205;
};

/** InnoDB may pick ferry's own statements as deadlock victims (rolled back whole): run again. */
async function retried<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (attempt >= 5 || !isLockConflict(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, attempt * 10 * Math.random()));
    }
  }
}

/** `[name, schema]` of `schema.table` (schema null when unqualified). */
function splitName(name: string): [string, string | null] {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? [name, null] : [name.slice(dot + 1), name.slice(0, dot)];
}

const none: SqlResult = { rows: [], count: 0 };

/** The outbox statements of MySQL 8 / MariaDB 10.6+ over `table` and its companions. */
function statements(table: string): OutboxStatements {
  const T = q(table);
  const L = q(suffixIdentifier(table, 'lease'));
  const R = q(suffixIdentifier(table, 'relay'));
  const S = q(suffixIdentifier(table, 'schema'));
  const heldLeases = `SELECT \`partition\`, CAST(fence AS CHAR) AS fence FROM ${L}
    WHERE \`partition\` IN (@held) AND owner = @owner ORDER BY \`partition\``;
  // A multi-table UPDATE reads the lease row with a shared lock, so a takeover waits for
  // this statement, and rows are written only while the fence is current and unexpired.
  // The outbox rows are found through the unique id index (forced): record locks only. A
  // range scan of outbox_pending would take next-key locks that block, and deadlock with,
  // writers inserting into the same partition.
  const guarded = `${T} o FORCE INDEX (outbox_id) JOIN ${L} l ON l.\`partition\` = @partition
    AND l.owner = @owner AND l.fence = @fence AND l.expires_at > ${NOW}`;
  // Keys compare byte for byte, as on the other databases.
  const blockedBy = (o: string): string =>
    `EXISTS (SELECT 1 FROM ${T} d WHERE d.status = 'dead' AND d.\`partition\` = ${o}.\`partition\`
       AND d.seq < ${o}.seq AND CAST(d.\`key\` AS BINARY) = CAST(${o}.\`key\` AS BINARY))`;
  return {
    migrations: [
      {
        version: 1,
        up: [
          `
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
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
          `
            CREATE TABLE IF NOT EXISTS ${L} (
              \`partition\` INT NOT NULL PRIMARY KEY,
              owner VARCHAR(255) NULL,
              fence BIGINT NOT NULL DEFAULT 0,
              expires_at DATETIME(6) NOT NULL DEFAULT '1970-01-01 00:00:00'
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
          `
            CREATE TABLE IF NOT EXISTS ${R} (
              owner VARCHAR(255) NOT NULL PRIMARY KEY,
              expires_at DATETIME(6) NOT NULL
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
        ],
      },
      {
        // Relays record their destination. DDL commits on its own: check what is done.
        version: 2,
        up: async (db) => {
          const [name, schema] = splitName(suffixIdentifier(table, 'relay'));
          const has = await db.query(
            `SELECT 1 FROM information_schema.columns WHERE table_schema = COALESCE(@schema, DATABASE())
             AND table_name = @name AND column_name = 'destination'`,
            { schema, name },
          );
          if (has.rows.length === 0) {
            await db.query(`ALTER TABLE ${R} ADD COLUMN destination VARCHAR(1024) NULL`);
          }
        },
      },
    ],
    createSchemaTable: `CREATE TABLE IF NOT EXISTS ${S} (
      version INT NOT NULL PRIMARY KEY,
      applied_at DATETIME(6) NOT NULL
    ) ENGINE=InnoDB`,
    recordVersion: `INSERT IGNORE INTO ${S} (version, applied_at) VALUES (@version, ${NOW})`,
    appliedVersion: `SELECT MAX(version) AS v FROM ${S}`,
    countLeases: `SELECT COUNT(*) AS n FROM ${L}`,
    seedLeases: (db, p) =>
      db.query(
        `INSERT IGNORE INTO ${L} (\`partition\`) VALUES ` +
          Array.from({ length: Number(p.partitions) }, (_, i) => `(${i})`).join(', '),
      ),
    heartbeat: async (db, p) => {
      await db.query(
        `INSERT INTO ${R} (owner, expires_at) VALUES (@owner, ${later('ttlMs')})
         ON DUPLICATE KEY UPDATE expires_at = ${later('ttlMs')}`,
        p,
      );
      await db.query(
        `DELETE FROM ${R} WHERE owner <> @owner
         AND expires_at < DATE_SUB(${NOW}, INTERVAL (@forgetMs * 1000) MICROSECOND)`,
        p,
      );
      // Look up by owner without locks, then renew by primary key: an UPDATE filtered on
      // the unindexed owner column would lock every lease row while it scans.
      const mine = await db.query(`SELECT \`partition\` FROM ${L} WHERE owner = @owner`, p);
      if (mine.rows.length === 0) return none;
      const held = mine.rows.map((row) => Number(row.partition));
      await db.query(
        `UPDATE ${L} SET expires_at = ${later('ttlMs')} WHERE \`partition\` IN (@held) AND owner = @owner`,
        { ...p, held },
      );
      return db.query(heldLeases, { ...p, held });
    },
    otherDestination: `SELECT destination FROM ${R} WHERE owner <> @owner AND expires_at > ${NOW}
      AND destination IS NOT NULL AND destination <> @destination LIMIT 1`,
    register: `INSERT INTO ${R} (owner, expires_at, destination)
      VALUES (@owner, ${later('ttlMs')}, @destination)
      ON DUPLICATE KEY UPDATE expires_at = ${later('ttlMs')}, destination = @destination`,
    liveRelays: `SELECT COUNT(*) AS n FROM ${R} WHERE expires_at > ${NOW}`,
    // SKIP LOCKED lets relays acquiring at once take different partitions; the locks held
    // until commit make select-then-update one compare-and-set.
    acquire: async (db, p) => {
      const free = await db.query(
        `SELECT \`partition\` FROM ${L} WHERE owner IS NULL OR expires_at <= ${NOW}
         ORDER BY \`partition\` LIMIT @max FOR UPDATE SKIP LOCKED`,
        p,
      );
      if (free.rows.length === 0) return none;
      const held = free.rows.map((row) => Number(row.partition));
      await db.query(
        `UPDATE ${L} SET owner = @owner, fence = fence + 1, expires_at = ${later('ttlMs')}
         WHERE \`partition\` IN (@held) AND (owner IS NULL OR expires_at <= ${NOW})`,
        { ...p, held },
      );
      return db.query(heldLeases, { ...p, held });
    },
    release: async (db, p) => {
      if (Number(p.count) > 0) {
        await db.query(
          `UPDATE ${L} SET owner = NULL, expires_at = '1970-01-01 00:00:00'
           WHERE \`partition\` IN (@partitions) AND owner = @owner`,
          p,
        );
      }
      if (p.deregister === true) await db.query(`DELETE FROM ${R} WHERE owner = @owner`, p);
      return none;
    },
    readPending: `SELECT id, CAST(seq AS CHAR) AS seq_text, topic, \`key\`, \`partition\`, payload,
        headers, ${iso('created_at')} AS created_at, attempts,
        ${iso('available_at')} AS available_at, available_at <= ${NOW} AS ready
      FROM ${T} o WHERE status = 'pending' AND \`partition\` = @partition
        AND seq NOT IN (@exclude) AND NOT ${blockedBy('o')}
      ORDER BY seq LIMIT @limit`,
    markPublished: `UPDATE ${guarded} SET o.status = 'published', o.published_at = ${NOW}
      WHERE o.id IN (@ids) AND o.\`partition\` = @partition AND o.status = 'pending'`,
    markFailed: `UPDATE ${guarded}
      SET o.attempts = o.attempts + 1, o.last_error = @error,
          o.status = IF(@dead, 'dead', o.status),
          o.available_at = IF(@dead, o.available_at, ${later('retryInMs')})
      WHERE o.id = @id AND o.\`partition\` = @partition AND o.status = 'pending'`,
    status: `SELECT parts.p AS \`partition\`, l.owner, CAST(l.fence AS CHAR) AS fence,
        ${iso('l.expires_at')} AS expires_at,
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
        FROM ${T} o WHERE o.status = 'pending' AND ${blockedBy('o')}
        GROUP BY o.\`partition\`
      ) b ON b.p = parts.p
      ORDER BY parts.p`,
    skipDead: `UPDATE ${T} SET status = 'skipped' WHERE status = 'dead' AND id IN (@ids)`,
    retryDead: `UPDATE ${T} SET status = 'pending', attempts = 0, available_at = ${NOW}
      WHERE status = 'dead' AND (@all OR id IN (@ids))`,
    republish: `UPDATE ${T} SET status = 'pending', published_at = NULL, attempts = 0,
        available_at = ${NOW}
      WHERE status = 'published' AND created_at >= @since`,
    // Find the rows with a plain (lock-free) read, then delete them by primary key: a
    // locking range scan could reach the end of the table and block every writer.
    purgePublished: async (db, p) => {
      const found = await db.query(
        `SELECT seq FROM ${T} WHERE status = 'published' AND published_at < @before
         ORDER BY seq LIMIT @limit`,
        p,
      );
      if (found.rows.length === 0) return none;
      const seqs = found.rows.map((row) => String(row.seq));
      return db.query(`DELETE FROM ${T} WHERE seq IN (@seqs) AND status = 'published'`, { seqs });
    },
  };
}

async function insertRows(tx: MysqlQueryable, table: string, rows: readonly InsertRow[]) {
  for (const chunk of chunks(rows, INSERT_CHUNK)) {
    const values: unknown[] = [];
    for (const r of chunk) {
      values.push(r.id, r.topic, r.key, r.partition, r.body, r.headers, utc(r.createdAt));
    }
    await tx.query(
      `INSERT INTO ${q(table)} (id, topic, \`key\`, \`partition\`, payload, headers, created_at, available_at) VALUES ` +
        chunk.map(() => `(?, ?, ?, ?, ?, ?, ?, ${NOW})`).join(', '),
      values,
    );
  }
}

/**
 * The MySQL/MariaDB dialect of the outbox store over `connection`: times on the database
 * clock in UTC, leases taken with `FOR UPDATE SKIP LOCKED` in a transaction, migrations
 * under `GET_LOCK`, statements run again when InnoDB picked them as a deadlock victim.
 */
export function mysqlDialect(
  connection: Connection<MysqlPool>,
  table: string,
): SqlDialect<MysqlQueryable> {
  return {
    name: NAME,
    table,
    statements: statements(table),
    use: async (work) => {
      const pool = await connection.pool();
      return retried(() => work(mysqlSession(pool)));
    },
    atomic: async (work) => {
      const pool = await connection.pool();
      return retried(() => transaction(pool, (conn) => work(mysqlSession(conn))));
    },
    exclusive: async (name, work) =>
      withNamedLock(await connection.pool(), name, (conn) => work(mysqlSession(conn))),
    insert: (tx, rows) => insertRows(tx, table, rows),
    toDate,
    fromDate: utc,
    // mysql2 writes an empty list as `IN ()`, which does not parse: match nothing instead.
    list: (values) => (values.length === 0 ? [null] : [...values]),
    close: () => connection.end(),
  };
}

/** UTF-8 bytes of a group name and of a message id the inbox keeps. */
const MAX_GROUP = 764;
const MAX_MESSAGE_ID = 1020;
// Binary, not a `_bin` collation: those still ignore trailing spaces (PAD SPACE). Ids that
// differ in case, accents or trailing spaces are distinct messages.
const GROUP_COLUMN = `VARBINARY(${MAX_GROUP}) NOT NULL`;
const MESSAGE_ID_COLUMN = `VARBINARY(${MAX_MESSAGE_ID}) NOT NULL`;

/** The MySQL/MariaDB inbox statements over `table`. */
export function mysqlInboxDialect<C extends MysqlPoolConnection>(
  connection: Connection<MysqlPool<C>>,
  table: string,
): InboxDialect<C> {
  const I = q(table);
  const affected = async (run: Promise<[unknown, unknown]>): Promise<number> =>
    Number(((await run)[0] as { affectedRows?: unknown }).affectedRows ?? 0);
  return {
    name: NAME,
    migrate: async () =>
      withNamedLock(await connection.pool(), `migrate.${table}`, async (c) => {
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
        const [types] = await c.query(
          `SELECT data_type AS t FROM information_schema.columns
           WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?
             AND column_name IN ('consumer_group', 'message_id')`,
          [schema, name],
        );
        if ((types as Row[]).some((row) => String(row.t).toLowerCase() !== 'varbinary')) {
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
    transaction: async (work) => transaction(await connection.pool(), work),
    insert: async (c, group, messageId) =>
      (await affected(
        c.query(
          `INSERT IGNORE INTO ${I} (consumer_group, message_id, processed_at) VALUES (?, ?, ${NOW})`,
          [group, messageId],
        ),
      )) !== 0,
    purge: async (before, limit) =>
      affected(
        (await connection.pool()).query(`DELETE FROM ${I} WHERE processed_at < ? LIMIT ?`, [
          utc(before),
          limit,
        ]),
      ),
    close: () => connection.end(),
  };
}
