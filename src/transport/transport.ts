import type { Delivery, MessageIdentity, OutgoingMessage } from '../core/message.js';

/** What a transport promises. The consumer runtime and `ferry advise` read these. */
export interface TransportCapabilities {
  /** Messages survive a broker restart and wait for consumers that are down. */
  readonly persistent: boolean;
  /** Consumer groups: each group gets every message; members of a group share them. */
  readonly groups: boolean;
  /** The unit inside which delivery order is kept. */
  readonly order: 'partition' | 'queue' | 'stream' | 'channel';
  /** A group can be moved back to an earlier position (`seek`). */
  readonly replay: boolean;
  /**
   * `at-least-once`: a message is handed out until a handler resolves for it, so it may be
   * handled more than once (use an inbox). `at-most-once`: a message is handed out at most
   * once and is lost when nobody listens or a handler fails.
   */
  readonly delivery: 'at-least-once' | 'at-most-once';
  /** Largest body, in bytes, that `publish` accepts. */
  readonly maxMessageBytes: number;
  /**
   * The id of a message whose publisher gave none (see {@link MessageIdentity}): `position`
   * (the broker's durable position) or `none` (handled without deduplication, unless the
   * subscriber's `messageId` finds one). A publisher's `ferry-id` (AMQP `message-id`) always wins.
   */
  readonly identity: MessageIdentity;
}

/** Where reading starts: the oldest message the broker keeps, or only messages from now on. */
export type StartPosition = 'earliest' | 'latest';

/** What a transport subscription reads, as whom, and how many partitions at once. */
export interface SubscribeOptions {
  readonly topic: string;
  /**
   * Consumer group. Members of one group share the messages; each group gets all of them.
   * Without a group the subscription is private: it gets every message published while it
   * lives, starting at `from`, and keeps no position after it closes.
   */
  readonly group?: string;
  /**
   * Where a group with no stored position (or a private subscription) starts. Default: groups
   * `earliest`, private `latest`. `earliest` where the broker keeps no past messages
   * (`capabilities.replay` false) is `UNSUPPORTED`.
   */
  readonly from?: StartPosition;
  /** Most partitions (ordering units) handled at once. Default: transport-specific. */
  readonly concurrency?: number;
}

/**
 * Called once per delivery. Resolving acknowledges the message (it will not be handed to
 * this group again); rejecting leaves it unacknowledged, and the transport hands it out
 * again, before any later message of the same partition.
 */
export type DeliveryHandler = (delivery: Delivery) => Promise<void>;

/** How long `close()` waits for handlers still running. */
export interface CloseOptions {
  /** How long to wait for in-flight handlers before abandoning them (unacknowledged). Default 30 s. */
  readonly timeoutMs?: number;
}

/** A live subscription. */
export interface Subscription {
  /**
   * Stops taking new messages and waits for in-flight handlers, up to `timeoutMs`; what has
   * resolved by then is acknowledged, what has not is left unacknowledged and will be handed
   * out again (to another member, or to this group later). Idempotent.
   */
  close(options?: CloseOptions): Promise<void>;
}

/**
 * Where `seek` moves a group: to the start or end, to the first message at or after a time,
 * or to given offsets per partition. Messages before the target are skipped; after it,
 * handed out again (replay).
 */
export type SeekTarget =
  | { readonly position: StartPosition }
  | { readonly timestamp: Date }
  /** Offsets per partition, as the transport reports them in `Delivery.offset`. */
  | { readonly offsets: Readonly<Record<number, string>> };

/** Which dead letters `redrive` moves back to their topic. */
export interface RedriveOptions {
  /** Only dead letters of this group (header `ferry-dlq-group`). */
  readonly group?: string;
  /** Move at most this many. Default: all. */
  readonly limit?: number;
  /**
   * Only the dead letters with these message ids. Others of the same group read on the way
   * are appended to the dead-letter topic again, so they stay dead letters.
   */
  readonly ids?: readonly string[];
}

/** What a `redrive` did: dead letters moved back and dead letters kept. */
export interface RedriveResult {
  /** Messages put back. */
  readonly moved: number;
  /** Dead letters left where they were (other groups). */
  readonly kept: number;
}

/** How far a group is behind on one partition: `lag` messages between its committed offset and the end. */
export interface PartitionLag {
  readonly partition: number;
  /** Next offset the group will read, or undefined if it has never committed. */
  readonly committed: string | undefined;
  /** Offset after the newest message. */
  readonly end: string;
  readonly lag: number;
}

/**
 * A message broker seen through one small contract. Every implementation passes the shared
 * transport contract suite (`test/contract/transport.ts`) with its capability flags.
 *
 * Delivery order: within a partition (or queue/stream), messages are handed to the handler
 * one at a time in publish order; different partitions are handled concurrently. Messages
 * with the same key always land in the same partition.
 */
export interface Transport {
  /** Short name for logs: `sqlite`, `kafka`, ... */
  readonly name: string;
  readonly capabilities: TransportCapabilities;

  /**
   * Publishes a batch. Resolves once the broker holds every message as durably as the
   * transport promises (persisted / confirmed); messages with the same key keep their order.
   * Rejects with `PUBLISH_FAILED` (or `MESSAGE_TOO_LARGE`, `CONNECTION_FAILED`) if any
   * message was not confirmed: the caller must treat the whole batch as not sent.
   */
  publish(messages: readonly OutgoingMessage[]): Promise<void>;

  /**
   * Starts consuming. Resolves when the subscription is live (joined its group, queue
   * declared), so that messages published after it resolves are delivered to it.
   * Rejects with `UNSUPPORTED` for a group on a transport without groups, and for a `from`
   * it cannot honour.
   */
  subscribe(options: SubscribeOptions, handler: DeliveryHandler): Promise<Subscription>;

  /**
   * Moves a group's position on a topic. Takes effect for the group's next subscription
   * (close its live ones first). Rejects with `UNSUPPORTED` when `capabilities.replay` is false.
   */
  seek(topic: string, group: string, target: SeekTarget): Promise<void>;

  /**
   * Moves dead letters of `topic` back where the broker has its own way to do it (RabbitMQ:
   * each to the queue of the group it failed in). Without it, `redrive()` from `ferry`
   * re-publishes `<topic>.dlq` to the topic.
   */
  redrive?(topic: string, options?: RedriveOptions): Promise<RedriveResult>;

  /** Consumer lag of a group per partition, where the transport can tell. */
  lag?(topic: string, group: string): Promise<PartitionLag[]>;

  /**
   * Resolves when the broker answers a round trip now, rejects (`CONNECTION_FAILED`) when it
   * does not. Readiness probes use it; it never waits for a reconnect.
   */
  ping?(): Promise<void>;

  /**
   * Closes every subscription (as `Subscription.close`), waits for publishes in flight, then
   * closes connections. Idempotent.
   */
  close(options?: CloseOptions): Promise<void>;
}
