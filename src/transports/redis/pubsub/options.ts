import { connectionFromUrl, numberParam, type RedisConnectionOptions } from '../common.js';

/** Options of {@link redisPubSub}: how to reach Redis, plus what Pub/Sub alone has. */
export interface RedisPubSubOptions extends RedisConnectionOptions {
  /**
   * Treat topics holding glob characters (`*`, `?`, `[`) as channel patterns: subscribing to
   * `order.*` uses PSUBSCRIBE and delivers every channel it matches, with `Delivery.topic`
   * set to the channel the message was published to. Default false (topics are literal).
   */
  readonly patterns?: boolean;
  /** Largest body `publish` accepts, in bytes. Default 8 MiB. */
  readonly maxMessageBytes?: number;
  /**
   * Messages a subscription holds while its handler is busy. Beyond this, new messages are
   * dropped (and reported to `onDrop`) rather than letting memory grow without bound.
   * Default 100 000.
   */
  readonly maxQueued?: number;
  /** Told when a subscription drops a message because `maxQueued` was reached. */
  readonly onDrop?: (topic: string) => void;
}

/**
 * Options from `redis://[user:password@]host:port[/db]` (`rediss://` for TLS). Query:
 * `prefix`, `patterns=1`, `maxMessageBytes`.
 */
export function redisPubSubOptionsFromUrl(url: URL): RedisPubSubOptions {
  const scheme = url.protocol === 'rediss:' ? 'rediss:' : 'redis:';
  const patterns = url.searchParams.get('patterns');
  const maxMessageBytes = numberParam(url, 'maxMessageBytes');
  return {
    ...connectionFromUrl(url, scheme),
    ...(patterns === null ? {} : { patterns: patterns === '1' || patterns === 'true' }),
    ...(maxMessageBytes === undefined ? {} : { maxMessageBytes }),
  };
}
