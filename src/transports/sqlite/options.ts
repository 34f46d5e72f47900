import { resolve } from 'node:path';
import { FerryError } from '../../core/errors.js';
import { assertPartitions } from '../../transport/shared.js';
import { numberParam, transportUrl } from '../../transport/parse-url.js';
import { sqliteDescriptor } from './descriptor.js';
import { sqliteFilePath } from './path.js';

/** How long the log keeps messages. */
export interface SqliteRetention {
  /** Delete messages older than this (checked every minute). Default: keep everything. */
  readonly maxAgeMs?: number;
  /** Not supported by the SQLite log (`UNSUPPORTED`): bound it by age. */
  readonly maxCount?: number;
}

/**
 * Options of {@link sqlite}: the log's file (`path` or `url`), partitions, how long a group
 * member may be silent before its partitions move (`sessionTimeoutMs`), polling and retention.
 */
export interface SqliteTransportOptions {
  /**
   * `sqlite:./ferry.db` or `sqlite:///abs/path.db`, with optional query `partitions`,
   * `sessionTimeoutMs`, `heartbeatIntervalMs`, `maxAgeMs`: the alternative to `path`;
   * options given beside it win over its query.
   */
  readonly url?: string;
  /** Database file; created if missing. Default `./ferry.db`. */
  readonly path?: string;
  /** Partitions of topics this transport creates (existing topics keep theirs). Default 8. */
  readonly partitions?: number;
  /**
   * A member that has not renewed its partition leases for this long is presumed dead and
   * its partitions move to the others. Default 10 s.
   */
  readonly sessionTimeoutMs?: number;
  /** How often a member renews its leases and rebalances. Default a third of `sessionTimeoutMs`. */
  readonly heartbeatIntervalMs?: number;
  /** How often to look for messages written by other processes. Default 20 ms. */
  readonly pollIntervalMs?: number;
  /** Default: keep every message. */
  readonly retention?: SqliteRetention;
  readonly maxMessageBytes?: number;
  /** Most partitions handled at once per subscription. Default: all. */
  readonly concurrency?: number;
  /** Told about failures it recovers from (reads, commits, lease renewals), as FerryErrors. */
  readonly onError?: (error: FerryError) => void;
}

/** The options with their defaults, checked. */
export interface SqliteSettings {
  readonly path: string;
  readonly defaultPartitions: number;
  readonly sessionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly pollIntervalMs: number;
  readonly maxAgeMs: number | undefined;
  readonly maxMessageBytes: number;
  readonly concurrency: number | undefined;
  readonly onError: ((error: FerryError) => void) | undefined;
}

/** The options a `sqlite:` URL names. */
export function sqliteOptionsFromUrl(url: URL): SqliteTransportOptions {
  const path = sqliteFilePath(url);
  const partitions = numberParam(url, 'partitions');
  const maxAgeMs = numberParam(url, 'maxAgeMs');
  const sessionTimeoutMs = numberParam(url, 'sessionTimeoutMs');
  const heartbeatIntervalMs = numberParam(url, 'heartbeatIntervalMs');
  return {
    path,
    ...(partitions === undefined ? {} : { partitions }),
    ...(maxAgeMs === undefined ? {} : { retention: { maxAgeMs } }),
    ...(sessionTimeoutMs === undefined ? {} : { sessionTimeoutMs }),
    ...(heartbeatIntervalMs === undefined ? {} : { heartbeatIntervalMs }),
  };
}

const positive = (name: string, value: number): number => {
  if (!Number.isFinite(value) || value <= 0) {
    throw new FerryError('INVALID_ARGUMENT', `sqlite ${name} must be a number > 0, got ${value}`);
  }
  return value;
};

/** Checks the options (`INVALID_ARGUMENT`, `UNSUPPORTED`) and fills in the defaults. */
export function sqliteSettings(given: SqliteTransportOptions): SqliteSettings {
  const options =
    given.url === undefined
      ? given
      : { ...sqliteOptionsFromUrl(transportUrl(given.url, sqliteDescriptor.schemes)), ...given };
  if (options.retention?.maxCount !== undefined) {
    throw new FerryError(
      'UNSUPPORTED',
      'The SQLite log keeps messages by age only: use retention.maxAgeMs',
    );
  }
  const defaultPartitions = options.partitions ?? 8;
  assertPartitions(defaultPartitions);
  const sessionTimeoutMs = positive('sessionTimeoutMs', options.sessionTimeoutMs ?? 10_000);
  const maxAgeMs = options.retention?.maxAgeMs;
  return {
    path: options.path === ':memory:' ? ':memory:' : resolve(options.path ?? 'ferry.db'),
    defaultPartitions,
    sessionTimeoutMs,
    heartbeatIntervalMs: positive(
      'heartbeatIntervalMs',
      options.heartbeatIntervalMs ?? Math.max(50, Math.floor(sessionTimeoutMs / 3)),
    ),
    pollIntervalMs: positive('pollIntervalMs', options.pollIntervalMs ?? 20),
    maxAgeMs: maxAgeMs === undefined ? undefined : positive('retention.maxAgeMs', maxAgeMs),
    maxMessageBytes: options.maxMessageBytes ?? sqliteDescriptor.capabilities.maxMessageBytes,
    concurrency: options.concurrency,
    onError: options.onError,
  };
}
