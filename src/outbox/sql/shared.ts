import { FerryError } from '../../core/errors.js';
import { assertIdentifier } from './identifier.js';
export { assertIdentifier, quoteIdentifier, suffixIdentifier } from './identifier.js';
import type { Headers } from '../../core/message.js';

/** Default number of outbox partitions when the tables are first created. */
export const DEFAULT_PARTITIONS = 16;

/** Longest `last_error` text kept per row: enough to read, not enough to bloat the table. */
export const MAX_ERROR_TEXT = 2000;

/** Relay registrations expired this long are deleted by the next heartbeat of any relay. */
export const FORGET_RELAYS_AFTER_MS = 60_000;

/** Rows of one multi-row insert statement, bounding statement size and bind counts. */
export const INSERT_CHUNK = 1000;

/** The unqualified part of `schema.table`, for index and channel names derived from it. */
export function baseName(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}

/** The outbox or inbox table options name (default `ferry_<kind>`), checked by `check`. */
export function tableOf(
  options: { readonly table?: string | undefined },
  kind: 'outbox' | 'inbox',
  check: (name: string) => string = assertIdentifier,
): string {
  return check(options.table ?? `ferry_${kind}`);
}

/** P as options configure it (default {@link DEFAULT_PARTITIONS}), checked. */
export function partitionsOf(options: { readonly partitions?: number | undefined }): number {
  return checkPartitions(options.partitions ?? DEFAULT_PARTITIONS);
}

export function checkPartitions(partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > 4096) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `partitions must be an integer from 1 to 4096, got ${partitions}`,
    );
  }
  return partitions;
}

export function checkMs(value: number, what: string): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new FerryError('INVALID_ARGUMENT', `${what} must be a non-negative number of ms`);
  }
  return Math.round(value);
}

export function checkLimit(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0) {
    throw new FerryError('INVALID_ARGUMENT', `${what} must be a non-negative integer`);
  }
  return value;
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'PROTOCOL_CONNECTION_LOST',
  '57P01', // admin_shutdown
  '57P03', // cannot_connect_now
  '08000',
  '08003',
  '08006',
]);

/** A database error as a FerryError: CONNECTION_FAILED when the link broke, else STORE_FAILED. */
export function storeError(dialect: string, operation: string, cause: unknown): FerryError {
  if (cause instanceof FerryError) return cause;
  const code = (cause as { code?: unknown } | null)?.code;
  const message = cause instanceof Error ? cause.message : String(cause);
  const connection =
    (typeof code === 'string' && CONNECTION_CODES.has(code)) ||
    /Connection terminated|connection is in closed state|Pool is closed|Cannot enqueue/i.test(
      message,
    );
  return new FerryError(
    connection ? 'CONNECTION_FAILED' : 'STORE_FAILED',
    `${dialect} ${operation} failed: ${message}`,
    { cause, details: { dialect, operation, ...(typeof code === 'string' ? { code } : {}) } },
  );
}

/** Runs a store operation, turning database errors into FerryErrors. */
export async function guarded<T>(
  dialect: string,
  operation: string,
  run: () => Promise<T>,
): Promise<T> {
  try {
    return await run();
  } catch (cause) {
    throw storeError(dialect, operation, cause);
  }
}

export function parseHeaders(value: unknown): Headers {
  if (value === null || value === undefined) return {};
  if (typeof value === 'string') return JSON.parse(value) as Headers;
  if (Buffer.isBuffer(value)) return JSON.parse(value.toString('utf8')) as Headers;
  return value as Headers;
}

export function toBigInt(value: unknown): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number' || typeof value === 'string') return BigInt(value);
  throw new FerryError(
    'STORE_FAILED',
    `Expected an integer from the database, got ${typeof value}`,
  );
}

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** ferry's own query parameters of a database URL, and the URL the driver gets without them. */
export interface StoreUrl {
  /** The URL without them, for the driver. */
  readonly url: string;
  readonly table: string | undefined;
  readonly inbox: string | undefined;
  readonly partitions: number | undefined;
  /** `notify` (PostgreSQL): `1`/`true`/empty → true, `0`/`false` → false, else a channel name. */
  readonly notify: boolean | string | undefined;
}

/** Splits `table`, `inbox`, `partitions` and `notify` off a database URL. */
export function splitStoreUrl(url: URL): StoreUrl {
  const copy = new URL(url.href);
  const take = (name: string): string | undefined => {
    const value = copy.searchParams.get(name);
    copy.searchParams.delete(name);
    return value ?? undefined;
  };
  const table = take('table');
  const inbox = take('inbox');
  const partitions = take('partitions');
  const notify = take('notify');
  return {
    url: copy.href,
    table,
    inbox,
    partitions: partitions === undefined ? undefined : Number(partitions),
    notify:
      notify === undefined
        ? undefined
        : ['1', 'true', 'yes', ''].includes(notify)
          ? true
          : ['0', 'false', 'no'].includes(notify)
            ? false
            : notify,
  };
}

/** `table` and `partitions` of a store URL, as outbox options. */
export const outboxOptions = ({ table, partitions }: StoreUrl) => ({
  ...(table === undefined ? {} : { table }),
  ...(partitions === undefined ? {} : { partitions }),
});

/** `inbox` of a store URL, as inbox options. */
export const inboxOptions = ({ inbox }: StoreUrl) => (inbox === undefined ? {} : { table: inbox });

/** A time a driver returned (a Date, ISO text or epoch milliseconds) as a Date. */
export function toDate(value: unknown): Date {
  if (value instanceof Date) return value;
  return new Date(typeof value === 'string' ? value : Number(value));
}
