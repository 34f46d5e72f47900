import type * as KafkaLib from '@platformatic/kafka';
import type { FerryError } from '../../core/errors.js';
import { handOut, Semaphore, sleep, within } from '../../transport/kernel.js';
import { subscriptionAssigner, toDelivery, type KafkaRecord } from './wire.js';
import type {
  CloseOptions,
  DeliveryHandler,
  StartPosition,
  Subscription,
} from '../../transport/transport.js';

type Lib = typeof KafkaLib;
type Consumer = KafkaLib.Consumer<string, Buffer, string, string>;
type Stream = KafkaLib.MessagesStream<string, Buffer, string, string>;
type Record = KafkaRecord;

/** Everything a subscription needs to know; filled in by the kafka transport. */
export interface KafkaSubscriptionSettings {
  readonly topic: string;
  /** Kafka group id: the ferry group, or a unique one for a private subscription. */
  readonly groupId: string;
  /** Private subscriptions commit nothing: they keep no position after they close. */
  readonly commits: boolean;
  readonly from: StartPosition;
  readonly concurrency: number;
  readonly maxBufferedMessages: number;
  readonly redeliveryDelayMs: number;
  /** Least time between two commit requests (close and rebalances commit at once). */
  readonly commitIntervalMs: number;
  readonly clientOptions: Omit<KafkaLib.BaseOptions, 'clientId'> & { readonly clientId: string };
  readonly sessionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly rebalanceTimeoutMs: number;
  readonly maxWaitMs: number;
  /** Most bytes one fetch brings, and one partition's share of it. */
  readonly maxFetchBytes: number;
  /** Maps a client error to a FerryError. */
  readonly toFerryError: (
    error: unknown,
    fallback: 'CONNECTION_FAILED',
    what: string,
  ) => FerryError;
  /** Told about failures the subscription recovers from by itself (commit, fetch). */
  readonly onError: (error: FerryError) => void;
  /** Runs after the consumer left its group (private subscriptions drop their group here). */
  readonly afterClose?: () => Promise<void>;
}

/** One partition's share of the work: its fetched records, handled one at a time. */
interface PartitionWork {
  readonly partition: number;
  readonly queue: Record[];
  head: number;
  /** The last offset queued: records up to it were already queued (a refetch). */
  last: bigint | undefined;
  /** The worker loop, while one runs. */
  loop: Promise<void> | undefined;
  stopped: boolean;
}

/**
 * A group member on one topic. Records are fetched by the client's stream for the
 * partitions the group assigned to this member, queued per partition, and handed to the
 * handler one at a time per partition (partitions in parallel up to `concurrency`). A
 * rejected handler gets the same record again after `redeliveryDelayMs`, before any later
 * record of its partition. The group's offset of a partition moves past a record only after
 * its handler resolved; commits are batched, one request in flight at a time.
 *
 * On a rebalance, partitions this member keeps go on where they were (the refetch of
 * records already queued is dropped); partitions it loses stop taking records at once, and
 * their handler in flight finishes and commits — the new owner starts at the committed
 * offset, so uncommitted work is redone, never skipped.
 */
export class KafkaSubscription implements Subscription {
  private readonly work = new Map<number, PartitionWork>();
  /** Workers of dropped partitions still finishing a handler: a new worker waits for them. */
  private readonly draining = new Map<number, Promise<void>>();
  private assigned = new Set<number>();
  private stream: Stream | undefined;
  private buffered = 0;
  private paused = false;
  private readonly slots: Semaphore;
  private readonly dirty = new Map<number, bigint>();
  private committing: Promise<void> | undefined;
  private lastCommitAt = 0;
  /** Set when a rebalance or close needs the finished offsets saved now. */
  private commitNow = false;
  private closing = false;
  private abandoned = false;
  private done: Promise<void> | undefined;
  private readonly stopped = new AbortController();

  private constructor(
    private readonly consumer: Consumer,
    private readonly settings: KafkaSubscriptionSettings,
    private readonly handler: DeliveryHandler,
  ) {
    this.slots = new Semaphore(settings.concurrency);
  }

