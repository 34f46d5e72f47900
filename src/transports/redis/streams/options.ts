import { FerryError } from '../../../core/errors.js';
import { connectionFromUrl, numberParam, type RedisConnectionOptions } from '../common.js';

/** Options of {@link redisStreams}: how to reach Redis, plus what Streams alone has. */
export interface RedisStreamsOptions extends RedisConnectionOptions {
  /**
   * Streams per topic. With 1 (the default) a topic is the single stream `prefix + topic`;
   * with N it is `prefix + topic + ':' + p` for p in 0..N-1 and a message goes to the stream
   * `hash(key) mod N`. Order is kept per stream, so N bounds how many members of a group
   * work at once. Fix it per topic: changing it moves keys to other streams.
   */
  readonly partitions?: number;
  /**
   * What each stream keeps; both limits are approximate (`~`: Redis trims whole nodes, so a
   * few more entries may stay). `maxCount`: about that many newest entries per stream
   * (`XADD ... MAXLEN ~`). `maxAgeMs`: entries younger than that, by the publisher's clock
   * (`XTRIM ... MINID ~`, once per stream and batch). Trimming happens when publishing.
   * Default: keep everything.
   */
  readonly retention?: { readonly maxAgeMs?: number; readonly maxCount?: number };
  /**
   * A group member that has not renewed its leases for this long is taken for dead: its
   * streams go to other members, which claim (XAUTOCLAIM) what it left unacknowledged.
   * Default 30 000 ms; leases are renewed every third of it.
   */
  readonly sessionTimeoutMs?: number;
  /** Entries read per XREADGROUP / XREAD. Default 100. */
  readonly batchSize?: number;
  /** How long a blocking read waits before reading again. Default 5000 ms. */
  readonly blockMs?: number;
  /** Wait before handing out again a delivery whose handler rejected. Default 100 ms. */
  readonly redeliveryDelayMs?: number;
  /** Largest body `publish` accepts, in bytes. Default 16 MiB. */
  readonly maxMessageBytes?: number;
}

/** Renamed options: passing the old name is an error that names the new one. */
const RENAMED: Readonly<Record<string, string>> = {
  claimIdleMs: 'sessionTimeoutMs',
  maxLen: 'retention: { maxCount }',
};

function positive(value: number | undefined, name: string): number | undefined {
  if (value !== undefined && !(Number.isFinite(value) && value > 0)) {
    throw new FerryError('INVALID_ARGUMENT', `${name} must be a positive number, got ${value}`);
  }
  return value;
}

/** The retention limits after checking them; undefined where not set. */
export function retentionOf(options: RedisStreamsOptions): {
  readonly maxCount: number | undefined;
  readonly maxAgeMs: number | undefined;
} {
  for (const [old, now] of Object.entries(RENAMED)) {
    if (old in options) {
      throw new FerryError('INVALID_ARGUMENT', `redis-streams: ${old} is now ${now}`);
    }
  }
  const maxCount = positive(options.retention?.maxCount, 'retention.maxCount');
  if (maxCount !== undefined && !Number.isInteger(maxCount)) {
    throw new FerryError('INVALID_ARGUMENT', `retention.maxCount must be a whole number`);
  }
  return { maxCount, maxAgeMs: positive(options.retention?.maxAgeMs, 'retention.maxAgeMs') };
}

/**
 * Options from `redis-streams://[user:password@]host:port[/db]`. Query: `tls=1`, `prefix`,
 * `partitions`, `maxCount` and `maxAgeMs` (retention), `sessionTimeoutMs`, `batchSize`,
 * `blockMs`, `maxMessageBytes`.
 */
export function redisStreamsOptionsFromUrl(url: URL): RedisStreamsOptions {
  for (const [old, now] of Object.entries(RENAMED)) {
    if (url.searchParams.has(old)) {
      throw new FerryError(
        'INVALID_URL',
        `redis-streams URL: ${old} is now ${old === 'maxLen' ? 'maxCount' : now}`,
      );
    }
  }
  const numbers: Record<string, number> = {};
  for (const option of [
    'partitions',
    'sessionTimeoutMs',
    'batchSize',
    'blockMs',
    'maxMessageBytes',
  ] as const) {
    const value = numberParam(url, option);
    if (value !== undefined) numbers[option] = value;
  }
  const maxCount = numberParam(url, 'maxCount');
  const maxAgeMs = numberParam(url, 'maxAgeMs');
  const retention = {
    ...(maxCount === undefined ? {} : { maxCount }),
    ...(maxAgeMs === undefined ? {} : { maxAgeMs }),
  };
  return {
    ...connectionFromUrl(url, 'redis:'),
    ...numbers,
    ...(Object.keys(retention).length === 0 ? {} : { retention }),
  };
}
