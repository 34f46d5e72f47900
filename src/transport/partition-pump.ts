import { describeError, FerryError, isFerryError } from '../core/errors.js';
import type { Delivery } from '../core/message.js';
import { within } from './lifecycle.js';
import { handOut, type HandOutOptions } from './redelivery.js';
import { Semaphore } from './semaphore.js';
import type { DeliveryHandler } from './transport.js';

/** Where a pump reads a partition and stores the group's position in it. */
export interface PumpSource {
  /** Next offset to read in `partition` (the committed position). */
  position(partition: number): number | Promise<number>;
  /**
   * Up to `limit` messages of `partition` at or after `offset`, in offset order; none when
   * there is nothing new yet (the pump waits for `wake` or `idleWaitMs`, then reads again).
   */
  read(partition: number, offset: number, limit: number): Delivery[] | Promise<Delivery[]>;
  /**
   * Stores `nextOffset` as the position: every message before it is acknowledged. Called
   * after each batch, before a partition stops, and when a close abandons a handler (for the
   * messages of its batch that had resolved), not after every message.
   */
  commit(partition: number, nextOffset: number): void | Promise<void>;
  /**
   * Told after each message whose handler resolved, in offset order, before the `commit` of
   * its batch; never after a close abandoned the handler. For a source that stores positions
   * itself in the background (see `PartitionFeed`). Must not throw.
   */
  handled?(partition: number, nextOffset: number): void;
  /**
   * The position after `delivery`, for a source whose offsets are not numbers (a number the
   * source handed out with it, increasing in read order). Default `Number(delivery.offset) + 1`.
   */
  offsetAfter?(delivery: Delivery): number;
}

export interface PumpOptions {
  /** Most handlers running at once (across partitions). */
  readonly concurrency: number;
  /** Longest wait for new messages before reading again when nothing woke the pump. */
  readonly idleWaitMs: number;
  /** Wait before handing out again a message whose handler rejected. */
  readonly redeliveryDelayMs: number;
  /** Messages read at once per partition. Default 100. */
  readonly batchSize?: number;
  /**
   * Told about failures of the source (`CONNECTION_FAILED` unless the source threw a
   * FerryError); the pump reads again after `retryDelayMs`.
   */
  readonly onError?: (error: FerryError) => void;
  /** Wait before reading again after the source failed. Default `redeliveryDelayMs`. */
  readonly retryDelayMs?: number;
}

interface Worker {
  readonly partition: number;
  stopping: boolean;
  done: Promise<void>;
  /** Position after the last message handled and not yet committed. */
  handledUpTo: number | undefined;
  /**
   * Set by `wake` since the worker last read: its next wait for messages returns at once. A
   * flag, not a fresh signal per wait, so waking costs nothing while the worker is busy.
   */
  woken: boolean;
  /** Ends the worker's current wait for messages, while it waits. */
  resume: (() => void) | undefined;
  /** Aborted when the worker stops: ends a wait before a redelivery. */
  readonly halt: AbortController;
  readonly redelivery: HandOutOptions;
}

/**
 * The one partition worker. Consumes the partitions assigned to one member of a group (from
 * a log it reads at a position, or from messages a client pushes, see `PartitionFeed`): one
 * message at a time per partition, in offset order, partitions in parallel with at most
 * `concurrency` handlers running; a rejected message is handed out again (see
 * {@link handOut}) before later ones of its partition; the position moves past a message
 * only after its handler resolved.
 *
 * A partition taken away stops taking messages at once; its handler in flight finishes and
 * commits, and a worker given the partition back waits for it, so a partition is never
 * handled twice at once.
 */
export class PartitionPump {
  private readonly workers = new Map<number, Worker>();
  /** Workers of revoked partitions still finishing a handler. */
  private readonly draining = new Map<number, Promise<void>>();
  private readonly slots: Semaphore;
  private readonly batchSize: number;
  private closed = false;
  /** After a close timed out: handlers still running are abandoned and must not commit. */
  private abandoned = false;

  constructor(
    private readonly source: PumpSource,
    private readonly handler: DeliveryHandler,
    private readonly options: PumpOptions,
  ) {
    this.slots = new Semaphore(options.concurrency);
    this.batchSize = options.batchSize ?? 100;
  }

  get partitions(): number[] {
    return [...this.workers.keys()].sort((a, b) => a - b);
  }