  /** Joins the group and resolves once this member knows its partitions and where to start. */
  static async start(
    lib: Lib,
    settings: KafkaSubscriptionSettings,
    handler: DeliveryHandler,
  ): Promise<KafkaSubscription> {
    const consumer = new lib.Consumer<string, Buffer, string, string>({
      ...settings.clientOptions,
      groupId: settings.groupId,
      autocommit: false,
      sessionTimeout: settings.sessionTimeoutMs,
      heartbeatInterval: settings.heartbeatIntervalMs,
      rebalanceTimeout: settings.rebalanceTimeoutMs,
      maxWaitTime: settings.maxWaitMs,
      partitionAssigner: subscriptionAssigner,
      deserializers: {
        key: lib.stringDeserializer,
        headerKey: lib.stringDeserializer,
        headerValue: lib.stringDeserializer,
      },
    });
    const subscription = new KafkaSubscription(consumer, settings, handler);
    consumer.on('consumer:group:join', (payload) => subscription.onJoin(payload.assignments));
    // Save finished work while the group still accepts this generation's commits.
    consumer.on('consumer:group:rebalance', () => {
      subscription.commitNow = true;
      subscription.flushCommits();
    });
    consumer.on('error', (error: unknown) =>
      settings.onError(settings.toFerryError(error, 'CONNECTION_FAILED', 'Kafka consumer')),
    );
    try {
      await subscription.consume();
    } catch (error) {
      await forceClose(consumer).catch(() => undefined);
      throw settings.toFerryError(
        error,
        'CONNECTION_FAILED',
        `Could not join group ${settings.groupId} on ${settings.topic}`,
      );
    }
    return subscription;
  }

  close(options: CloseOptions = {}): Promise<void> {
    this.done ??= this.shutdown(options.timeoutMs ?? 30_000);
    return this.done;
  }

  private async consume(): Promise<void> {
    const stream = await this.consumer.consume({
      topics: [this.settings.topic],
      mode: 'committed',
      fallbackMode: this.settings.from,
      autocommit: false,
      maxWaitTime: this.settings.maxWaitMs,
      maxBytes: this.settings.maxFetchBytes,
    });
    this.stream = stream;
    const ready = new Promise<void>((resolve, reject) => {
      stream.once('offsets', () => resolve());
      stream.once('error', reject);
    });
    stream.on('data', (record: Record) => this.onRecord(record));
    stream.on('error', (error: unknown) => this.onStreamError(stream, error));
    if (this.paused) stream.pause();
    this.assigned = this.partitionsOf(this.consumer.assignments);
    await ready;
  }

  private partitionsOf(assignments: readonly KafkaLib.GroupAssignment[] | null | undefined) {
    const mine = assignments?.find((assignment) => assignment.topic === this.settings.topic);
    return new Set(mine?.partitions ?? []);
  }

  private onJoin(assignments: readonly KafkaLib.GroupAssignment[] | undefined): void {
    this.assigned = this.partitionsOf(assignments);
    for (const partition of [...this.work.keys()]) {
      if (!this.assigned.has(partition)) this.drop(partition);
    }
    // Dropped records may have kept the stream paused.
    this.resumeIfRoom();
  }

  /** Stops a partition's worker: queued records go, the handler in flight may finish. */
  private drop(partition: number): void {
    const work = this.work.get(partition);
    if (!work) return;
    this.work.delete(partition);
    work.stopped = true;
    this.buffered -= work.queue.length - work.head;
    work.queue.length = 0;
    work.head = 0;
    if (work.loop) {
      const loop = work.loop;
      this.draining.set(partition, loop);
      void loop.then(() => {
        if (this.draining.get(partition) === loop) this.draining.delete(partition);
      });
    }
  }

  private onRecord(record: Record): void {
    if (this.closing || record.topic !== this.settings.topic) return;
    if (!this.assigned.has(record.partition)) return;
    let work = this.work.get(record.partition);
    if (!work) {
      work = {
        partition: record.partition,
        queue: [],
        head: 0,
        last: undefined,
        loop: undefined,
        stopped: false,
      };
      this.work.set(record.partition, work);
    }
    if (work.last !== undefined && record.offset <= work.last) return;
    work.last = record.offset;
    work.queue.push(record);
    this.buffered++;
    if (!this.paused && this.buffered >= this.settings.maxBufferedMessages) {
      this.paused = true;
      this.stream?.pause();
    }
    work.loop ??= this.runPartition(work);
  }

  private async runPartition(work: PartitionWork): Promise<void> {
    const previous = this.draining.get(work.partition);
    if (previous) await previous;
    const redelivery = {
      slots: this.slots,
      redeliveryDelayMs: this.settings.redeliveryDelayMs,
      stopped: () => work.stopped || this.closing,
      signal: this.stopped.signal,
    };
    try {
      while (!work.stopped && !this.closing && work.head < work.queue.length) {
        const record = work.queue[work.head] as Record;
        if (!(await handOut(toDelivery(record), this.handler, redelivery))) return;
        work.queue[work.head++] = undefined as unknown as Record;
        if (work.head > 1024 && work.head * 2 > work.queue.length) {
          work.queue.splice(0, work.head);
          work.head = 0;
        }
        if (!work.stopped) {
          this.buffered--;
          this.resumeIfRoom();
        }
        if (!this.abandoned && this.settings.commits) {
          this.dirty.set(work.partition, record.offset);
          this.flushCommits();
        }
      }
    } finally {
      work.loop = undefined;
    }
  }

