import { Option } from 'commander';
import { FerryError, isFerryError } from '../core/errors.js';
import { redactSecrets } from '../core/log.js';
import { keyValue, USAGE_EXIT_CODE, wholeNumber } from './options.js';

export const DEFAULT_TRANSPORT = 'sqlite:./ferry.db';

export const transportOption = (): Option =>
  new Option(
    '-t, --transport <url>',
    'broker URL (memory:, sqlite:, kafka://, amqp://, stomp://, redis://, redis-streams://)',
  )
    .env('FERRY_TRANSPORT')
    .default(DEFAULT_TRANSPORT);

const USAGE_CODES = new Set(['INVALID_ARGUMENT', 'INVALID_URL', 'INVALID_NAME']);

/**
 * Runs a command body. What it throws becomes one line on stderr (secrets redacted; a
 * FerryError's cause on a second line) and a non-zero exit code: {@link USAGE_EXIT_CODE} for
 * a command line that cannot run (bad argument, URL or name), 1 for any other failure.
 */
export function action<A extends unknown[]>(
  body: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await body(...args);
    } catch (error) {
      reportError(error);
    }
  };
}

/** Prints a failure as {@link action} does and sets the exit code. */
export function reportError(error: unknown): void {
  if (isFerryError(error)) {
    process.stderr.write(`ferry: ${error.code}: ${redactSecrets(error.message)}\n`);
    const cause = error.cause instanceof Error ? error.cause.message : undefined;
    if (cause && !error.message.includes(cause))
      process.stderr.write(`  cause: ${redactSecrets(cause)}\n`);
    process.exitCode = USAGE_CODES.has(error.code) ? USAGE_EXIT_CODE : 1;
    return;
  }
  const text =
    error instanceof Error
      ? process.env.FERRY_DEBUG
        ? (error.stack ?? error.message)
        : `${error.name}: ${error.message}`
      : String(error);
  process.stderr.write(`ferry: ${redactSecrets(text)}\n`);
  process.exitCode = 1;
}

/** Parses a JSON payload given on the command line; `CODEC_FAILED` with the position if malformed. */
export function parseJsonPayload(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new FerryError(
      'CODEC_FAILED',
      `Payload is not valid JSON (${cause instanceof Error ? cause.message : String(cause)}); quote it, e.g. '{"orderId":"o-1"}'`,
      { cause },
    );
  }
}

/** `k=v` pairs (repeatable `--header`) into a record. */
export const collectHeader = keyValue;

/** A whole number >= 1 (the option's name is in commander's message). */
export function positiveInteger(_name?: string): (value: string) => number {
  return wholeNumber({ min: 1 });
}

/** Resolves when SIGINT or SIGTERM arrives. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const done = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve(signal);
    };
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
}
