import { Option } from 'commander';
import { FerryError } from '../errors.js';

export const dbOption = (): Option =>
  new Option('-d, --db <url>', 'database URL (sqlite:./app.db, postgres://..., mysql://...)')
    .env('FERRY_DB')
    .makeOptionMandatory();

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `30s`, `15m`, `24h`, `7d` (a bare number is milliseconds). */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `${JSON.stringify(text)} is not a duration: use e.g. 500ms, 30s, 15m, 24h, 7d`,
    );
  }
  return Number(match[1]) * (UNITS[match[2] ?? 'ms'] ?? 1);
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
