import type { PublishItem, PublishOptions, PublishReceipt } from '../core/bus.js';
import { FerryError, isFerryError } from '../core/errors.js';
import { HEADER, newMessageId } from '../core/message.js';
import { defaultInstrumentation } from '../observability/instrumentation.js';
import type { Topic } from '../core/topic.js';
import { checkPayload } from '../core/topic.js';
import { createRelay, type Relay, type RelayOptions } from './relay/index.js';
import type { NewOutboxRecord, OutboxStore } from './store.js';

/**
 * The transactional outbox: `enqueue` writes a message into the caller's database
 * transaction, next to the business rows it belongs to; a relay publishes it after the
 * transaction commits. A rolled-back transaction takes its messages with it.
 *
 * Delivery from the outbox is at-least-once: a relay that dies between publishing and
 * marking publishes again, so consumers should use an inbox. Messages with the same key are
 * published in enqueue order (they share a partition, and a partition has one relay at a time).
 */
export interface Outbox<Tx> {
  readonly store: OutboxStore<Tx>;
  /** Creates the outbox tables if missing (idempotent). */
  migrate(): Promise<void>;
  /**
   * Validates the payload with the topic's schema, encodes it with the topic's codec and
   * inserts it inside the open transaction `tx`. Throws `SCHEMA_VIOLATION` or
   * `CODEC_FAILED` before anything is written. When the schema validates synchronously the
   * row is inserted before this returns its promise (so it works inside synchronous
   * transaction callbacks of drivers that offer them).
   */
  enqueue<T>(
    tx: Tx,
    topic: Topic<T>,
    payload: T,
    options?: PublishOptions,
  ): Promise<PublishReceipt>;
  /** As `enqueue`, for many messages of one topic in one insert. */
  enqueueMany<T>(
    tx: Tx,
    topic: Topic<T>,
    items: readonly PublishItem<T>[],
  ): Promise<PublishReceipt[]>;
  /** A relay over this outbox's store; call `start()` on it. */
  relay(options: RelayOptions): Relay;
}

/**
 * The transactional outbox over `store`: `enqueue` writes a message in the caller's database
 * transaction, so it is published (by a relay) exactly when that transaction commits, and
 * never when it rolls back. Payloads are validated and encoded as `bus.publish` does.
 */
export function createOutbox<Tx>(store: OutboxStore<Tx>): Outbox<Tx> {
  const enqueueMany = <T>(
    tx: Tx,
    topic: Topic<T>,
    items: readonly PublishItem<T>[],
  ): Promise<PublishReceipt[]> => {
    let prepared: NewOutboxRecord[] | Promise<NewOutboxRecord[]>;
    try {
      prepared = prepareRecords(topic, items, false);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    const insert = async (records: NewOutboxRecord[]): Promise<PublishReceipt[]> => {
      await store.insert(tx, records);
      return records.map((record) => ({ id: record.id }));
    };
    // Insert synchronously when validation was synchronous: see `enqueue`.
    if (prepared instanceof Promise) return prepared.then(insert);
    return insert(prepared);
  };

  return {
    store,
    migrate: () => store.migrate(),
    enqueue: async (tx, topic, payload, options = {}) => {
      const [receipt] = await enqueueMany(tx, topic, [{ ...options, payload }]);
      return receipt as PublishReceipt;
    },
    enqueueMany,
    relay: (options) => createRelay(store, options),
  };
}

/**
 * Validates and encodes outbox rows (their partition is the store's to compute). Returns them synchronously when the schema validates
 * synchronously; with `sync`, throws `UNSUPPORTED` instead of returning a promise.
 */
export function prepareRecords<T>(
  topic: Topic<T>,
  items: readonly PublishItem<T>[],
  sync: true,
): NewOutboxRecord[];
export function prepareRecords<T>(
  topic: Topic<T>,
  items: readonly PublishItem<T>[],
  sync: boolean,
): NewOutboxRecord[] | Promise<NewOutboxRecord[]>;
export function prepareRecords<T>(
  topic: Topic<T>,
  items: readonly PublishItem<T>[],
  sync: boolean,
): NewOutboxRecord[] | Promise<NewOutboxRecord[]> {
  const values: Array<T | Promise<T>> = items.map((item) => checkPayload(topic, item.payload));
  const build = (payloads: readonly T[]): NewOutboxRecord[] =>
    payloads.map((payload, index) => {
      const item = items[index] as PublishItem<T>;
      const id = newMessageId();
      const key = item.key;
      const body = encode(topic, payload);
      // The active trace context travels in the row, so the consumer continues this trace.
      const trace = defaultInstrumentation().enqueue({ topic: topic.name, messageId: id, key });
      return {
        id,
        topic: topic.name,
        key,
        body,
        headers: { ...item.headers, ...trace, [HEADER.contentType]: topic.codec.contentType },
        createdAt: new Date(),
      };
    });
  if (!values.some((value) => value instanceof Promise)) return build(values as T[]);
  if (sync) {
    throw new FerryError(
      'UNSUPPORTED',
      `The schema of ${topic.name} validates asynchronously; use the async enqueue inside an async transaction`,
    );
  }
  return Promise.all(values).then(build);
}

function encode<T>(topic: Topic<T>, payload: T): Buffer {
  try {
    return topic.codec.encode(payload);
  } catch (cause) {
    if (isFerryError(cause)) throw cause;
    throw new FerryError('CODEC_FAILED', `Payload for ${topic.name} cannot be encoded`, {
      cause,
      details: { topic: topic.name },
    });
  }
}
