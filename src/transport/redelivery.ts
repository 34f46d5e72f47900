import type { Delivery } from '../core/message.js';
import { pause } from '../core/retry.js';
import type { Semaphore } from './semaphore.js';
import type { DeliveryHandler } from './transport.js';

/**
 * The one sleep of the transports: resolves after `ms`, or at once when `signal` aborts
 * (loops check their own state after it). Never rejects.
 */
export const sleep: (ms: number, signal?: AbortSignal) => Promise<void> = pause;

/** How {@link handOut} hands a message out again. */
export interface HandOutOptions {
  /** Bounds handlers running at once; a permit is held while the handler runs. */
  readonly slots: Semaphore;
  /** Wait before handing a rejected message out again. */
  readonly redeliveryDelayMs: number;
  /** True once the message must no longer be handed out (its partition moved, closing). */
  readonly stopped: () => boolean;
  /** Aborts the wait before a redelivery (closing, partition moved). */
  readonly signal?: AbortSignal;
}

/**
 * The one redelivery path of the at-least-once transports. Hands `delivery` to `handler`
 * until the handler resolves, and resolves true then: the message is acknowledged. A
 * rejection leaves it unacknowledged and the same delivery is handed out again after
 * `redeliveryDelayMs`, before any later message of its partition. The consumer runtime
 * ends the loop by resolving: once the message is handled, or once it dead-lettered it
 * (retries used up, `PermanentError`, undecodable), so the dead-letter path is the bus's and
 * the same on every transport.
 *
 * Resolves false, without acknowledging, when `stopped()` turns true or `slots` closes
 * before the handler resolved: the message will be handed out again (to this member later,
 * or to the member that takes its partition).
 *
 * `rejectedOnce`: the caller already handed the message out once (holding a permit) and the
 * handler rejected; the loop starts with the wait before the next attempt. It lets a hot
 * loop call the handler itself and come here only on a rejection.
 */
export async function handOut(
  delivery: Delivery,
  handler: DeliveryHandler,
  options: HandOutOptions,
  rejectedOnce = false,
): Promise<boolean> {
  const { slots } = options;
  if (rejectedOnce) {
    if (options.stopped()) return false;
    await sleep(options.redeliveryDelayMs, options.signal);
  }
  for (;;) {
    if (options.stopped()) return false;
    // The common case without a waiting promise: a free permit.
    if (!slots.tryAcquire() && !(await slots.acquire())) return false;
    try {
      await handler(delivery);
      return true;
    } catch {
      // Not acknowledged: handed out again below, after the delay.
    } finally {
      slots.release();
    }
    if (options.stopped()) return false;
    await sleep(options.redeliveryDelayMs, options.signal);
  }
}
