import { FerryError } from '../../core/errors.js';

/** A plain SQL identifier, optionally schema-qualified: `ferry_outbox`, `app.ferry_outbox`. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,47}(\.[A-Za-z_][A-Za-z0-9_]{0,47})?$/;

/**
 * Throws `INVALID_NAME` unless `name` is a plain identifier (letters, digits, `_`, not
 * starting with a digit, at most 48 characters, optionally `schema.table`). Table names are
 * spliced into SQL, so every store checks them with this before using them. The length
 * leaves room for the suffixes stores add (`_lease`, `_relay`) within every dialect's limit.
 */
export function assertIdentifier(name: string, what = 'table'): string {
  if (typeof name !== 'string' || !IDENTIFIER.test(name)) {
    throw new FerryError(
      'INVALID_NAME',
      `Invalid ${what} name ${JSON.stringify(name)}: use letters, digits and '_' (optionally schema.name), not starting with a digit, at most 48 characters`,
    );
  }
  return name;
}

/** Quotes a checked identifier (each part of `schema.table`) with `quote` (`"` or a backtick). */
export function quoteIdentifier(name: string, quote: '"' | '`' = '"'): string {
  return assertIdentifier(name)
    .split('.')
    .map((part) => `${quote}${part}${quote}`)
    .join('.');
}

/** The name of a companion table: `app.outbox` + `lease` -> `app.outbox_lease`. */
export function suffixIdentifier(name: string, suffix: string): string {
  return assertIdentifier(`${assertIdentifier(name)}_${suffix}`);
}
