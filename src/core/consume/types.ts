import type { Delivery } from '../message.js';
import type { Message } from '../message.js';
import type { RetryPolicy } from '../retry.js';
import type { StartPosition } from '../../transport/transport.js';

/**
 * Idempotent-consumer store. `process` runs `work` in one database transaction together
 * with recording `(group, messageId)`; if that pair was recorded before, `work` is not run
 * and `duplicate` is true. The transaction commits when `work` resolves and rolls back when
 * it throws, so a message's effects and its inbox row are written together or not at all.
 */
export interface Inbox<Tx> {
  process(
    group: string,
    messageId: string,
    work: (tx: Tx) => Promise<void>,
  ): Promise<{ duplicate: boolean }>;
}

/** What a handler is told besides the message. */
export interface ConsumeContext<Tx> {
  /** The inbox's transaction (undefined without an inbox): write effects through it. */
  readonly tx: Tx;
  /** 1 for the first try, then 2, 3, ... */
  readonly attempt: number;
  readonly group: string | undefined;
  /** Where the message came from (partition, offset, raw headers). */
  readonly delivery: Delivery;
  /** Aborts when the subscription closes: long handlers should stop early. */
  readonly signal: AbortSignal;
}

/**
 * A subscriber's work on one message. Resolving acknowledges the message; throwing retries
 * it (a `PermanentError` dead-letters it at once).
 */
export type Handler<T, Tx> = (message: Message<T>, context: ConsumeContext<Tx>) => Promise<void>;

/** How `Bus.subscribe` consumes a topic. */
export interface ConsumeOptions {
  /** Consumer group: members share the messages, each group gets all of them. */
  readonly group?: string;
  /**
   * The name the inbox records messages under. Defaults to `group`; give it on transports
   * without groups (Redis Pub/Sub), where every subscriber is its own consumer.
   */
  readonly consumer?: string;
  /** Where a group with no stored position starts (see `SubscribeOptions.from`). */
  readonly from?: StartPosition;
  /** Most partitions handled at once. Default: the transport's. */
  readonly concurrency?: number;
  /** Overrides of the bus's retry policy for this subscription. */
  readonly retry?: Partial<RetryPolicy>;
  /**
   * The id of a delivery for the inbox and `Message.id`, for messages whose publisher is not
   * ferry (a request id in a header, say). Return undefined to fall back to the transport's
   * rule: the publisher's `ferry-id` / AMQP `message-id`, else the broker's durable position
   * where it has one (`capabilities.identity`). A message with no id at all is handled
   * without deduplication, under a fresh id, and a warning is logged once per subscription.
   */
  readonly messageId?: (delivery: Delivery) => string | undefined;
}
