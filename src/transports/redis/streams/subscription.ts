import type { Redis } from 'ioredis';
import type { FerryError } from '../../../core/errors.js';
import type { Delivery } from '../../../core/message.js';
import { handOut, sleep, within, type Semaphore } from '../../../transport/kernel.js';
import type { DeliveryHandler } from '../../../transport/transport.js';
import { closeRedis, redisError } from '../common.js';
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
  /** Bounds handlers running at once across the streams of the subscription. */
  readonly slots: Semaphore;
  readonly command: Redis;
  readonly streamKey: (partition: number) => string;
  /** Reports a background failure (the transport's `onError`, guarded). */
  readonly onError: (error: FerryError) => void;
}

/** Hands a delivery out until its handler resolves (see `handOut`); false when stopped first. */
function handleUntilDone(
  context: Context,
  delivery: Delivery,
  signal: AbortSignal,
): Promise<boolean> {
  return handOut(delivery, context.handler, {
    slots: context.slots,
    redeliveryDelayMs: context.redeliveryDelayMs,
    stopped: () => signal.aborted,
    signal,
  });
}

/** Reads one stream of a group while this member holds its lease. */
export class PartitionWorker {
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
        this.context.onError(
          redisError(
            'CONNECTION_FAILED',
            `redis-streams read of ${this.key} failed; reading again`,
            error,
          ),
        );
        await sleep(this.context.redeliveryDelayMs * 10, signal);
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
          this.context.onError(
            redisError(
              'CONNECTION_FAILED',
              `redis-streams XACK on ${this.key} failed; left pending`,
              error,
            ),
          );
        }
      });
    }
    return this.acking;
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
