import type { Delivery } from '../core/message.js';
import type { DeliveryHandler } from './transport.js';

/** Where a pump reads a partitioned log and stores the group's position in it. */
export interface PumpSource {
  /** Next offset to read in `partition` (the committed position). */
  position(partition: number): number | Promise<number>;
  /** Up to `limit` messages of `partition` at or after `offset`, in offset order. */
  read(partition: number, offset: number, limit: number): Delivery[] | Promise<Delivery[]>;
  /**
   * Stores `nextOffset` as the position: every message before it is acknowledged. Called
   * after each batch, before a partition stops, and when a close abandons a handler (for the
   * messages of its batch that had resolved), not after every message.
   */
  commit(partition: number, nextOffset: number): void | Promise<void>;
}

export interface PumpOptions {
  /** Most handlers running at once (across partitions). */
  readonly concurrency: number;
  /** Longest wait for new messages before reading again when nothing woke the pump. */
  readonly idleWaitMs: number;
  /** Wait before handing out again a message whose handler rejected. */
  readonly redeliveryDelayMs: number;
  readonly batchSize?: number;
  /**
   * Told about failures of the source (the pump retries after `redeliveryDelayMs`) and about
   * handlers that rejected (their message is handed out again after `redeliveryDelayMs`).
   */
  readonly onError?: (error: unknown) => void;
}

interface Worker {
  readonly partition: number;
  stopping: boolean;
  done: Promise<void>;
  /** Position after the last message handled and not yet committed. */
  handledUpTo: number | undefined;
}

/**
 * Consumes the partitions assigned to one member of a group over a partitioned log (the
 * memory and sqlite transports): one message at a time per partition, in offset order,
 * partitions in parallel up to `concurrency`; the position moves past a message only after
 * its handler resolved.
 */
export class PartitionPump {
  private readonly workers = new Map<number, Worker>();
  private readonly waiters = new Set<() => void>();
  private readonly slotQueue: Array<() => void> = [];
  private running = 0;
  private closed = false;
  /** After a close timed out: handlers still running are abandoned and must not commit. */
  private abandoned = false;

  constructor(
    private readonly source: PumpSource,
    private readonly handler: DeliveryHandler,
    private readonly options: PumpOptions,
  ) {}

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
        worker.stopping = true;
        this.workers.delete(partition);
        stopping.push(worker.done);
      }
    }
    for (const partition of wanted) {
      if (!this.workers.has(partition)) {
        const worker: Worker = {
          partition,
          stopping: false,
          done: Promise.resolve(),
          handledUpTo: undefined,
        };
        worker.done = this.work(partition, worker);
        this.workers.set(partition, worker);
      }
    }
    this.wake();
    await Promise.all(stopping);
  }

  /** New messages may be there: stop waiting. */
  wake(): void {
    for (const resolve of this.waiters) resolve();
    this.waiters.clear();
  }

  /** Stops every worker; waits up to `timeoutMs` for handlers in flight. */
  async close(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const workers = [...this.workers.values()];
    for (const worker of workers) worker.stopping = true;
    this.workers.clear();
    this.wake();
    for (const release of this.slotQueue.splice(0)) release();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const finished = await Promise.race([
      Promise.all(workers.map((worker) => worker.done)).then(() => true),
      timedOut,
    ]);
    clearTimeout(timer);
    if (finished) return;
    // Handlers still running are abandoned (their messages come back); what resolved before
    // them in their batch is acknowledged now.
    this.abandoned = true;
    await Promise.all(
      workers.map(async ({ partition, handledUpTo }) => {
        if (handledUpTo === undefined) return;
        try {
          await this.source.commit(partition, handledUpTo);
        } catch (error) {
          this.options.onError?.(error);
        }
      }),
    );
  }

  private async work(partition: number, worker: Worker): Promise<void> {
    let position: number | undefined;
    while (!worker.stopping) {
      let batch: Delivery[];
      try {
        position ??= await this.source.position(partition);
        batch = await this.source.read(partition, position, this.options.batchSize ?? 100);
      } catch (error) {
        this.options.onError?.(error);
        await this.idle(this.options.redeliveryDelayMs);
        continue;
      }
      if (batch.length === 0) {
        await this.idle(this.options.idleWaitMs);
        continue;
      }
      // The position is stored once per batch (and before stopping), not per message: a
      // crash redelivers at most the rest of a batch, which at-least-once allows.
      worker.handledUpTo = undefined;
      for (const delivery of batch) {
        if (worker.stopping) break;
        if (!(await this.handle(delivery, worker))) break;
        if (this.abandoned) return;
        worker.handledUpTo = Number(delivery.offset) + 1;
      }
      if (this.abandoned) return;
      const handledUpTo = worker.handledUpTo;
      if (handledUpTo !== undefined) {
        try {
          await this.source.commit(partition, handledUpTo);
          worker.handledUpTo = undefined;
          position = handledUpTo;
        } catch (error) {
          // Position not stored: those messages will be handed out again (at-least-once).
          this.options.onError?.(error);
          position = undefined;
        }
      }
    }
  }

  /** Runs the handler until it resolves; false if the worker stopped first. */
  private async handle(delivery: Delivery, worker: Worker): Promise<boolean> {
    while (!worker.stopping) {
      if (!(await this.acquire())) return false;
      try {
        await this.handler(delivery);
        return true;
      } catch (error) {
        this.options.onError?.(error);
        if (worker.stopping) return false;
      } finally {
        this.release();
      }
      await this.idle(this.options.redeliveryDelayMs);
    }
    return false;
  }

  private acquire(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.running < this.options.concurrency) {
      this.running++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      this.slotQueue.push(() => {
        if (this.closed) {
          resolve(false);
        } else {
          this.running++;
          resolve(true);
        }
      });
    });
  }

  private release(): void {
    this.running--;
    this.slotQueue.shift()?.();
  }

  private idle(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }
}
