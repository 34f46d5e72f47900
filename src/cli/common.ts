import { Option } from 'commander';
import { FerryError, isFerryError } from '../errors.js';
import { redactSecrets } from '../log.js';

export const DEFAULT_TRANSPORT = 'sqlite:./ferry.db';

export const transportOption = (): Option =>
  new Option(
    '-t, --transport <url>',
    'broker URL (memory:, sqlite:, kafka://, amqp://, stomp://, redis://, redis-streams://)',
  )
    .env('FERRY_TRANSPORT')
    .default(DEFAULT_TRANSPORT);

/** Runs a command body; a FerryError becomes one clear line on stderr and exit code 1. */
export function action<A extends unknown[]>(
  body: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await body(...args);
    } catch (error) {
      if (isFerryError(error)) {
        process.stderr.write(`ferry: ${error.code}: ${redactSecrets(error.message)}\n`);
        const cause = error.cause instanceof Error ? error.cause.message : undefined;
        if (cause && !error.message.includes(cause))
          process.stderr.write(`  cause: ${redactSecrets(cause)}\n`);
      } else {
        process.stderr.write(
          `ferry: ${redactSecrets(error instanceof Error ? (error.stack ?? error.message) : String(error))}\n`,
        );
      }
      process.exitCode = 1;
    }
  };
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
export function collectHeader(
  value: string,
  previous: Record<string, string> = {},
): Record<string, string> {
  const index = value.indexOf('=');
  if (index <= 0) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `Header ${JSON.stringify(value)} is not of the form name=value`,
    );
  }
  return { ...previous, [value.slice(0, index)]: value.slice(index + 1) };
}

export function positiveInteger(name: string): (value: string) => number {
  return (value) => {
    const number = Number(value);
    if (!Number.isInteger(number) || number < 1) {
      throw new FerryError(
        'INVALID_ARGUMENT',
        `${name} must be a whole number >= 1, got ${JSON.stringify(value)}`,
      );
    }
    return number;
  };
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
