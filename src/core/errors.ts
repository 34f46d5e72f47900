/**
 * Every error ferry raises is a {@link FerryError} with one of these codes, so callers can
 * branch on `err.code` instead of parsing messages.
 */
export type FerryErrorCode =
  /** An argument or option is out of range or of the wrong shape. */
  | 'INVALID_ARGUMENT'
  /** A connection URL could not be parsed, or its scheme is not one ferry knows. */
  | 'INVALID_URL'
  /** A topic, group or table name is not a valid identifier. */
  | 'INVALID_NAME'
  /** A payload could not be encoded or a message body could not be decoded. */
  | 'CODEC_FAILED'
  /** A payload does not satisfy its topic's schema. */
  | 'SCHEMA_VIOLATION'
  /** A message is larger than the transport accepts. */
  | 'MESSAGE_TOO_LARGE'
  /** The transport or store cannot give what was asked (a group on Redis Pub/Sub, replay on RabbitMQ). */
  | 'UNSUPPORTED'
  /** The client package of a driver is not installed. */
  | 'DRIVER_MISSING'
  /** A broker or database could not be reached, or the connection dropped. */
  | 'CONNECTION_FAILED'
  /** The broker did not confirm a publish. */
  | 'PUBLISH_FAILED'
  /** The transport, subscription or relay is closed. */
  | 'CLOSED'
  /** An operation did not finish in time. */
  | 'TIMEOUT'
  /** A relay or consumer lost the lease it was working under (another took over). */
  | 'LEASE_LOST'
  /** What was asked clashes with what others already hold (a relay to another transport on one outbox table). */
  | 'CONFLICT'
  /** A store or migration step failed. */
  | 'STORE_FAILED';

/** What a {@link FerryError} carries besides its code and message. */
export interface FerryErrorOptions {
  cause?: unknown;
  /** Structured facts about the failure (topic, partition, ...); never secrets. */
  details?: Record<string, unknown>;
}

/** The one error type ferry throws. `code` is stable; `message` is for people. */
export class FerryError extends Error {
  readonly code: FerryErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: FerryErrorCode, message: string, options: FerryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FerryError';
    this.code = code;
    this.details = options.details;
  }
}

/**
 * Thrown by a handler to say that retrying cannot help (the message is wrong, not the
 * moment): the consumer runtime dead-letters the message at once instead of retrying it.
 */
export class PermanentError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PermanentError';
  }
}

/**
 * True when `error` is a {@link FerryError}, and, when `code` is given, one with that code.
 * Narrows the type, so `error.code` and `error.details` can be read after it.
 */
export function isFerryError(error: unknown, code?: FerryErrorCode): error is FerryError {
  return error instanceof FerryError && (code === undefined || error.code === code);
}

/** A short one-line description of any thrown value, for logs and dead-letter headers. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
