import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { FerryError } from '../../../core/errors.js';
import {
  HEADER,
  type Delivery,
  type Headers,
  type OutgoingMessage,
} from '../../../core/message.js';
import type {
  CloseOptions,
  DeliveryHandler,
  PartitionLag,
  SeekTarget,
  SubscribeOptions,
  Transport,
} from '../../../transport/transport.js';
import { pause } from '../../../core/retry.js';
import {
  assertPartitions,
  checkSize,
  InFlight,
  partitionOf,
  roundRobinShare,
  Subscriptions,
} from '../../../transport/shared.js';
import {
  closeRedis,
  connectionFromUrl,
  connectRedis,
  execPipeline,
  forgetOnFailure,
  numberParam,
  redisError,
  Slots,
  within,
  type RedisConnectionOptions,
  pingRedis,
} from '../common.js';
import { capabilitiesOf } from '../../../transport/descriptor.js';
import { redisStreamsDescriptor } from './descriptor.js';

export interface RedisStreamsOptions extends RedisConnectionOptions {
  /**
   * Streams per topic. With 1 (the default) a topic is the single stream `prefix + topic`;
   * with N it is `prefix + topic + ':' + p` for p in 0..N-1 and a message goes to the stream
   * `hash(key) mod N`. Order is kept per stream, so N bounds how many members of a group
   * work at once. Fix it per topic: changing it moves keys to other streams.
   */
  readonly partitions?: number;
  /** Approximate retention: `XADD ... MAXLEN ~ maxLen` per stream. Default: keep everything. */
  readonly maxLen?: number;
  /**
   * A group member that has not renewed its leases for this long is taken for dead: its
   * streams go to other members, which claim (XAUTOCLAIM) what it left unacknowledged.
   * Default 30 000 ms; leases are renewed every third of it.
   */
  readonly claimIdleMs?: number;
  /** Entries read per XREADGROUP / XREAD. Default 100. */
  readonly batchSize?: number;
  /** How long a blocking read waits before reading again. Default 5000 ms. */
  readonly blockMs?: number;
  /** Wait before handing out again a delivery whose handler rejected. Default 100 ms. */
  readonly redeliveryDelayMs?: number;
  /** Largest body `publish` accepts, in bytes. Default 16 MiB. */
  readonly maxMessageBytes?: number;
}

/** Stream field carrying the message key. Every other field before `body` is a header. */
export const KEY_FIELD = 'ferry-key';
const BODY_FIELD = 'body';
const MAX_SEQ = '18446744073709551615';

/** The XADD field list of a message: headers, then `ferry-key`, then `body` last. */
export function entryFields(message: OutgoingMessage): Array<string | Buffer> {
  const fields: Array<string | Buffer> = [];
  for (const [name, value] of Object.entries(message.headers)) {
    if (name !== KEY_FIELD) fields.push(name, value);
  }
  if (message.key !== undefined) fields.push(KEY_FIELD, message.key);
  fields.push(BODY_FIELD, message.body);
  return fields;
}

/**
 * Reads a stream entry. ferry's entries (and any with a `body` field, else a `payload`
 * field) give that field as body, `ferry-key` as key and every other field as a header.
 * An entry with one field gives its value as body; one with several other fields gives
 * them as a JSON object (`content-type: application/json`). Entries without `ferry-id` get
 * their id from the stream position (see `deliveryId`), and without `ferry-created-at` the
 * time in their stream id.
 */
