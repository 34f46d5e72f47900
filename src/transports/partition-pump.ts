import type { Delivery } from '../message.js';
import type { DeliveryHandler } from '../transport.js';

/** Where a pump reads a partitioned log and stores the group's position in it. */
export interface PumpSource {
  /** Next offset to read in `partition` (the committed position). */
  position(partition: number): number | Promise<number>;
  /** Up to `limit` messages of `partition` at or after `offset`, in offset order. */
  read(partition: number, offset: number, limit: number): Delivery[] | Promise<Delivery[]>;
  /**
   * Stores `nextOffset` as the position: every message before it is acknowledged. Called
   * after each batch and before a partition stops, not after every message.
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
  /** Told about failures of the source itself (the pump retries after `redeliveryDelayMs`). */
  readonly onError?: (error: unknown) => void;
}

interface Worker {
  stopping: boolean;
  done: Promise<void>;
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
        const worker: Worker = { stopping: false, done: Promise.resolve() };
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
    const done = [...this.workers.values()].map((worker) => {
      worker.stopping = true;
      return worker.done;
    });
    this.workers.clear();
    this.wake();
    for (const release of this.slotQueue.splice(0)) release();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.abandoned = true;
        resolve();
      }, timeoutMs);
    });
    await Promise.race([Promise.all(done), timedOut]);
    clearTimeout(timer);
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
      let handledUpTo: number | undefined;
      for (const delivery of batch) {
        if (worker.stopping) break;
        if (!(await this.handle(delivery, worker))) break;
        handledUpTo = Number(delivery.offset) + 1;
      }
      if (this.abandoned) return;
      if (handledUpTo !== undefined) {
        try {
          await this.source.commit(partition, handledUpTo);
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
      } catch {
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
