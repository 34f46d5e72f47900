import type { Redis } from 'ioredis';
import type { FerryError } from '../../../core/errors.js';
import type { Delivery } from '../../../core/message.js';
import {
  handOut,
  sleep,
  within,
  type PumpSource,
  type Semaphore,
} from '../../../transport/kernel.js';
import type { DeliveryHandler } from '../../../transport/transport.js';
import { redisError } from '../common.js';
import { decodeEntry, toRecord, type StreamEntry } from './wire.js';

/** What the readers of one subscription share. */
export interface Context {
  readonly topic: string;
  readonly partitions: number;
  readonly batchSize: number;
  readonly blockMs: number;
  readonly sessionTimeoutMs: number;
  readonly redeliveryDelayMs: number;
  readonly handler: DeliveryHandler;
  /** Most handlers running at once across the streams of the subscription. */
  readonly concurrency: number;
  /** Bounds handlers running at once across the streams of a subscription without a group. */
  readonly slots: Semaphore;
  readonly command: Redis;
  readonly streamKey: (partition: number) => string;
  /** Reports a background failure (the transport's `onError`, guarded). */
  readonly onError: (error: FerryError) => void;
}

type ReadReply = Array<[Buffer, StreamEntry[]]> | null;

/** What a member knows of one stream it reads. */
interface Stream {
  readonly key: string;
  /** Set once the member let the stream go: its reads end, it is not read again. */
  stopped: boolean;
  /** Next XAUTOCLAIM cursor while claiming what earlier owners left pending; then undefined. */
  claimFrom: string | undefined;
  reader: Redis | undefined;
  /** The read of the next batch, started as soon as the last one came. */
  next: Promise<ReadReply> | undefined;
  /** Ids handed out and not yet acknowledged, in stream order; `ids[0]` is number `base`. */
  readonly ids: string[];
  base: number;
}

/**
 * The streams of a group member, as the shared partition worker (`PartitionPump`) reads them:
 * first what earlier owners left pending (XAUTOCLAIM), in stream order, then new entries
 * (XREADGROUP), the next batch read while this one is handled. Entry ids are not numbers:
 * each delivery is numbered in read order, and a `commit` acknowledges (XACK, one per batch)
 * the ids numbered below it. Entries read but not handled when a stream stops stay pending
 * for its next owner.
 */
export class StreamSource implements PumpSource {
  private readonly streams = new Map<number, Stream>();
  private readonly numbers = new WeakMap<Delivery, number>();
  private acking: Promise<void> = Promise.resolve();

  constructor(
    private readonly context: Context,
    private readonly group: string,
    private readonly consumer: string,
  ) {}

  position(): number {
    return 0;
  }

  async read(partition: number): Promise<Delivery[]> {
    let stream = this.streams.get(partition);
    if (!stream || stream.stopped) {
      stream = {
        key: this.context.streamKey(partition),
        stopped: false,
        claimFrom: '0-0',
        reader: undefined,
        next: undefined,
        ids: [],
        base: 0,
      };
      this.streams.set(partition, stream);
    }
    let entries: StreamEntry[];
    try {
      if (stream.claimFrom !== undefined) {
        entries = await this.claim(stream);
      } else {
        const reply = await (stream.next ?? this.readNew(stream));
        stream.next = stream.stopped ? undefined : this.readNew(stream);
        entries = reply?.[0]?.[1] ?? [];
      }
    } catch (error) {
      // What this member read and did not handle is claimed again first.
      stream.claimFrom = '0-0';
      stream.next = undefined;
      if (stream.stopped) return [];
      throw redisError(
        'CONNECTION_FAILED',
        `redis-streams read of ${stream.key} failed; reading again`,
        error,
      );
    }
    const batch: Delivery[] = [];
    const trimmed: string[] = [];
    for (const [idBuffer, fields] of entries) {
      const id = idBuffer.toString();
      // Trimmed away while pending: nothing left to hand out.
      if (fields === null) {
        trimmed.push(id);
        continue;
      }
      const delivery = decodeEntry(this.context.topic, partition, id, fields);
      this.numbers.set(delivery, stream.base + stream.ids.length + 1);
      stream.ids.push(id);
      batch.push(delivery);
    }
    this.ack(stream.key, trimmed);
    return batch;
  }

