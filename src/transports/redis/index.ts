/**
 * Redis transports (`ferry/redis`): {@link redisPubSub} for fast, at-most-once fan-out
 * (`redis://`) and {@link redisStreams} for a persistent log with consumer groups and replay
 * (`redis-streams://`). Both use ioredis, loaded on first use.
 */
export {
  AT_MOST_ONCE_WARNING,
  redisPubSub,
  type PubSubEnvelope,
  type RedisPubSubOptions,
} from './pubsub/index.js';
export { redisStreams, type RedisStreamsOptions } from './streams/index.js';
export type { RedisConnectionOptions } from './common.js';
