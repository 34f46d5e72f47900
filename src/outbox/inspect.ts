import { FerryError } from '../core/errors.js';
import { parseHeaders, toBigInt } from './sql/shared.js';
import { quoteIdentifier, suffixIdentifier } from './sql/identifier.js';
import type { Headers } from '../core/message.js';

/** An outbox row as an operator sees it. */
export interface OutboxRow {
  readonly id: string;
  readonly topic: string;
  readonly key: string | undefined;
  readonly partition: number;
  readonly status: 'pending' | 'published' | 'dead' | 'skipped';
  /** A pending row held back by a dead row of the same key inserted before it. */
  readonly blocked: boolean;
  readonly attempts: number;
  readonly lastError: string | undefined;
  readonly createdAt: Date;
  readonly publishedAt: Date | undefined;
  readonly headers: Headers;
  /** Encoded payload. */
  readonly body: Buffer;
}

/** A relay registered in the outbox's relay table, with the leases it holds. */
export interface RelayInfo {
  readonly owner: string;
  /** When its registration runs out unless it heartbeats again. */
  readonly expiresAt: Date;
  readonly live: boolean;
  readonly leases: ReadonlyArray<{
    readonly partition: number;
    readonly fence: bigint;
    readonly expiresAt: Date;
  }>;
}

/** One inbox row: `group` applied `messageId` at `processedAt`. */
export interface InboxEntry {
  readonly group: string;
  readonly messageId: string;
  readonly processedAt: Date;
}

/**
 * Read-mostly queries over the outbox, lease, relay and inbox tables that operators need and
 * relays do not (the `ferry console`). Works on every dialect through plain SQL.
 */
export interface OutboxInspector {
  /** Dead rows, then pending rows blocked behind a dead row of their key, oldest first. */
  stuckRows(limit: number): Promise<OutboxRow[]>;
  /** Rows whose id or key is `idOrKey`, newest first. */
  findRows(idOrKey: string, limit: number): Promise<OutboxRow[]>;
  /** Relays registered within the last hour, and the partitions each one holds. */
  relays(): Promise<RelayInfo[]>;
  /** Rows published in each of the last `minutes` whole minutes, oldest minute first. */
  publishedPerMinute(minutes: number, now?: Date): Promise<number[]>;
  /** Topics that have rows in the outbox. */
  topics(): Promise<string[]>;
  /** Consumer groups that have rows in the inbox. */
  inboxGroups(): Promise<string[]>;
  /** Which groups applied these messages, and when. */
  appliedBy(messageIds: readonly string[]): Promise<InboxEntry[]>;
}

/** What the inspector needs of a database: a `?`-placeholder query and the table names. */
export interface InspectorSource {
  readonly dialect: string;
  /** Runs one statement with `?` placeholders; rows with lower-case column names. */
  query(sql: string, params?: readonly unknown[]): Promise<Array<Record<string, unknown>>>;
  /** Outbox table (its lease and relay tables add `_lease` and `_relay`). */
  readonly outboxTable: string;
  readonly inboxTable: string;
}

/**
 * An {@link OutboxInspector} over any dialect's tables, through the source's `?`-placeholder
 * query. It only reads; it holds no lease and takes no lock a relay would wait on.
 */