export function decodeEntry(
  topic: string,
  partition: number,
  id: string,
  fields: readonly Buffer[],
): Delivery {
  const names: string[] = [];
  for (let i = 0; i < fields.length; i += 2) names.push(String(fields[i]));
  let bodyAt = names.lastIndexOf(BODY_FIELD);
  if (bodyAt < 0) bodyAt = names.lastIndexOf('payload');
  if (bodyAt < 0 && names.length === 1) bodyAt = 0;
  const value = (index: number): Buffer => fields[index * 2 + 1] ?? Buffer.alloc(0);
  if (bodyAt < 0) {
    const object = Object.fromEntries(names.map((name, index) => [name, value(index).toString()]));
    return {
      topic,
      key: undefined,
      headers: { [HEADER.contentType]: 'application/json' },
      body: Buffer.from(JSON.stringify(object)),
      partition,
      offset: id,
      brokerTime: timeOf(id),
    };
  }
  const headers: Headers = {};
  let key: string | undefined;
  names.forEach((name, index) => {
    if (index === bodyAt) return;
    if (name === KEY_FIELD) key = value(index).toString();
    else headers[name] = value(index).toString();
  });
  return {
    topic,
    key,
    headers,
    body: value(bodyAt),
    partition,
    offset: id,
    brokerTime: headers[HEADER.createdAt] === undefined ? timeOf(id) : undefined,
  };
}

/** The time in a stream id (`<ms>-<seq>`): when Redis added the entry. */
function timeOf(id: string): Date {
  return new Date(Number.parseInt(id, 10));
}

/** The stream id just before `id`, so that a group set to it reads `id` next. */
export function previousId(id: string): string {
  const match = /^(\d+)(?:-(\d+))?$/.exec(id);
  if (!match) throw new FerryError('INVALID_ARGUMENT', `Not a stream id: ${JSON.stringify(id)}`);
  const ms = BigInt(match[1] ?? '0');
  const seq = BigInt(match[2] ?? '0');
  if (seq > 0n) return `${ms}-${seq - 1n}`;
  return ms > 0n ? `${ms - 1n}-${MAX_SEQ}` : '0';
}

type StreamEntry = [id: Buffer, fields: Buffer[] | null];

