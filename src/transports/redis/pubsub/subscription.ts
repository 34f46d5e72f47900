import type { FerryErrorCode } from '../../../core/errors.js';
import type { Delivery } from '../../../core/message.js';
import { Semaphore, within } from '../../../transport/kernel.js';
import type { DeliveryHandler } from '../../../transport/transport.js';
import { decodeEnvelope } from './wire.js';

/**
 * The receiving end of one Pub/Sub subscription: a queue per channel, drained one message at
 * a time in arrival order, channels side by side up to `concurrency`. At-most-once: a
 * rejected delivery is reported to `onError` and not handed out again; `close` drops what
 * has not started.
 */
export class Listener {
  private readonly queues = new Map<string, Delivery[]>();
  private readonly offsets = new Map<string, number>();
  private readonly draining = new Set<Promise<void>>();
  private readonly slots: Semaphore;
  private queued = 0;
  closed = false;

  constructor(
    private readonly handler: DeliveryHandler,
    concurrency: number,
    private readonly maxQueued: number,
    private readonly onDrop: ((topic: string) => void) | undefined,
    private readonly report: (error: unknown, code: FerryErrorCode, what: string) => void,
  ) {
    this.slots = new Semaphore(concurrency);
  }

  push(topic: string, raw: Buffer): void {
    if (this.closed) return;
    if (this.queued >= this.maxQueued) {
      this.onDrop?.(topic);
      return;
    }
    const offset = this.offsets.get(topic) ?? 0;
    this.offsets.set(topic, offset + 1);
    const delivery: Delivery = {
      topic,
      ...decodeEnvelope(raw),
      partition: 0,
      offset: String(offset),
    };
    const queue = this.queues.get(topic);
    this.queued++;
    if (queue) {
      queue.push(delivery);
      return;
    }
    const fresh = [delivery];
    this.queues.set(topic, fresh);
    const drain = this.drain(topic, fresh).finally(() => this.draining.delete(drain));
    this.draining.add(drain);
  }

  private async drain(topic: string, queue: Delivery[]): Promise<void> {
    try {
      for (let delivery = queue.shift(); delivery && !this.closed; delivery = queue.shift()) {
        this.queued--;
        if (!this.slots.tryAcquire()) await this.slots.acquire();
        try {
          if (this.closed) return;
          await this.handler(delivery);
        } catch (error) {
          // At-most-once: a failed delivery is not handed out again.
          this.report(
            error,
            'UNSUPPORTED',
            `A handler rejected message ${delivery.offset} on ${topic}; Redis Pub/Sub cannot hand it out again (at-most-once), so it is lost`,
          );
        } finally {
          this.slots.release();
        }
      }
    } finally {
      this.queues.delete(topic);
    }
  }

  /** Drops what is queued and waits for the handlers running now, up to `timeoutMs`. */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    this.queued = 0;
    for (const queue of this.queues.values()) queue.length = 0;
    await within(Promise.all(this.draining), timeoutMs);
  }
}
