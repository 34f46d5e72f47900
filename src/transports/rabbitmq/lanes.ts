import { HEADER, hashKey, type Delivery } from '../../core/message.js';
import { pause } from '../../core/retry.js';
import type { DeliveryHandler } from '../../transport/transport.js';

/** A message pushed by the broker, with the calls that settle it. */
export interface Inbound {
  readonly delivery: Delivery;
  /** The broker handed this message out before (it was nacked, or a consumer went away). */
  readonly redelivered: boolean;
  ack(): void;
  /** Gives the message back to the queue (requeue). */
  nack(): void;
}

interface Lane {
  readonly queue: Inbound[];
  running: boolean;
  /** After a failure: fresh messages are given back until the redelivered ones come in. */
  blocked: boolean;
  current: Promise<void> | undefined;
  handling: Inbound | undefined;
}

export interface LanesOptions {
  /** Lanes (keys handled at once). 1 keeps the whole queue in order. */
  readonly lanes: number;
  /** Wait before giving a rejected message back, so a failing handler does not spin. */
  readonly redeliveryDelayMs: number;
  /**
   * What closing does with messages not yet started: `nack` them (after the consumer was
   * cancelled), or `hold` them unsettled for the connection's close to give back (STOMP, where
   * the consumer must stay subscribed for acks to count, and a nack would come straight back).
   */
  readonly onClose?: 'nack' | 'hold';
}

/**
 * Turns a push consumer into ordered handling: messages go to lanes by key (by id when
 * keyless), each lane runs one handler at a time in arrival order.
 *
 * When a handler rejects, its message and every message queued behind it in the lane are
 * nacked with requeue, in arrival order. RabbitMQ puts requeued messages back at the head
 * of the queue (classic and quorum alike) and hands them out again in the order they were
 * nacked, so the failed message comes back before the later ones. Messages that were
 * already on the wire are nacked too until a redelivered message reaches the lane.
 */
export class Lanes {
  private readonly lanes: Lane[];
  private closing = false;

  constructor(
    private readonly handler: DeliveryHandler,
    private readonly options: LanesOptions,
  ) {
    this.lanes = Array.from({ length: Math.max(1, options.lanes) }, () => ({
      queue: [],
      running: false,
      blocked: false,
      current: undefined,
      handling: undefined,
    }));
  }

  push(message: Inbound): void {
    if (this.closing) {
      if (this.options.onClose !== 'hold') message.nack();
      return;
    }
    const { delivery } = message;
    const lane = this.lanes[
      this.lanes.length === 1
        ? 0
        : hashKey(delivery.key ?? delivery.headers[HEADER.id] ?? delivery.offset) %
          this.lanes.length
    ] as Lane;
    if (lane.blocked) {
      if (!message.redelivered) {
        message.nack();
        return;
      }
      lane.blocked = false;
    }
    lane.queue.push(message);
    if (!lane.running) {
      lane.running = true;
      lane.current = this.run(lane);
    }
  }

  private async run(lane: Lane): Promise<void> {
    for (let message = lane.queue.shift(); message; message = lane.queue.shift()) {
      lane.handling = message;
      try {
        await this.handler(message.delivery);
        message.ack();
      } catch {
        if (!this.closing) await pause(this.options.redeliveryDelayMs);
        message.nack();
        for (const later of lane.queue.splice(0)) later.nack();
        lane.blocked = !this.closing;
      }
    }
    lane.handling = undefined;
    lane.running = false;
  }

  /**
   * After a `drain` that timed out: gives back the messages whose handlers are still running
   * (their later ack or nack is ignored by the settle guard of the `Inbound`).
   */
  abandon(): void {
    for (const lane of this.lanes) lane.handling?.nack();
  }

  /** The connection is gone: the broker takes back what was not acked; forget it here. */
  reset(): void {
    for (const lane of this.lanes) {
      lane.queue.length = 0;
      lane.blocked = false;
    }
  }

  /**
   * Stops: queued messages are nacked at once, handlers in flight get up to `timeoutMs` (what
   * resolves is acked). Resolves true if all finished in time.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    this.closing = true;
    for (const lane of this.lanes) {
      const queued = lane.queue.splice(0);
      if (this.options.onClose !== 'hold') for (const message of queued) message.nack();
    }
    const running = this.lanes.flatMap((lane) => (lane.current ? [lane.current] : []));
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      Promise.all(running).then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    return finished;
  }
}