const HEARTBEAT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 2)
local owners = {}
for i = 2, #KEYS do
  local owner = redis.call('GET', KEYS[i])
  if owner == ARGV[1] then redis.call('PEXPIRE', KEYS[i], ttl) end
  owners[#owners + 1] = owner or ''
end
return {redis.call('ZRANGE', KEYS[1], 0, -1), owners}
`;
const ACQUIRE = `
local got = {}
for i = 1, #KEYS do
  local owner = redis.call('GET', KEYS[i])
  if not owner or owner == ARGV[1] then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    got[i] = 1
  else
    got[i] = 0
  end
end
return got
`;
const RELEASE = `
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
if ARGV[2] == '1' then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`;

interface Context {
  readonly topic: string;
  readonly partitions: number;
  readonly batchSize: number;
  readonly blockMs: number;
  readonly claimIdleMs: number;
  readonly redeliveryDelayMs: number;
  readonly handler: DeliveryHandler;
  readonly slots: Slots;
  readonly command: Redis;
  readonly streamKey: (partition: number) => string;
  readonly onError: (error: unknown) => void;
}

/**
 * Runs the handler for one delivery until it resolves (a rejected delivery is handed out
 * again after a pause, before anything later of its stream). False when `signal` stopped
 * it first.
 */
async function handleUntilDone(
  context: Context,
  delivery: Delivery,
  signal: AbortSignal,
): Promise<boolean> {
  while (!signal.aborted) {
    await context.slots.acquire();
    try {
      if (signal.aborted) return false;
      await context.handler(delivery);
      return true;
    } catch {
      // not acknowledged: try again below
    } finally {
      context.slots.release();
    }
    await pause(context.redeliveryDelayMs, signal);
  }
  return false;
}

/** Reads one stream of a group while this member holds its lease. */
class PartitionWorker {
  private readonly stopping = new AbortController();
  private reader: Redis | undefined;
  private acks: string[] = [];
  private acking: Promise<void> = Promise.resolve();
  private ackScheduled = false;
  /** Set after a close timed out: a handler still running must not acknowledge. */
  abandoned = false;
  readonly done: Promise<void>;

  constructor(
    private readonly context: Context,
    private readonly group: string,
    private readonly consumer: string,
    readonly partition: number,
  ) {
    this.done = this.run().finally(() => closeRedis(this.reader));
  }

  private get key(): string {
    return this.context.streamKey(this.partition);
  }

  /** Stops after the handler in flight; resolves when the worker has ended. */
  stop(): Promise<void> {
    this.stopping.abort();
    // Breaks a blocking read. Entries it may just have taken stay pending for the next owner.
    this.reader?.disconnect();
    return this.done;
  }

  private async run(): Promise<void> {
    const { command, batchSize, blockMs } = this.context;
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      try {
        // Whatever earlier owners left unacknowledged comes first, in stream order.
        await this.takeOver();
        const reader = (this.reader ??= command.duplicate());
        const read = (): Promise<Array<[Buffer, StreamEntry[]]> | null> =>
          reader.callBuffer(
            'XREADGROUP',
            'GROUP',
            this.group,
            this.consumer,
            'COUNT',
            batchSize,
            'BLOCK',
            blockMs,
            'STREAMS',
            this.key,
            '>',
          ) as Promise<Array<[Buffer, StreamEntry[]]> | null>;
        // The next batch is read while this one is handled; it stays pending (for the next
        // owner to claim) if the worker stops first.
        // A read ahead may fail while the handler runs (stop() disconnects the reader): mark
        // it handled at once; awaiting it below still sees the failure.
        const readAhead = (): ReturnType<typeof read> => {
          const pending = read();
          pending.catch(() => undefined);
          return pending;
        };
        let next = readAhead();
        while (!signal.aborted) {
          const reply = await next;
          next = readAhead();
          if (!(await this.handleAll(reply?.[0]?.[1] ?? []))) break;
        }
      } catch (error) {
        if (signal.aborted) break;
        this.context.onError(error);
        await pause(this.context.redeliveryDelayMs * 10, signal);
      }
    }
    await this.flushAcks();
  }

  private async takeOver(): Promise<void> {
    const { command, batchSize } = this.context;
    let cursor = '0-0';
    do {
      const reply = (await command.callBuffer(
        'XAUTOCLAIM',
        this.key,
        this.group,
        this.consumer,
        0,
        cursor,
        'COUNT',
        batchSize,
      )) as [Buffer, StreamEntry[], Buffer[]?];
      cursor = reply[0].toString();
      if (!(await this.handleAll(reply[1]))) return;
    } while (cursor !== '0-0');
    // Former owners now hold nothing here: drop them so the group does not fill with names.
    const consumers = (await command.xinfo('CONSUMERS', this.key, this.group)) as unknown[][];
    const idle = consumers
      .map((fields) => toRecord(fields))
      .filter((info) => info.name !== this.consumer && Number(info.pending) === 0);
    if (idle.length > 0) {
      const pipeline = command.pipeline();
      for (const info of idle)
        pipeline.xgroup('DELCONSUMER', this.key, this.group, String(info.name));
      await pipeline.exec();
    }
  }

  /** Handles entries in order; false when the worker stopped before the last one. */
  private async handleAll(entries: readonly StreamEntry[]): Promise<boolean> {
    const signal = this.stopping.signal;
    for (const [idBuffer, fields] of entries) {
      const id = idBuffer.toString();
      if (fields === null) {
        // Trimmed away while pending: nothing left to hand out.
        this.ack(id);
        continue;
      }
      if (signal.aborted) return false;
      const delivery = decodeEntry(this.context.topic, this.partition, id, fields);
      if (!(await handleUntilDone(this.context, delivery, signal))) return false;
      if (this.abandoned) return false;
      this.ack(id);
    }
    return !signal.aborted;
  }

  // Acknowledgements are sent in batches (one XACK per turn of the event loop).
  private ack(id: string): void {
    this.acks.push(id);
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    setImmediate(() => {
      this.ackScheduled = false;
      void this.flushAcks();
    });
  }

  flushAcks(): Promise<void> {
    const ids = this.acks.splice(0);
    if (ids.length > 0) {
      this.acking = this.acking.then(async () => {
        try {
          await this.context.command.xack(this.key, this.group, ...ids);
        } catch (error) {
          // Left pending: handed out again after a takeover (at-least-once).
          this.context.onError(error);
        }
      });
    }
    return this.acking;
  }
}

/** One subscription in a group: holds leases on its share of the topic's streams. */
class GroupMember {
  readonly id = randomUUID();
  private readonly workers = new Map<number, PartitionWorker>();
  private readonly releasing = new Set<Promise<void>>();
  /** Partitions whose worker is stopping: not started again until it has. */
  private readonly stopping = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> = Promise.resolve();
  private lastRenewed = Date.now();
  private closed = false;

  constructor(
    private readonly context: Context,
    private readonly group: string,
    private readonly keyOf: (what: string) => string,
  ) {}

  private leaseKey(partition: number): string {
    return this.keyOf(`lease:${partition}`);
  }

  async start(): Promise<void> {
    await this.beat();
    this.schedule();
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.beating = this.beat().catch((error: unknown) => this.context.onError(error));
      void this.beating.then(() => this.schedule());
    }, this.context.claimIdleMs / 3);
    this.timer.unref();
  }

  /** Renews leases, learns the live members, and moves towards this member's fair share. */
  private async beat(): Promise<void> {
    const { command, partitions, claimIdleMs } = this.context;
    const all = Array.from({ length: partitions }, (_, partition) => partition);
    let members: string[];
    let owners: string[];
    try {
      [members, owners] = (await command.eval(
        HEARTBEAT,
        partitions + 1,
        this.keyOf('members'),
        ...all.map((partition) => this.leaseKey(partition)),
        this.id,
        claimIdleMs,
      )) as [string[], string[]];
    } catch (error) {
      // Could not renew: once the leases may have run out, another member may own them.
      if (Date.now() - this.lastRenewed > claimIdleMs) {
        for (const partition of [...this.workers.keys()]) void this.drop(partition, false);
      }
      throw error;
    }
    this.lastRenewed = Date.now();
    if (this.closed) return;
    const share = new Set(roundRobinShare(partitions, members.sort(), this.id));
    for (const [partition] of this.workers) {
      if (owners[partition] !== this.id) void this.drop(partition, false);
      else if (!share.has(partition)) void this.drop(partition, true);
    }
    const wanted = [...share].filter(
      (partition) =>
        !this.workers.has(partition) &&
        !this.stopping.has(partition) &&
        (owners[partition] === '' || owners[partition] === this.id),
    );
    if (wanted.length === 0) return;
    const got = (await command.eval(
      ACQUIRE,
      wanted.length,
      ...wanted.map((partition) => this.leaseKey(partition)),
      this.id,
      claimIdleMs,
    )) as number[];
    if (this.closed) return;
    wanted.forEach((partition, index) => {
      if (got[index] === 1) {
        this.workers.set(
          partition,
          new PartitionWorker(this.context, this.group, this.id, partition),
        );
      }
    });
  }

  /** Stops a worker (after its handler in flight) and gives its lease back if still ours. */
  private drop(partition: number, release: boolean): Promise<void> {
    const worker = this.workers.get(partition);
    if (!worker) return Promise.resolve();
    this.workers.delete(partition);
    this.stopping.add(partition);
    const releasing = (async () => {
      if (!(await within(worker.stop(), this.context.claimIdleMs))) worker.abandoned = true;
      if (release) await this.release([partition], false);
    })()
      .catch((error: unknown) => this.context.onError(error))
      .finally(() => {
        this.stopping.delete(partition);
        this.releasing.delete(releasing);
      });
    this.releasing.add(releasing);
    return releasing;
  }

  private async release(partitions: number[], leave: boolean): Promise<void> {
    await this.context.command.eval(
      RELEASE,
      partitions.length + 1,
      this.keyOf('members'),
      ...partitions.map((partition) => this.leaseKey(partition)),
      this.id,
      leave ? '1' : '0',
    );
  }

  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.beating;
    const workers = [...this.workers.values()];
    this.workers.clear();
    if (!(await within(Promise.all(workers.map((worker) => worker.stop())), timeoutMs))) {
      for (const worker of workers) worker.abandoned = true;
    }
    await Promise.all(workers.map((worker) => worker.flushAcks()));
    await within(Promise.all(this.releasing), timeoutMs);
    try {
      await this.release(
        workers.map((worker) => worker.partition),
        true,
      );
    } catch (error) {
      // The leases run out on their own after claimIdleMs.
      this.context.onError(error);
    }
  }
}

/** A subscription without a group: plain XREAD over every stream of the topic. */
class PrivateReader {
  private readonly stopping = new AbortController();
  private reader: Redis | undefined;
  private done: Promise<void> = Promise.resolve();

  constructor(private readonly context: Context) {}

  async start(from: 'earliest' | 'latest'): Promise<void> {
    const { command, partitions, streamKey } = this.context;
    const keys = Array.from({ length: partitions }, (_, partition) => streamKey(partition));
    let ids = keys.map(() => '0-0');
    if (from === 'latest') {
      const pipeline = command.pipeline();
      for (const key of keys) pipeline.xrevrange(key, '+', '-', 'COUNT', 1);
      const results = (await pipeline.exec()) ?? [];
      ids = results.map(([error, entries]) => {
        if (error) throw error;
        return (entries as Array<[string, string[]]>)[0]?.[0] ?? '0-0';
      });
    }
    this.reader = command.duplicate();
    this.done = this.run(keys, ids);
  }

  private async run(keys: string[], ids: string[]): Promise<void> {
    const { batchSize, blockMs, topic } = this.context;
    const signal = this.stopping.signal;
    const partitionOfKey = new Map(keys.map((key, partition) => [key, partition]));
    while (!signal.aborted) {
      try {
        const reply = (await this.reader?.callBuffer(
          'XREAD',
          'COUNT',
          batchSize,
          'BLOCK',
          blockMs,
          'STREAMS',
          ...keys,
          ...ids,
        )) as Array<[Buffer, StreamEntry[]]> | null;
        await Promise.all(
          (reply ?? []).map(async ([key, entries]) => {
            const partition = partitionOfKey.get(key.toString()) ?? 0;
            for (const [idBuffer, fields] of entries) {
              const id = idBuffer.toString();
              if (fields !== null) {
                const delivery = decodeEntry(topic, partition, id, fields);
                if (!(await handleUntilDone(this.context, delivery, signal))) return;
              }
              ids[partition] = id;
            }
          }),
        );
      } catch (error) {
        if (signal.aborted) break;
        this.context.onError(error);
        await pause(this.context.redeliveryDelayMs * 10, signal);
      }
    }
  }

  async close(timeoutMs: number): Promise<void> {
    this.stopping.abort();
    this.reader?.disconnect();
    await within(this.done, timeoutMs);
  }
}

/**
 * Redis Streams (`redis-streams://`): a persistent log in Redis with consumer groups and
 * replay.
 *
 * - **Persistent, at-least-once.** XADD stores each message (as durably as the server's
 *   AOF/RDB settings make it); it waits for consumers that are down. A group member
 *   acknowledges (XACK) only after its handler resolved; a rejected delivery is handed out
 *   again, after `redeliveryDelayMs`, before anything later of its stream. A member that
 *   dies holding messages is detected after `claimIdleMs`; the member that takes over its
 *   streams first claims (XAUTOCLAIM) and handles what it left pending, in stream order.
 *   Handlers may therefore see a message twice: use an inbox for effects once.
 * - **Order per stream, hence per key.** A topic is `partitions` streams (default 1); a key
 *   always maps to the same stream. Within a group, each stream is read by one member at a
 *   time, one message at a time: members hold a lease per stream (renewed every
 *   `claimIdleMs / 3`) and share the streams fairly, handing a stream over only after its
 *   handler in flight finished. Competing consumers on one stream would break per-key order,
 *   so a group's parallelism is the number of streams: raise `partitions` for more.
 *   (A member stalled longer than `claimIdleMs` may lose its streams while still running;
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
 * - **Publish** sends the batch as one pipeline of XADD (with `MAXLEN ~ maxLen` when set)
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
  const claimIdleMs = options.claimIdleMs ?? 30_000;
  const onError = options.onError ?? (() => undefined);
  const subscriptions = new Subscriptions();
  const publishing = new InFlight();
  let command: Promise<Redis> | undefined;
  let closed = false;

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
  const assertOpen = (): void => {
    if (closed) throw new FerryError('CLOSED', 'redis-streams transport is closed');
  };
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

  return {
    name,
    capabilities,

    async ping() {
      assertOpen();
      await pingRedis(await connection());
    },

    async publish(messages: readonly OutgoingMessage[]) {
      assertOpen();
      checkSize(name, capabilities, messages);
      if (messages.length === 0) return;
      const trim = options.maxLen === undefined ? [] : ['MAXLEN', '~', options.maxLen];
      const sending = (async () => {
        const client = await connection();
        const pipeline = client.pipeline();
        for (const message of messages) {
          const partition = partitions === 1 ? 0 : partitionOf(message, partitions);
          pipeline.call(
            'XADD',
            streamKey(message.topic, partition),
            ...trim,
            '*',
            ...entryFields(message),
          );
        }
        await execPipeline(pipeline);
      })();
      try {
        await publishing.run(sending);
      } catch (error) {
        throw redisError('PUBLISH_FAILED', 'redis XADD failed', error);
      }
    },

    async subscribe(subscribe: SubscribeOptions, handler: DeliveryHandler) {
      assertOpen();
      const { topic, group } = subscribe;
      const client = await connection();
      const context: Context = {
        topic,
        partitions,
        batchSize: options.batchSize ?? 100,
        blockMs: options.blockMs ?? 5000,
        claimIdleMs,
        redeliveryDelayMs: options.redeliveryDelayMs ?? 100,
        handler,
        slots: new Slots(subscribe.concurrency ?? partitions),
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
      return subscriptions.add((closeOptions?: CloseOptions) =>
        stop(closeOptions?.timeoutMs ?? 30_000),
      );
    },

    async seek(topic: string, group: string, target: SeekTarget) {
      assertOpen();
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

    async close(closeOptions?: CloseOptions) {
      closed = true;
      await subscriptions.closeAll(closeOptions);
      await publishing.settled();
      const client = command;
      command = undefined;
      await closeRedis(await client?.catch(() => undefined));
    },
  };
}

/** A flat `[name, value, name, value, ...]` Redis reply as an object. */
function toRecord(fields: readonly unknown[]): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) record[String(fields[i])] = fields[i + 1];
  return record;
}

/**
 * `redis-streams://[user:password@]host:port[/db]`. Query: `tls=1`, `prefix`,
 * `partitions`, `maxLen`, `claimIdleMs`, `batchSize`, `blockMs`, `maxMessageBytes`.
 */
export function redisStreamsFromUrl(url: URL): Transport {
  const numbers: Record<string, number> = {};
  for (const option of [
    'partitions',
    'maxLen',
    'claimIdleMs',
    'batchSize',
    'blockMs',
    'maxMessageBytes',
  ] as const) {
    const value = numberParam(url, option);
    if (value !== undefined) numbers[option] = value;
  }
  return redisStreams({ ...connectionFromUrl(url, 'redis:'), ...numbers });
}
