import { v7 as uuidv7 } from 'uuid';

/**
 * Message headers: string names to string values, carried by every transport. Names starting
 * with `ferry-` are ferry's own (see `HEADER`); the rest pass through untouched.
 */
export type Headers = Record<string, string>;

/**
 * A message as handlers see it. `id` is a UUIDv7 made when the message was first published
 * or enqueued; it stays the same through relays, retries, dead-lettering and replay, so it
 * is the idempotency key end to end.
 */
export interface Message<T = unknown> {
  readonly id: string;
  readonly topic: string;
  readonly key: string | undefined;
  readonly payload: T;
  readonly headers: Readonly<Headers>;
  readonly createdAt: Date;
}

/** Header names ferry writes on the wire. Everything else in `headers` is the user's. */
export const HEADER = {
  id: 'ferry-id',
  createdAt: 'ferry-created-at',
  contentType: 'content-type',
  /** Set on dead-lettered messages. */
  dlqReason: 'ferry-dlq-reason',
  dlqError: 'ferry-dlq-error',
  dlqAttempts: 'ferry-dlq-attempts',
  dlqGroup: 'ferry-dlq-group',
  dlqTopic: 'ferry-dlq-topic',
  dlqAt: 'ferry-dlq-at',
  /** `omitted` on a dead letter sent without its body (too large to send whole). */
  dlqBody: 'ferry-dlq-body',
  /** Size in bytes of the body of a dead letter sent without it. */
  dlqSize: 'ferry-dlq-size',
  /** Where the original was read: `<topic>/<partition>/<offset>`, or `<topic>` on queue brokers. */
  dlqOrigin: 'ferry-dlq-origin',
} as const;

/** A new time-ordered message id (UUIDv7). */
export function newMessageId(): string {
  return uuidv7();
}

/**
 * A message as transports carry it: the encoded body, the key, and string headers that
 * already hold ferry's metadata (`ferry-id`, `ferry-created-at`, `content-type`).
 */
export interface OutgoingMessage {
  readonly topic: string;
  readonly key: string | undefined;
  readonly headers: Readonly<Headers>;
  readonly body: Buffer;
}

/** A message as a transport hands it to its subscriber. */
export interface Delivery extends OutgoingMessage {
  /** The partition (or queue/stream shard) it was read from; 0 where there is only one. */
  readonly partition: number;
  /** The transport's position of the message within its partition, as text. */
  readonly offset: string;
  /** When the broker took the message, where it records that (log time, record timestamp, stream id). */
  readonly brokerTime?: Date | undefined;
  /**
   * What the transport could not read of this message (headers that are not what they must
   * be). The consumer runtime dead-letters such a delivery with this reason.
   */
  readonly defect?: string | undefined;
}

/**
 * How a transport identifies a message whose publisher gave it no id (no `ferry-id`, no AMQP
 * `message-id`). `position`: by the broker's durable position `<topic>/<partition>/<offset>`,
 * unique and the same every time the message is handed out (a log offset, a stream id).
 * `none`: the broker has no such position (a queue's delivery tag or an arrival count restarts
 * with each connection), so such a message has no id and is handled without deduplication.
 */
export type MessageIdentity = 'position' | 'none';

/**
 * The id the inbox keys on: the publisher's (`ferry-id`), else the broker's durable position
 * where `identity` is `position`, else undefined (no id: not deduplicated).
 */
export function deliveryId(delivery: Delivery, identity: 'position'): string;
export function deliveryId(delivery: Delivery, identity: MessageIdentity): string | undefined;
export function deliveryId(delivery: Delivery, identity: MessageIdentity): string | undefined {
  const id = delivery.headers[HEADER.id];
  if (id !== undefined) return id;
  return identity === 'position'
    ? `${delivery.topic}/${delivery.partition}/${delivery.offset}`
    : undefined;
}

/** FNV-1a over UTF-8: the stable, fast key hash used to pick partitions everywhere in ferry. */
export function hashKey(key: string): number {
  let hash = 0x811c9dc5;
  const bytes = Buffer.from(key, 'utf8');
  for (const byte of bytes) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export function partitionFor(key: string, partitions: number): number {
  return hashKey(key) % partitions;
}

export interface OutgoingParts {
  readonly id: string;
  readonly topic: string;
  readonly key: string | undefined;
  readonly body: Buffer;
  readonly contentType: string;
  /** A date, or its ISO 8601 text (one text serves a whole batch). */
  readonly createdAt: Date | string;
  readonly headers?: Readonly<Headers> | undefined;
}

/** The wire form of a message: user headers plus ferry's own (which win on a clash). */
export function buildOutgoing(parts: OutgoingParts): OutgoingMessage {
  return {
    topic: parts.topic,
    key: parts.key,
    body: parts.body,
    headers: {
      ...parts.headers,
      [HEADER.id]: parts.id,
      [HEADER.createdAt]:
        typeof parts.createdAt === 'string' ? parts.createdAt : isoText(parts.createdAt),
      [HEADER.contentType]: parts.contentType,
    },
  };
}

// Messages built in a row often share their creation time (an outbox's rows of one
// transaction share PostgreSQL's now()): the last date's text is reused, not formatted again.
let lastIsoMs = NaN;
let lastIsoText = '';
function isoText(date: Date): string {
  const ms = date.getTime();
  if (ms !== lastIsoMs) {
    lastIsoText = date.toISOString();
    lastIsoMs = ms;
  }
  return lastIsoText;
}

// Messages published together carry one created-at text (and a busy producer's messages
// share the millisecond), so the last text read is kept with its time: most deliveries cost a
// comparison instead of a date parse. One per partition (slots by its low bits): a consumer
// takes turns between partitions, whose messages at a time come from different batches.
const CREATED_SLOTS = 16;
const lastCreatedText = new Array<string | undefined>(CREATED_SLOTS).fill(undefined);
const lastCreatedMs = new Array<number>(CREATED_SLOTS).fill(NaN);

/**
 * When the message was first made, in ms since the epoch: its header, else when the broker
 * took it, else `fallbackMs` (default now).
 */
export function deliveryCreatedMs(delivery: Delivery, fallbackMs = Date.now()): number {
  const text = delivery.headers[HEADER.createdAt];
  if (text !== undefined) {
    const slot = delivery.partition & (CREATED_SLOTS - 1);
    let ms = lastCreatedMs[slot] ?? NaN;
    if (text !== lastCreatedText[slot]) {
      lastCreatedText[slot] = text;
      lastCreatedMs[slot] = ms = Date.parse(text);
    }
    if (!Number.isNaN(ms)) return ms;
  }
  return delivery.brokerTime?.getTime() ?? fallbackMs;
}

/**
 * When the message was first made: its header, else when the broker took it, else
 * `fallbackMs` (default now).
 */
export function deliveryCreatedAt(delivery: Delivery, fallbackMs = Date.now()): Date {
  return new Date(deliveryCreatedMs(delivery, fallbackMs));
}