  offsetAfter(delivery: Delivery): number {
    return this.numbers.get(delivery) ?? Number.NaN;
  }

  commit(partition: number, nextOffset: number): void {
    const stream = this.streams.get(partition);
    if (!stream) return;
    const ids = stream.ids.splice(0, nextOffset - stream.base);
    stream.base = nextOffset;
    this.ack(stream.key, ids);
  }

  /** Ends reading `partition`: a blocking read is broken, what it took stays pending. */
  stop(partition: number): void {
    const stream = this.streams.get(partition);
    if (!stream) return;
    stream.stopped = true;
    stream.reader?.disconnect();
  }

  /** Resolves once every acknowledgement sent has been answered. */
  flushed(): Promise<void> {
    return this.acking;
  }

  private readNew(stream: Stream): Promise<ReadReply> {
    const { command, batchSize, blockMs } = this.context;
    const reader = (stream.reader ??= command.duplicate());
    const reading = reader.callBuffer(
      'XREADGROUP',
      'GROUP',
      this.group,
      this.consumer,
      'COUNT',
      batchSize,
      'BLOCK',
      blockMs,
      'STREAMS',
      stream.key,
      '>',
    ) as Promise<ReadReply>;
    // A read ahead may fail while the batch before it is handled (a stop disconnects the
    // reader): mark it handled at once; awaiting it still sees the failure.
    reading.catch(() => undefined);
    return reading;
  }

  /** One page of what earlier owners left pending; once none is left, forgets them. */
  private async claim(stream: Stream): Promise<StreamEntry[]> {
    const { command, batchSize } = this.context;
    const { key } = stream;
    const reply = (await command.callBuffer(
      'XAUTOCLAIM',
      key,
      this.group,
      this.consumer,
      0,
      stream.claimFrom ?? '0-0',
      'COUNT',
      batchSize,
    )) as [Buffer, StreamEntry[], Buffer[]?];
    const cursor = reply[0].toString();
    if (cursor === '0-0') {
      // Former owners now hold nothing here: drop them so the group does not fill with names.
      const consumers = (await command.xinfo('CONSUMERS', key, this.group)) as unknown[][];
      const idle = consumers
        .map((fields) => toRecord(fields))
        .filter((info) => info.name !== this.consumer && Number(info.pending) === 0);
      if (idle.length > 0) {
        const pipeline = command.pipeline();
        for (const info of idle) pipeline.xgroup('DELCONSUMER', key, this.group, String(info.name));
        await pipeline.exec();
      }
    }
    stream.claimFrom = cursor === '0-0' ? undefined : cursor;
    return reply[1];
  }

  // Sent in the background, one after another: the next batch is handled meanwhile.
  private ack(key: string, ids: string[]): void {
    if (ids.length === 0) return;
    this.acking = this.acking.then(async () => {
      try {
        await this.context.command.xack(key, this.group, ...ids);
      } catch (error) {
        // Left pending: handed out again after a takeover (at-least-once).
        this.context.onError(
          redisError(
            'CONNECTION_FAILED',
            `redis-streams XACK on ${key} failed; left pending`,
            error,
          ),
        );
      }
    });
  }
}

/** A subscription without a group: plain XREAD over every stream of the topic. */
export class PrivateReader {
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
    const { batchSize, blockMs, topic, handler, slots, redeliveryDelayMs } = this.context;
    const signal = this.stopping.signal;
    const redelivery = { slots, redeliveryDelayMs, stopped: () => signal.aborted, signal };
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
                if (!(await handOut(delivery, handler, redelivery))) return;
              }
              ids[partition] = id;
            }
          }),
        );
      } catch (error) {
        if (signal.aborted) break;
        this.context.onError(
          redisError(
            'CONNECTION_FAILED',
            `redis-streams read of ${this.context.topic} failed; reading again`,
            error,
          ),
        );
        await sleep(this.context.redeliveryDelayMs * 10, signal);
      }
    }
  }

  async close(timeoutMs: number): Promise<void> {
    this.stopping.abort();
    this.reader?.disconnect();
    await within(this.done, timeoutMs);
  }
}
