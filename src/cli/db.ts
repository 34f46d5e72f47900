import { Option } from 'commander';
import { FerryError } from '../core/errors.js';
import { redactUrl } from '../core/log.js';
import { durationMs } from './options.js';

export const dbOption = (): Option =>
  new Option('-d, --db <url>', 'database URL (sqlite:./app.db, postgres://..., mysql://...)')
    .env('FERRY_DB')
    .makeOptionMandatory();

/** `500ms`, `30s`, `15m`, `24h`, `7d` (a bare number is milliseconds). */
export function parseDuration(text: string): number {
  const ms = durationMs(text);
  if (ms === undefined) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `${JSON.stringify(text)} is not a duration: use e.g. 500ms, 30s, 15m, 24h, 7d`,
    );
  }
  return ms;
}

/** An ISO time, or a duration meaning that long ago (`1h` = one hour ago). */
export function parseSince(text: string, now = Date.now()): Date {
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const date = new Date(text);
    if (!Number.isNaN(date.getTime())) return date;
  }
  try {
    return new Date(now - parseDuration(text));
  } catch {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `${JSON.stringify(text)} is not a time: use an ISO time (2026-01-31T12:00:00Z) or how long ago (15m, 2h)`,
    );
  }
}

/** Whether an error (or one of its causes) says a table does not exist, in any dialect. */
function isMissingTable(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const { code, errno } = e as { code?: unknown; errno?: unknown };
    // PostgreSQL undefined_table, MySQL/MariaDB ER_NO_SUCH_TABLE, SQLite's message.
    if (code === '42P01' || errno === 1146 || code === 'ER_NO_SUCH_TABLE') return true;
    if (/no such table/i.test(e.message)) return true;
  }
  return false;
}

/**
 * Runs `work` on the outbox tables of the database `url` names. A missing table is
 * `STORE_FAILED` with the hint to run `ferry migrate`; every other failure (an unreachable
 * database is `CONNECTION_FAILED`) passes through unchanged, so the hint fits the cause.
 */
export async function onOutboxTables<T>(url: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (cause) {
    if (!isMissingTable(cause)) throw cause;
    throw new FerryError(
      'STORE_FAILED',
      `The outbox tables of ${redactUrl(url)} do not exist: run ferry migrate --db first`,
      { cause },
    );
  }
}