export function createOutboxInspector(source: InspectorSource): OutboxInspector {
  const { dialect } = source;
  const query = (sql: string, params?: readonly unknown[]) => source.query(sql, params);
  const quote = dialect === 'mysql' ? '`' : '"';
  const q = (name: string): string => quoteIdentifier(name, quote);
  const t = q(source.outboxTable);
  const lease = q(suffixIdentifier(source.outboxTable, 'lease'));
  const relay = q(suffixIdentifier(source.outboxTable, 'relay'));
  const inbox = q(source.inboxTable);
  const key = q('key');
  const partition = q('partition');
  // SQLite keeps times as epoch milliseconds; PostgreSQL and MySQL as timestamps.
  const time = (date: Date): unknown => (dialect === 'sqlite' ? date.getTime() : date);
  const columns = `o.id, o.topic, o.${key} AS k, o.${partition} AS p, o.status, o.attempts,
    o.last_error, o.created_at, o.published_at, o.headers, o.payload`;
  const blockedBy = `EXISTS (SELECT 1 FROM ${t} d WHERE d.${key} = o.${key} AND d.status = 'dead' AND d.seq < o.seq)`;

  const toRow = (row: Record<string, unknown>, blocked: boolean): OutboxRow => ({
    id: String(row.id),
    topic: String(row.topic),
    key: row.k === null || row.k === undefined ? undefined : text(row.k),
    partition: Number(row.p),
    status: String(row.status) as OutboxRow['status'],
    blocked,
    attempts: Number(row.attempts),
    lastError: row.last_error === null ? undefined : text(row.last_error),
    createdAt: toDate(row.created_at) ?? new Date(0),
    publishedAt: toDate(row.published_at),
    headers: parseHeaders(row.headers),
    body: toBuffer(row.payload),
  });

  return {
    async stuckRows(limit) {
      const dead = await query(
        `SELECT ${columns} FROM ${t} o WHERE o.status = 'dead' ORDER BY o.seq LIMIT ?`,
        [checkedLimit(limit)],
      );
      const blocked = await query(
        `SELECT ${columns} FROM ${t} o
         WHERE o.status = 'pending' AND o.${key} IS NOT NULL AND ${blockedBy}
         ORDER BY o.seq LIMIT ?`,
        [checkedLimit(limit)],
      );
      return [...dead.map((r) => toRow(r, false)), ...blocked.map((r) => toRow(r, true))].slice(
        0,
        limit,
      );
    },

    async findRows(idOrKey, limit) {
      const rows = await query(
        `SELECT ${columns}, CASE WHEN o.status = 'pending' AND ${blockedBy} THEN 1 ELSE 0 END AS blocked
         FROM ${t} o WHERE o.id = ? OR o.${key} = ? ORDER BY o.seq DESC LIMIT ?`,
        [idOrKey, idOrKey, checkedLimit(limit)],
      );
      return rows.map((row) => toRow(row, Number(row.blocked) === 1));
    },

    async relays() {
      const since = new Date(Date.now() - 3_600_000);
      const registered = await query(
        `SELECT owner, expires_at FROM ${relay} WHERE expires_at > ? ORDER BY owner`,
        [time(since)],
      );
      const held = await query(
        `SELECT ${partition} AS p, owner, fence, expires_at FROM ${lease}
         WHERE owner IS NOT NULL ORDER BY ${partition}`,
      );
      const now = Date.now();
      return registered.map((row): RelayInfo => {
        const expiresAt = toDate(row.expires_at) ?? new Date(0);
        return {
          owner: String(row.owner),
          expiresAt,
          live: expiresAt.getTime() > now,
          leases: held
            .filter((lease) => lease.owner === row.owner)
            .map((lease) => ({
              partition: Number(lease.p),
              fence: toBigInt(lease.fence),
              expiresAt: toDate(lease.expires_at) ?? new Date(0),
            })),
        };
      });
    },

    async publishedPerMinute(minutes, now = new Date()) {
      checkedLimit(minutes);
      if (minutes === 0) return [];
      const end = Math.floor(now.getTime() / 60_000) * 60_000 + 60_000;
      const starts = Array.from({ length: minutes }, (_, i) => end - (minutes - i) * 60_000);
      const sums = starts
        .map(
          (_, i) =>
            `sum(CASE WHEN published_at >= ? AND published_at < ? THEN 1 ELSE 0 END) AS m${i}`,
        )
        .join(', ');
      const params = starts.flatMap((start) => [
        time(new Date(start)),
        time(new Date(start + 60_000)),
      ]);
      const [row] = await query(
        `SELECT ${sums} FROM ${t} WHERE status = 'published' AND published_at >= ?`,
        [...params, time(new Date(starts[0] as number))],
      );
      return starts.map((_, i) => Number(row?.[`m${i}`] ?? 0));
    },

    async topics() {
      const rows = await query(`SELECT DISTINCT topic FROM ${t} ORDER BY topic`);
      return rows.map((row) => String(row.topic));
    },

    async inboxGroups() {
      const rows = await query(
        `SELECT DISTINCT consumer_group FROM ${inbox} ORDER BY consumer_group`,
      );
      return rows.map((row) => String(row.consumer_group));
    },

    async appliedBy(messageIds) {
      if (messageIds.length === 0) return [];
      const rows = await query(
        `SELECT consumer_group, message_id, processed_at FROM ${inbox}
         WHERE message_id IN (${messageIds.map(() => '?').join(', ')})
         ORDER BY processed_at, consumer_group`,
        messageIds,
      );
      return rows.map((row) => ({
        group: String(row.consumer_group),
        messageId: String(row.message_id),
        processedAt: toDate(row.processed_at) ?? new Date(0),
      }));
    },
  };
}

function checkedLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 0 || limit > 10_000) {
    throw new FerryError('INVALID_ARGUMENT', `limit must be an integer from 0 to 10000`);
  }
  return limit;
}

function toDate(value: unknown): Date | undefined {
  if (value === null || value === undefined) return undefined;
  if (value instanceof Date) return value;
  if (typeof value === 'number' || typeof value === 'bigint') return new Date(Number(value));
  const date = new Date(text(value));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function toBuffer(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  return Buffer.from(value === null || value === undefined ? '' : text(value), 'utf8');
}

/** A column value as text (drivers hand back strings, numbers or buffers). */
function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  return JSON.stringify(value);
}

/** The inspector of a database opened from a URL (`openStore`). */
export function inspectorOf(opened: {
  readonly dialect: string;
  readonly tables: { readonly outbox: string; readonly inbox: string };
  query(
    tx: undefined,
    sql: string,
    params?: readonly unknown[],
  ): Promise<Array<Record<string, unknown>>>;
}): OutboxInspector {
  return createOutboxInspector({
    dialect: opened.dialect,
    query: (sql, params) => opened.query(undefined, sql, params),
    outboxTable: opened.tables.outbox,
    inboxTable: opened.tables.inbox,
  });
}
