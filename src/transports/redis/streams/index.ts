import type { Redis } from 'ioredis';
import type { FerryError } from '../../../core/errors.js';
import type { OutgoingMessage } from '../../../core/message.js';
import {
  assertPartitions,
  capabilitiesOf,
  createTransport,
  errorReporter,
  partitionOf,
  Semaphore,
} from '../../../transport/kernel.js';
import type {
  CloseOptions,
  DeliveryHandler,
  PartitionLag,
  SeekTarget,
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
import { redisStreamsDescriptor } from './descriptor.js';
import { GroupMember } from './group.js';
import { retentionOf, type RedisStreamsOptions } from './options.js';
import { PrivateReader, type Context } from './subscription.js';
import { entryFields, previousId, toRecord } from './wire.js';

export type { RedisStreamsOptions } from './options.js';

/**
 * Redis Streams (`redis-streams://`): a persistent log in Redis with consumer groups and
 * replay.
 *
 * - **Persistent, at-least-once.** XADD stores each message (as durably as the server's
 *   AOF/RDB settings make it); it waits for consumers that are down. A group member
 *   acknowledges (XACK) only after its handler resolved; a rejected delivery is handed out
 *   again, after `redeliveryDelayMs`, before anything later of its stream. A member that
 *   dies holding messages is detected after `sessionTimeoutMs`; the member that takes over its
 *   streams first claims (XAUTOCLAIM) and handles what it left pending, in stream order.
 *   Handlers may therefore see a message twice: use an inbox for effects once.
 * - **Order per stream, hence per key.** A topic is `partitions` streams (default 1); a key
 *   always maps to the same stream. Within a group, each stream is read by one member at a
 *   time, one message at a time: members hold a lease per stream (renewed every
 *   `sessionTimeoutMs / 3`) and share the streams fairly, handing a stream over only after its
 *   handler in flight finished. Competing consumers on one stream would break per-key order,
 *   so a group's parallelism is the number of streams: raise `partitions` for more.
 *   (A member stalled longer than `sessionTimeoutMs` may lose its streams while still running;
 *   then, as after any takeover, messages may repeat.)
 * - **Groups.** A group is a Redis consumer group on each stream; it is created at the
 *   group's first `subscribe` (at the start or the end of the streams, per `from`) or
 *   `seek`. Coordination keys live under `prefix + 'ferry:' + topic + ':' + group + ':'`
 *   and expire on their own.
 * - **Private subscriptions** (no group) read with XREAD from the end (`latest`, the
 *   default) or the start, and keep no position.
 * - **Replay.** `seek` moves a group (XGROUP SETID) to the start, the end, a time (the
 *   first entry whose id is at or after it), or stream ids per partition
 *   (`Delivery.offset`). Entries pending at the time stay pending and are handed out again.
 * - **Retention** (`retention`): `maxCount` trims each stream with `MAXLEN ~` on XADD,
 *   `maxAgeMs` with `XTRIM MINID ~` after each batch; default: keep everything.
 * - **Publish** sends the batch as one pipeline of XADD (and XTRIM when `maxAgeMs` is set)
 *   and resolves when Redis has stored every entry.
 * - **close()** stops reading, waits up to `timeoutMs` for handlers in flight, acknowledges
 *   what resolved, and gives the streams back to the group at once.
 *
 * Each entry's fields are the headers (`ferry-id`, `ferry-created-at`, `content-type`, the
 * user's), then `ferry-key` when there is a key, then `body` last, holding the payload as
 * it was encoded (JSON text by default), so `redis-cli XRANGE` shows it readably. Entries
 * added by other tools are consumed too (see {@link decodeEntry}).
 */
export function redisStreams(options: RedisStreamsOptions = {}): Transport {
  const name = 'redis-streams';
  const capabilities = capabilitiesOf(redisStreamsDescriptor, options.maxMessageBytes);
  const partitions = options.partitions ?? 1;
  assertPartitions(partitions);
  const prefix = options.prefix ?? '';
  const sessionTimeoutMs = options.sessionTimeoutMs ?? 30_000;
  const retention = retentionOf(options);
  const trim = retention.maxCount === undefined ? [] : ['MAXLEN', '~', retention.maxCount];
  const report = errorReporter(options.onError);
  const onError = (error: FerryError): void => report(error, error.code, error.message);
  let command: Promise<Redis> | undefined;

  const streamKey = (topic: string, partition: number): string =>
    partitions === 1 ? prefix + topic : `${prefix}${topic}:${partition}`;
  const groupKey = (topic: string, group: string, what: string): string =>
    `${prefix}ferry:${topic}:${group}:${what}`;
  const connection = (): Promise<Redis> =>
    // No auto-pipelining: ioredis 5 drops the command name of callBuffer under it. Batches
    // go through explicit pipelines instead.
    (command ??= forgetOnFailure(
      connectRedis(options, { enableAutoPipelining: false }),
      () => (command = undefined),
    ));
  const allPartitions = (): number[] =>
    Array.from({ length: partitions }, (_, partition) => partition);

  /** XGROUP CREATE on every stream of the topic, or SETID where the group exists and `move`. */
  const placeGroup = async (
    client: Redis,
    topic: string,
    group: string,
    idOf: (partition: number) => string | undefined,
    move: boolean,
  ): Promise<void> => {
    const targets = allPartitions().flatMap((partition) => {
      const id = idOf(partition);
      return id === undefined ? [] : [{ key: streamKey(topic, partition), id }];
    });
    const pipeline = client.pipeline();
    for (const { key, id } of targets) pipeline.xgroup('CREATE', key, group, id, 'MKSTREAM');
    const results = (await pipeline.exec()) ?? [];
    const existing = targets.filter((_, index) => {
      const error = results[index]?.[0];
      if (!error) return false;
      if (!String(error.message).startsWith('BUSYGROUP')) throw error;
      return true;
    });
    if (!move || existing.length === 0) return;
    const setting = client.pipeline();
    for (const { key, id } of existing) setting.xgroup('SETID', key, group, id);
    for (const [error] of (await setting.exec()) ?? []) if (error) throw error;
  };

  return createTransport({
    name,
    capabilities,

    async ping() {
      await pingRedis(await connection());
    },

    async publish(messages: readonly OutgoingMessage[]) {
      try {
        const client = await connection();
        const pipeline = client.pipeline();
        const keys = retention.maxAgeMs === undefined ? undefined : new Set<string>();
        for (const message of messages) {
          const partition = partitions === 1 ? 0 : partitionOf(message, partitions);
          const key = streamKey(message.topic, partition);
          pipeline.call('XADD', key, ...trim, '*', ...entryFields(message));
          keys?.add(key);
        }
        if (keys && retention.maxAgeMs !== undefined) {
          const oldest = `${Date.now() - retention.maxAgeMs}-0`;
          for (const key of keys) pipeline.call('XTRIM', key, 'MINID', '~', oldest);
        }
        await execPipeline(pipeline);
      } catch (error) {
        throw redisError('PUBLISH_FAILED', 'redis XADD failed', error);
      }
    },

    async subscribe(subscribe: SubscribeOptions, handler: DeliveryHandler) {
      const { topic, group } = subscribe;
      const client = await connection();
      const concurrency = subscribe.concurrency ?? partitions;
      const context: Context = {
        topic,
        partitions,
        batchSize: options.batchSize ?? 100,
        blockMs: options.blockMs ?? 5000,
        sessionTimeoutMs,
        redeliveryDelayMs: options.redeliveryDelayMs ?? 100,
        handler,
        concurrency,
        slots: new Semaphore(concurrency),
        command: client,
        streamKey: (partition) => streamKey(topic, partition),
        onError,
      };
      let stop: (timeoutMs: number) => Promise<void>;
      try {
        if (group === undefined) {
          const reader = new PrivateReader(context);
          await reader.start(subscribe.from ?? 'latest');
          stop = (timeoutMs) => reader.close(timeoutMs);
        } else {
          const start = (subscribe.from ?? 'earliest') === 'earliest' ? '0' : '$';
          await placeGroup(client, topic, group, () => start, false);
          const member = new GroupMember(context, group, (what) => groupKey(topic, group, what));
          await member.start();
          stop = (timeoutMs) => member.close(timeoutMs);
        }
      } catch (error) {
        throw redisError('CONNECTION_FAILED', `redis-streams subscribe to ${topic} failed`, error);
      }
      return (closeOptions?: CloseOptions) => stop(closeOptions?.timeoutMs ?? 30_000);
    },

    async seek(topic: string, group: string, target: SeekTarget) {
      let idOf: (partition: number) => string | undefined;
      if ('position' in target) {
        const id = target.position === 'earliest' ? '0' : '$';
        idOf = () => id;
      } else if ('timestamp' in target) {
        const ms = target.timestamp.getTime();
        const id = ms > 0 ? previousId(`${ms}-0`) : '0';
        idOf = () => id;
      } else {
        const { offsets } = target;
        idOf = (partition) => {
          const offset = offsets[partition];
          return offset === undefined ? undefined : previousId(offset);
        };
      }
      try {
        await placeGroup(await connection(), topic, group, idOf, true);
      } catch (error) {
        throw redisError('CONNECTION_FAILED', `redis-streams seek on ${topic} failed`, error);
      }
    },

    async lag(topic: string, group: string): Promise<PartitionLag[]> {
      const client = await connection();
      const pipeline = client.pipeline();
      for (const partition of allPartitions()) {
        pipeline.xinfo('GROUPS', streamKey(topic, partition));
        pipeline.xinfo('STREAM', streamKey(topic, partition));
      }
      const results = (await pipeline.exec()) ?? [];
      return allPartitions().map((partition) => {
        const [groupsError, groups] = results[partition * 2] ?? [];
        const [streamError, stream] = results[partition * 2 + 1] ?? [];
        if (groupsError || streamError)
          return { partition, committed: undefined, end: '0-0', lag: 0 };
        const info = toRecord(stream as unknown[]);
        const mine = (groups as unknown[][])
          .map((fields) => toRecord(fields))
          .find((fields) => fields.name === group);
        const unread = mine?.lag ?? info.length;
        return {
          partition,
          committed: mine === undefined ? undefined : String(mine['last-delivered-id']),
          end: String(info['last-generated-id']),
          lag: Number(unread ?? 0) + Number(mine?.pending ?? 0),
        };
      });
    },

    async close() {
      const client = command;
      command = undefined;
      await closeRedis(await client?.catch(() => undefined));
    },
  });
}
