/**
 * Parsers for command-line option values, for commander's `.option(flags, help, parser)` and
 * `Option#argParser`. Each one checks a value while the command line is read, before any
 * connection is opened, and rejects a bad one with commander's `InvalidArgumentError`: the
 * command then prints one line naming the option and what it accepts, and exits with
 * {@link USAGE_EXIT_CODE}.
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from 'commander';
import { isFerryError } from '../core/errors.js';

/** Exit code of a command line ferry cannot run: usage, a bad option value, URL or name. */
export const USAGE_EXIT_CODE = 2;

export type ValueParser<T> = (value: string) => T;

const invalid = (expected: string): InvalidArgumentError =>
  new InvalidArgumentError(`Expected ${expected}.`);

/** A whole number in `[min, max]` (default `min` 1). */
export function wholeNumber(range: { min?: number; max?: number } = {}): ValueParser<number> {
  const min = range.min ?? 1;
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  const expected =
    range.max === undefined
      ? `a whole number >= ${min}`
      : `a whole number from ${min} to ${range.max}`;
  return (value) => {
    const number = /^\s*[+-]?\d+\s*$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(number) || number < min || number > max) throw invalid(expected);
    return number;
  };
}

/** A finite number `>= min` (default 0). */
export function decimal(range: { min?: number } = {}): ValueParser<number> {
  const min = range.min ?? 0;
  return (value) => {
    const number = value.trim() === '' ? Number.NaN : Number(value);
    if (!Number.isFinite(number) || number < min) throw invalid(`a number >= ${min}`);
    return number;
  };
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_EXAMPLES = 'a duration such as 500ms, 30s, 15m, 24h or 7d';

/** Milliseconds of `500ms`, `30s`, `15m`, `24h`, `7d` (a bare number is milliseconds); `undefined` if not one. */
export function durationMs(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) return undefined;
  return Math.round(Number(match[1]) * (UNITS[match[2] ?? 'ms'] ?? 1));
}

/**
 * A duration in milliseconds (see {@link durationMs}). `zero` names what `0` means for the
 * option (e.g. `'never'`) and allows it; without it the duration must be at least 1 ms.
 * `word` allows one word besides (e.g. `'keep'`), returned as is.
 */
export function duration(options: { zero?: string }): ValueParser<number>;
export function duration<W extends string>(options: {
  zero?: string;
  word: W;
}): ValueParser<number | W>;
export function duration(options: { zero?: string; word?: string } = {}): ValueParser<unknown> {
  const expected = [
    DURATION_EXAMPLES,
    ...(options.zero === undefined ? [] : [`0 (${options.zero})`]),
    ...(options.word === undefined ? [] : [`'${options.word}'`]),
  ].join(', or ');
  return (value) => {
    if (options.word !== undefined && value === options.word) return value;
    const ms = durationMs(value);
    if (ms === undefined || (ms === 0 && options.zero === undefined)) throw invalid(expected);
    return ms;
  };
}

/** `host:port` or `:port` (then `host` is the default given), e.g. for a listening address. */
export function hostPort(defaultHost = '127.0.0.1'): ValueParser<{ host: string; port: number }> {
  return (value) => {
    const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
    const port = Number(match?.[3]);
    if (!match || port > 65_535)
      throw invalid('host:port or :port, e.g. 127.0.0.1:9464, with a port from 0 to 65535');
    return { host: match[1] ?? (match[2] || defaultHost), port };
  };
}

/** `name=value`, repeatable: collects into one record. */
export function keyValue(
  value: string,
  previous: Record<string, string> = {},
): Record<string, string> {
  const index = value.indexOf('=');
  if (index <= 0) throw invalid('name=value (e.g. x-source=cli)');
  return { ...previous, [value.slice(0, index)]: value.slice(index + 1) };
}

/** The UTF-8 contents of the file a path names. */
export const fileContents: ValueParser<string> = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    const reason =
      (cause as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'no such file'
        : (cause as Error).message;
    throw new InvalidArgumentError(`Expected a readable file: ${reason}.`);
  }
};

/**
 * Turns a function that throws `FerryError` for a bad value (e.g. `parseSeekTarget`) into an
 * option parser, so the value is checked while the command line is read.
 */
export function fromFerryParser<T>(parse: (value: string) => T): ValueParser<T> {
  return (value) => {
    try {
      return parse(value);
    } catch (error) {
      if (isFerryError(error)) throw new InvalidArgumentError(error.message);
      throw error;
    }
  };
}
