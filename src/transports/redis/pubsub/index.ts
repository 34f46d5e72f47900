import type { Redis } from 'ioredis';
import type { OutgoingMessage } from '../../../core/message.js';
import { capabilitiesOf, createTransport, errorReporter } from '../../../transport/kernel.js';
import type {
  CloseOptions,
  DeliveryHandler,
  SubscribeOptions,
  Transport,
} from '../../../transport/transport.js';
import {
  closeRedis,
  connectRedis,
  execPipeline,
  forgetOnFailure,
  pingRedis,
  redisError,
} from '../common.js';
import { redisPubSubDescriptor } from './descriptor.js';
import type { RedisPubSubOptions } from './options.js';
import { Listener } from './subscription.js';
import { encodeEnvelope } from './wire.js';

export type { RedisPubSubOptions } from './options.js';
export type { PubSubEnvelope } from './wire.js';

/**
 * One line to print (once) wherever Redis Pub/Sub carries messages that matter, e.g. when a
 * relay or the demo starts on a `redis://` URL.
 */
export const AT_MOST_ONCE_WARNING =
  'redis (Pub/Sub) is at-most-once: messages published while no subscriber listens, or whose handler fails, are lost; use redis-streams, kafka or rabbitmq where loss is not acceptable.';

const GLOB = /[*?[]/;

interface Channel {
  readonly listeners: Set<Listener>;
  /** Subscribed with PSUBSCRIBE. */
  readonly pattern: boolean;
}

/**
 * Redis Pub/Sub (`redis://`, `rediss://`): the fastest, lightest transport, with the
 * promises of Redis Pub/Sub and no more.
 *
 * - **At-most-once.** Messages published while no subscriber listens are lost: Redis keeps
 *   nothing. A message reaches the subscribers connected when it is published, once each. A
 *   handler that rejects is NOT handed the message again (the bus runtime's retries still
 *   run inside the handler call; a message it gives up on is dead-lettered to `<topic>.dlq`,
 *   itself a Pub/Sub channel that loses what nobody hears). Messages arriving while a
 *   connection is down are lost; ioredis reconnects and resubscribes on its own.
 * - **No groups, no replay.** Every subscriber gets every message; a `group` or `seek`
 *   fails with `UNSUPPORTED` (use redis-streams or kafka).
 * - **Order per channel.** One topic is one channel (`prefix + topic`). Each subscription
 *   handles one message at a time per channel, in arrival order; a slow handler delays the
 *   channel's later messages rather than reordering them. With `patterns`, the channels a
 *   pattern matches are handled concurrently, up to `concurrency` (default 16).
 * - **Publish** sends a batch as one pipeline (one round trip) of PUBLISH commands and
 *   resolves when Redis has taken them all, whether or not anyone heard them.
 * - **close()** unsubscribes, drops messages received but not yet started (at-most-once),
 *   and waits up to `timeoutMs` for the handlers running.
 *
 * Redis Pub/Sub carries no headers, so each message is a JSON envelope that other languages
 * and `redis-cli SUBSCRIBE` can read:
 *
 * ```json
 * {"id":"0190…","key":"order-1","headers":{"ferry-id":"0190…","ferry-created-at":"2025-01-01T00:00:00.000Z","content-type":"application/json"},"body":"{\"orderId\":\"o-1\"}"}
 * ```
 *
 * `body` holds the payload as text when `content-type` is JSON (`application/json`,
 * `*+json`) or `text/*`; otherwise (or when the bytes are not UTF-8) it holds base64 and the
 * envelope adds `"encoding":"base64"`. `id` and `key` are left out when absent. A message
 * that is not such an envelope (`redis-cli PUBLISH channel hello`) is delivered as raw
 * bytes with no headers.
 */
export function redisPubSub(options: RedisPubSubOptions = {}): Transport {
  const name = 'redis';
  const capabilities = capabilitiesOf(redisPubSubDescriptor, options.maxMessageBytes);
  const prefix = options.prefix ?? '';
  const maxQueued = options.maxQueued ?? 100_000;
  const report = errorReporter(options.onError);
  const channels = new Map<string, Channel>();
  let publisher: Promise<Redis> | undefined;
  let subscriber: Promise<Redis> | undefined;
  // SUBSCRIBE / UNSUBSCRIBE calls run one after another, so a channel's count stays true.
  let changes: Promise<unknown> = Promise.resolve();

  const dispatch = (channel: string, message: Buffer): void => {
    const topic = channel.slice(prefix.length);
    for (const listener of channels.get(channel)?.listeners ?? []) listener.push(topic, message);
  };
  const dispatchPattern = (pattern: string, channel: string, message: Buffer): void => {
    const topic = channel.slice(prefix.length);
    for (const listener of channels.get(pattern)?.listeners ?? []) listener.push(topic, message);
  };

  const getPublisher = (): Promise<Redis> =>
    (publisher ??= forgetOnFailure(
      connectRedis(options, { enableAutoPipelining: true }),
      () => (publisher = undefined),
    ));
  const getSubscriber = (): Promise<Redis> =>
    (subscriber ??= forgetOnFailure(
      connectRedis(options, { autoResubscribe: true }),
      () => (subscriber = undefined),
    ).then((client) => {
      client.on('messageBuffer', (channel: Buffer, message: Buffer) =>
        dispatch(channel.toString(), message),
      );
      client.on('pmessageBuffer', (pattern: Buffer, channel: Buffer, message: Buffer) =>
        dispatchPattern(pattern.toString(), channel.toString(), message),
      );
      return client;
    }));

  const serially = <T>(change: () => Promise<T>): Promise<T> => {
    const next = changes.then(change, change);
    changes = next.catch(() => undefined);
    return next;
  };

  return createTransport({
    name,
    capabilities,

    async ping() {
      await pingRedis(await getPublisher());
    },

    async publish(messages: readonly OutgoingMessage[]) {
      try {
        const pipeline = (await getPublisher()).pipeline();
        for (const message of messages) {
          pipeline.publish(prefix + message.topic, encodeEnvelope(message));
        }
        await execPipeline(pipeline);
      } catch (error) {
        throw redisError('PUBLISH_FAILED', 'redis PUBLISH failed', error);
      }
    },

    async subscribe(subscribe: SubscribeOptions, handler: DeliveryHandler) {
      const pattern = options.patterns === true && GLOB.test(subscribe.topic);
      const channel = prefix + subscribe.topic;
      const listener = new Listener(
        handler,
        pattern ? (subscribe.concurrency ?? 16) : 1,
        maxQueued,
        options.onDrop,
        report,
      );
      try {
        const client = await getSubscriber();
        await serially(async () => {
          const entry = channels.get(channel);
          if (entry) {
            entry.listeners.add(listener);
            return;
          }
          channels.set(channel, { listeners: new Set([listener]), pattern });
          try {
            if (pattern) await client.psubscribe(channel);
            else await client.subscribe(channel);
          } catch (error) {
            channels.delete(channel);
            throw error;
          }
        });
      } catch (error) {
        throw redisError('CONNECTION_FAILED', `redis SUBSCRIBE ${channel} failed`, error);
      }

      return async (closeOptions?: CloseOptions) => {
        const drained = listener.close(closeOptions?.timeoutMs ?? 30_000);
        await serially(async () => {
          const entry = channels.get(channel);
          if (!entry?.listeners.delete(listener) || entry.listeners.size > 0) return;
          channels.delete(channel);
          const client = await getSubscriber();
          try {
            if (entry.pattern) await client.punsubscribe(channel);
            else await client.unsubscribe(channel);
          } catch (error) {
            // The connection is gone; it will not resubscribe a channel nobody wants.
            report(error, 'CONNECTION_FAILED', `redis UNSUBSCRIBE ${channel} failed`);
          }
        });
        await drained;
      };
    },

    async close() {
      const [pub, sub] = [publisher, subscriber];
      publisher = subscriber = undefined;
      await Promise.all(
        [pub, sub].map(async (client) => closeRedis(await client?.catch(() => undefined))),
      );
    },
  });
}