  private resumeIfRoom(): void {
    if (this.paused && this.buffered <= this.settings.maxBufferedMessages / 2) {
      this.paused = false;
      if (!this.closing) this.stream?.resume();
    }
  }

  /** Commits finished offsets; one request in flight, later ones carry what finished meanwhile. */
  private flushCommits(): void {
    if (this.committing || this.dirty.size === 0) return;
    this.committing = this.commitLoop().finally(() => {
      this.committing = undefined;
      // Work that finished while the last request failed and waited.
      if (this.dirty.size > 0 && !this.closing) this.flushCommits();
    });
  }

  private async commitLoop(): Promise<void> {
    let failures = 0;
    while (this.dirty.size > 0) {
      const wait = this.lastCommitAt + this.settings.commitIntervalMs - Date.now();
      if (wait > 0 && !this.commitNow && !this.closing) await this.sleep(wait);
      this.commitNow = false;
      this.lastCommitAt = Date.now();
      // `dirty` holds the last finished offset; the group's offset is the one after it.
      const finished = [...this.dirty];
      const offsets = finished.map(([partition, offset]) => ({
        topic: this.settings.topic,
        partition,
        offset: offset + 1n,
        leaderEpoch: -1,
      }));
      this.dirty.clear();
      try {
        await this.consumer.commit({ offsets });
        failures = 0;
      } catch (error) {
        failures++;
        this.settings.onError(
          this.settings.toFerryError(error, 'CONNECTION_FAILED', 'Kafka offset commit failed'),
        );
        for (const [partition, offset] of finished) {
          // Partitions this member lost are redone by their new owner.
          if (!this.dirty.has(partition) && this.assigned.has(partition)) {
            this.dirty.set(partition, offset);
          }
        }
        if (this.closing && failures >= 3) return;
        await sleep(Math.min(100 * 2 ** failures, 2000));
      }
    }
  }

  /** The stream died (broker gone, group error): drop queued records and consume anew. */
  private onStreamError(stream: Stream, error: unknown): void {
    if (this.stream !== stream) return;
    this.stream = undefined;
    if (this.closing) return;
    this.settings.onError(
      this.settings.toFerryError(error, 'CONNECTION_FAILED', 'Kafka fetch failed; reconnecting'),
    );
    for (const partition of [...this.work.keys()]) this.drop(partition);
    this.paused = false;
    void this.reconsume();
  }

  private async reconsume(): Promise<void> {
    for (let attempt = 0; !this.closing; attempt++) {
      await this.sleep(Math.min(500 * 2 ** attempt, 10_000));
      if (this.closing) return;
      try {
        await this.consume();
        return;
      } catch (error) {
        this.settings.onError(
          this.settings.toFerryError(error, 'CONNECTION_FAILED', 'Kafka consumer reconnect failed'),
        );
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return sleep(ms, this.stopped.signal);
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    this.closing = true;
    this.stopped.abort();
    this.slots.close();
    this.stream?.pause();
    const loops = [
      ...[...this.work.values()].flatMap((work) => (work.loop ? [work.loop] : [])),
      ...this.draining.values(),
    ];
    const finished = await within(Promise.all(loops), timeoutMs);
    // Handlers still running are abandoned: their records stay uncommitted and come back.
    if (!finished) this.abandoned = true;
    if (this.settings.commits) {
      await this.committing;
      if (this.dirty.size > 0) {
        this.committing = this.commitLoop();
        await this.committing;
      }
    }
    await this.stream?.close().catch(() => undefined);
    await forceClose(this.consumer).catch((error: unknown) => {
      this.settings.onError(
        this.settings.toFerryError(error, 'CONNECTION_FAILED', 'Leaving the Kafka group failed'),
      );
    });
    await this.settings.afterClose?.().catch(() => undefined);
  }
}

/** Leaves the group even if a stream is still open. */
function forceClose(consumer: Consumer): Promise<void> {
  return new Promise((resolve, reject) =>
    consumer.close(true, (error) => (error ? reject(error) : resolve())),
  );
}