  /** Makes `partitions` the assigned set; resolves when revoked partitions have stopped. */
  async assign(partitions: Iterable<number>): Promise<void> {
    if (this.closed) return;
    const wanted = new Set(partitions);
    const stopping: Promise<void>[] = [];
    for (const [partition, worker] of this.workers) {
      if (!wanted.has(partition)) {
        this.stop(worker);
        this.workers.delete(partition);
        const done = worker.done;
        this.draining.set(partition, done);
        void done.then(() => {
          if (this.draining.get(partition) === done) this.draining.delete(partition);
        });
        stopping.push(done);
      }
    }
    for (const partition of wanted) {
      if (!this.workers.has(partition)) {
        const halt = new AbortController();
        const worker: Worker = {
          partition,
          stopping: false,
          done: Promise.resolve(),
          handledUpTo: undefined,
          woken: false,
          resume: undefined,
          halt,
          redelivery: {
            slots: this.slots,
            redeliveryDelayMs: this.options.redeliveryDelayMs,
            stopped: () => worker.stopping,
            signal: halt.signal,
          },
        };
        worker.done = this.work(worker, this.draining.get(partition));
        this.workers.set(partition, worker);
      }
    }
    await Promise.all(stopping);
  }

  /** New messages may be there (in `partition`, or in any): stop waiting. */
  wake(partition?: number): void {
    if (partition === undefined) {
      for (const worker of this.workers.values()) wakeUp(worker);
    } else {
      const worker = this.workers.get(partition);
      if (worker) wakeUp(worker);
    }
  }

  /**
   * Stops every worker; waits up to `timeoutMs` for handlers in flight. Resolves true when
   * they all finished, false when some were abandoned: their messages stay unacknowledged,
   * what resolved before them in their batch is committed. Later calls resolve true at once.
   */
  async close(timeoutMs: number): Promise<boolean> {
    if (this.closed) return true;
    this.closed = true;
    const workers = [...this.workers.values()];
    for (const worker of workers) this.stop(worker);
    this.workers.clear();
    this.slots.close();
    const running = [...workers.map((worker) => worker.done), ...this.draining.values()];
    if (await within(Promise.all(running), timeoutMs)) return true;
    this.abandoned = true;
    await Promise.all(
      workers.map(async ({ partition, handledUpTo }) => {
        if (handledUpTo === undefined) return;
        try {
          await this.source.commit(partition, handledUpTo);
        } catch (error) {
          this.report(error, partition);
        }
      }),
    );
    return false;
  }

  private stop(worker: Worker): void {
    worker.stopping = true;
    wakeUp(worker);
    worker.halt.abort();
  }

  private async work(worker: Worker, previous: Promise<void> | undefined): Promise<void> {
    if (previous) await previous;
    const { partition, redelivery } = worker;
    const { slots, handler } = this;
    const offsetAfter = this.source.offsetAfter?.bind(this.source);
    let position: number | undefined;
    while (!worker.stopping) {
      let batch: Delivery[];
      // A wake from here on means a message this read may not see: the next wait is skipped.
      worker.woken = false;
      try {
        position ??= await this.source.position(partition);
        batch = await this.source.read(partition, position, this.batchSize);
      } catch (error) {
        this.report(error, partition);
        await this.idle(worker, this.options.retryDelayMs ?? this.options.redeliveryDelayMs);
        continue;
      }
      if (batch.length === 0) {
        await this.idle(worker, this.options.idleWaitMs);
        continue;
      }
      // The position is stored once per batch (and before stopping), not per message: a
      // crash redelivers at most the rest of a batch, which at-least-once allows.
      worker.handledUpTo = undefined;
      for (const delivery of batch) {
        if (worker.stopping) break;
        // The common case without a promise of our own: a free permit, and the handler
        // resolves the first time. A rejection (or no free permit) takes the redelivery loop.
        if (slots.tryAcquire()) {
          let rejected = false;
          try {
            await handler(delivery);
          } catch {
            rejected = true;
          } finally {
            slots.release();
          }
          if (rejected && !(await handOut(delivery, handler, redelivery, true))) break;
        } else if (!(await handOut(delivery, handler, redelivery))) {
          break;
        }
        if (this.abandoned) return;
        const next = offsetAfter ? offsetAfter(delivery) : Number(delivery.offset) + 1;
        worker.handledUpTo = next;
        this.source.handled?.(partition, next);
      }
      if (this.abandoned) return;
      const handledUpTo = worker.handledUpTo;
      if (handledUpTo === undefined) continue;
      try {
        await this.source.commit(partition, handledUpTo);
        worker.handledUpTo = undefined;
        position = handledUpTo;
      } catch (error) {
        // Position not stored: those messages will be handed out again (at-least-once).
        this.report(error, partition);
        position = undefined;
      }
    }
  }

  /** Waits up to `ms`, less when woken (also by a wake since the last read) or stopped. */
  private async idle(worker: Worker, ms: number): Promise<void> {
    if (worker.stopping || worker.woken) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        worker.resume = undefined;
        resolve();
      }
      worker.resume = done;
    });
  }

  private report(error: unknown, partition: number): void {
    this.options.onError?.(
      isFerryError(error)
        ? error
        : new FerryError('CONNECTION_FAILED', `Partition ${partition}: ${describeError(error)}`, {
            cause: error,
            details: { partition },
          }),
    );
  }
}

function wakeUp(worker: Worker): void {
  worker.woken = true;
  worker.resume?.();
}
