import type * as KafkaLib from '@platformatic/kafka';
import type { FerryError } from '../../core/errors.js';
import { PartitionFeed, PartitionPump, sleep } from '../../transport/kernel.js';
import { guardBrokerLookups, subscriptionAssigner, toDelivery, type KafkaRecord } from './wire.js';
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

/**
 * A group member on one topic. Records are fetched by the client's stream for the
 * partitions the group assigned to this member and pushed into a `PartitionFeed`; the
 * transports' one partition worker (`PartitionPump`) hands them to the handler one at a time
 * per partition (partitions in parallel up to `concurrency`). A rejected handler gets the
 * same record again after `redeliveryDelayMs`, before any later record of its partition.
 * The group's offset of a partition moves past a record only after its handler resolved;
 * commits are batched, one request in flight at a time. The stream pauses while
 * `maxBufferedMessages` records are queued or being handled.
 *
 * On a rebalance, partitions this member keeps go on where they were (the refetch of
 * records already queued is dropped); partitions it loses stop taking records at once, and
 * their handler in flight finishes and commits — the new owner starts at the committed
 * offset, so uncommitted work is redone, never skipped.
 */
export class KafkaSubscription implements Subscription {
  private readonly feed: PartitionFeed;
  private readonly pump: PartitionPump;
  private assigned = new Set<number>();
  private stream: Stream | undefined;
  private paused = false;
  /** Per partition, the group offset to commit: the one after the last record handled. */
  private readonly dirty = new Map<number, number>();
  private committing: Promise<void> | undefined;
  private lastCommitAt = 0;
  /** Set when a rebalance or close needs the finished offsets saved now. */
  private commitNow = false;
  private closing = false;
  private done: Promise<void> | undefined;
  private readonly stopped = new AbortController();

  private consumer: Consumer;

  private constructor(
    private readonly newConsumer: (subscription: KafkaSubscription) => Consumer,
    private readonly settings: KafkaSubscriptionSettings,
    private readonly handler: DeliveryHandler,
  ) {
    this.feed = new PartitionFeed({
      maxHeld: settings.maxBufferedMessages,
      onFull: () => {
        this.paused = true;
        this.stream?.pause();
      },
      onRoom: () => {
        this.paused = false;
        if (!this.closing) this.stream?.resume();
      },
      wake: (partition) => this.pump.wake(partition),
      handled: (partition, next) => {
        if (!settings.commits) return;
        this.dirty.set(partition, next);
        this.flushCommits();
      },
    });
    this.pump = new PartitionPump(this.feed, handler, {
      concurrency: settings.concurrency,
      // Pushed records wake their worker; the wait only bounds a wake that went astray.
      idleWaitMs: 5000,
      redeliveryDelayMs: settings.redeliveryDelayMs,
      onError: settings.onError,
    });
    this.consumer = newConsumer(this);
  }

  /** Joins the group and resolves once this member knows its partitions and where to start. */
  static async start(
    lib: Lib,
    settings: KafkaSubscriptionSettings,
    handler: DeliveryHandler,
  ): Promise<KafkaSubscription> {
    const newConsumer = (subscription: KafkaSubscription): Consumer => {
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
      guardBrokerLookups(consumer);
      consumer.on('consumer:group:join', (payload) => {
        if (subscription.consumer === consumer) subscription.onJoin(payload.assignments);
      });
      // Save finished work while the group still accepts this generation's commits.
      consumer.on('consumer:group:rebalance', () => {
        if (subscription.consumer !== consumer) return;
        subscription.commitNow = true;
        subscription.flushCommits();
      });
      consumer.on('error', (error: unknown) =>
        settings.onError(settings.toFerryError(error, 'CONNECTION_FAILED', 'Kafka consumer')),
      );
      return consumer;
    };
    const subscription = new KafkaSubscription(newConsumer, settings, handler);
    const consumer = subscription.consumer;
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
    this.assign(this.partitionsOf(this.consumer.assignments));
    await ready;
  }

  private partitionsOf(assignments: readonly KafkaLib.GroupAssignment[] | null | undefined) {
    const mine = assignments?.find((assignment) => assignment.topic === this.settings.topic);
    return new Set(mine?.partitions ?? []);
  }

  private onJoin(assignments: readonly KafkaLib.GroupAssignment[] | undefined): void {
    this.assign(this.partitionsOf(assignments));
  }

  /**
   * Takes `partitions` as this member's: a partition it lost stops taking records at once
   * (its queued records go; the handler in flight finishes and commits).
   */
  private assign(partitions: Set<number>): void {
    this.assigned = partitions;
    for (const partition of this.pump.partitions) {
      if (!partitions.has(partition)) this.feed.drop(partition);
    }
    void this.pump.assign(partitions);
  }

  private onRecord(record: Record): void {
    if (this.closing || record.topic !== this.settings.topic) return;
    if (!this.assigned.has(record.partition)) return;
    this.feed.push(record.partition, Number(record.offset), toDelivery(record));
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
      const finished = [...this.dirty];
      const offsets = finished.map(([partition, offset]) => ({
        topic: this.settings.topic,
        partition,
        offset: BigInt(offset),
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
    // The new stream fetches from the committed offsets: the workers stop (handlers in
    // flight finish and commit), queued records go, and the partitions start anew once the
    // stream is up. `assigned` stays, so commits that fail meanwhile are retried.
    void this.pump.assign([]);
    this.feed.clear();
    this.paused = false;
    void this.reconsume();
  }

  private async reconsume(): Promise<void> {
    for (let attempt = 0; !this.closing; attempt++) {
      await this.sleep(Math.min(500 * 2 ** attempt, 10_000));
      if (this.closing) return;
      // A client that keeps failing may hold on to a group coordinator that is gone (the
      // client looks it up once): a new client joins the group through the current one.
      if (attempt > 0 && attempt % 2 === 0) this.replaceConsumer();
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

  /** Leaves the old client behind (closed in the background) and takes a new one. */
  private replaceConsumer(): void {
    const old = this.consumer;
    this.consumer = this.newConsumer(this);
    void forceClose(old).catch(() => undefined);
  }

  private sleep(ms: number): Promise<void> {
    return sleep(ms, this.stopped.signal);
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    this.closing = true;
    this.stopped.abort();
    this.stream?.pause();
    // Handlers still running after `timeoutMs` are abandoned: their records stay
    // uncommitted and come back.
    await this.pump.close(timeoutMs);
    this.feed.clear();
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
