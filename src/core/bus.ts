import { performance } from 'node:perf_hooks';
import { describeError, FerryError, isFerryError, PermanentError } from './errors.js';
import { auditFromEnv, createLogger, type Logger } from './log.js';
import {
  buildOutgoing,
  deliveryCreatedAt,
  deliveryId,
  HEADER,
  newMessageId,
  type Delivery,
  type Headers,
  type Message,
  type OutgoingMessage,
} from './message.js';
import { defaultInstrumentation, type Instrumentation } from '../observability/instrumentation.js';
import { traceIdOf } from '../observability/tracing.js';
import { backoffDelay, resolveRetry, sleep, type RetryPolicy } from './retry.js';
import { checkPayload, type Topic } from './topic.js';
import type {
  CloseOptions,
  StartPosition,
  Subscription,
  Transport,
} from '../transport/transport.js';
import { Subscriptions } from '../transport/shared.js';

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

export type Handler<T, Tx> = (message: Message<T>, context: ConsumeContext<Tx>) => Promise<void>;

export interface ConsumeOptions {
  readonly group?: string;
  /**
   * The name the inbox records messages under. Defaults to `group`; give it on transports
   * without groups (Redis Pub/Sub), where every subscriber is its own consumer.
   */
  readonly consumer?: string;
  readonly from?: StartPosition;
  readonly concurrency?: number;
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

export interface PublishOptions {
  readonly key?: string;
  readonly headers?: Headers;
}

export interface PublishItem<T> extends PublishOptions {
  readonly payload: T;
}

export interface PublishReceipt {
  readonly id: string;
}

export interface BusOptions {
  readonly transport: Transport;
  /**
   * Where warnings, errors and (with `audit`) audit lines go: any pino-compatible logger.
   * Default {@link createLogger} (warnings and errors, to stderr).
   */
  readonly logger?: Logger;
  /**
   * One info line per publish and per consume outcome (id, topic, key, partition/offset,
   * group, attempt, duration, result, trace id). Default: the `FERRY_AUDIT` environment
   * variable (`1`/`true`), else off.
   */
  readonly audit?: boolean;
  /**
   * Tracing and metrics hooks. Default: OpenTelemetry spans and trace context when an SDK is
   * registered, and ferry's Prometheus metrics (see `ferry/observability`).
   */
  readonly instrumentation?: Instrumentation;
  /** Default retry policy for subscriptions. */
  readonly retry?: Partial<RetryPolicy>;
}

/**
 * Typed publish/subscribe over one transport, with the consumer runtime: retries with
 * backoff, dead-lettering to `<topic>.dlq`, schema checks on both sides, optional inbox, and
 * an audit line per publish and per consume outcome.
 */
export interface Bus {
  readonly transport: Transport;
  readonly logger: Logger;
  /** Validates, encodes and publishes one message; resolves once the broker confirmed it. */
  publish<T>(topic: Topic<T>, payload: T, options?: PublishOptions): Promise<PublishReceipt>;
  /** As `publish`, for many messages in one broker round trip where the transport batches. */
  publishMany<T>(topic: Topic<T>, items: readonly PublishItem<T>[]): Promise<PublishReceipt[]>;
  /**
   * Consumes a topic. A handler that resolves acknowledges the message. One that throws is
   * retried with exponential backoff and jitter; after `retry.maxAttempts` (or at once for a
   * `PermanentError`) the message goes to `<topic>.dlq` with the error, attempt count and its
   * original headers. Undecodable or schema-invalid messages go to the DLQ with the reason.
   * While a message is retried, later messages of its partition wait; others go on.
   * With an inbox, each message's effects are applied once per group.
   */
  subscribe<T, Tx>(
    topic: Topic<T>,
    options: ConsumeOptions &
      ({ readonly group: string } | { readonly consumer: string }) & { readonly inbox: Inbox<Tx> },
    handler: Handler<T, Tx>,
  ): Promise<Subscription>;
  subscribe<T>(
    topic: Topic<T>,
    options: ConsumeOptions,
    handler: Handler<T, undefined>,
  ): Promise<Subscription>;
  /** Closes subscriptions (draining in-flight handlers) and the transport. */
  close(options?: CloseOptions): Promise<void>;
}

/** The dead-letter topic of `topic`. */
export function deadLetterTopic(topic: string): string {
  return `${topic}.dlq`;
}

/**
 * The typed publish/subscribe API over one transport. Publishing validates the payload with
 * the topic's schema and encodes it with its codec (`SCHEMA_VIOLATION` / `CODEC_FAILED` before
 * anything is sent) and resolves once the broker confirmed the message. A subscription
 * decodes and validates each delivery, runs the handler (inside the inbox, when one is given,
 * so a message already handled by the group is skipped), retries a failing handler with
 * backoff and then dead-letters it to `<topic>.dlq` with the reason; a message that cannot be
 * decoded or validated is dead-lettered at once, never dropped. `close()` closes the
 * subscriptions, draining handlers in flight, and then the transport.
 */
export function createBus(options: BusOptions): Bus {
  const { transport } = options;
  const audit = options.audit ?? auditFromEnv();
  const logger = options.logger ?? createLogger(audit ? { level: 'info' } : {});
  const instrumentation = options.instrumentation ?? defaultInstrumentation();
  const subscriptions = new Subscriptions();

  function encode<T>(
    topic: Topic<T>,
    item: PublishItem<T>,
    payload: T,
    id: string,
    trace: Headers | undefined,
  ): OutgoingMessage {
    const message = buildOutgoing({
      id,
      topic: topic.name,
      key: item.key,
      body: topic.codec.encode(payload),
      contentType: topic.codec.contentType,
      createdAt: new Date(),
      headers: trace === undefined ? item.headers : { ...item.headers, ...trace },
    });
    const limit = transport.capabilities.maxMessageBytes;
    if (message.body.length > limit) {
      throw new FerryError(
        'MESSAGE_TOO_LARGE',
        `Message for ${topic.name} is ${message.body.length} bytes; ${transport.name} takes at most ${limit}`,
        { details: { topic: topic.name, bytes: message.body.length, limit } },
      );
    }
    return message;
  }

  async function publishMany<T>(
    topic: Topic<T>,
    items: readonly PublishItem<T>[],
  ): Promise<PublishReceipt[]> {
    const checked = items.map((item) => checkPayload(topic, item.payload));
    const payloads = checked.some((value) => value instanceof Promise)
      ? await Promise.all(checked)
      : (checked as T[]);
    const ids = items.map(() => newMessageId());
    const single = items.length === 1 ? items[0] : undefined;
    const observation = instrumentation.publish({
      transport: transport.name,
      topic: topic.name,
      count: items.length,
      messageId: single && ids[0],
      key: single?.key,
    });
    let messages: OutgoingMessage[];
    try {
      messages = items.map((item, index) =>
        encode(topic, item, payloads[index] as T, ids[index] as string, observation.headers),
      );
    } catch (error) {
      observation.end(error);
      throw error;
    }
    const started = performance.now();
    try {
      await transport.publish(messages);
      observation.end();
    } catch (error) {
      observation.end(error);
      for (const message of messages) {
        logger.error(
          { event: 'publish', ...describe(message), result: 'failed', err: error },
          'publish failed',
        );
      }
      throw error;
    }
    if (!audit || !logger.isLevelEnabled('info')) return messages.map(receiptOf);
    const durationMs = round(performance.now() - started);
    for (const message of messages) {
      logger.info(
        { event: 'publish', ...describe(message), durationMs, result: 'ok' },
        'published',
      );
    }
    return messages.map(receiptOf);
  }

  async function subscribe<T, Tx>(
    topic: Topic<T>,
    consume: ConsumeOptions & { readonly inbox?: Inbox<Tx> },
    handler: Handler<T, Tx>,
  ): Promise<Subscription> {
    const policy = resolveRetry({ ...options.retry, ...consume.retry });
    const { group, inbox } = consume;
    const consumer = consume.consumer ?? group;
    if (inbox && consumer === undefined) {
      throw new FerryError(
        'INVALID_ARGUMENT',
        'An inbox needs a consumer group (or a consumer name on transports without groups)',
      );
    }
    const closing = new AbortController();
    const base = { topic: topic.name, group };

    /**
     * Sends a delivery to `<topic>.dlq`. One that cannot go whole (its body over the limit)
     * goes without its body, saying so, with its size and where the original was read.
     */
    const deadLetter = async (
      delivery: Delivery,
      reason: 'failed' | 'permanent' | 'decode' | 'schema',
      error: unknown,
      attempts: number,
    ): Promise<void> => {
      const { identity, maxMessageBytes } = transport.capabilities;
      const headers: Headers = {
        ...delivery.headers,
        [HEADER.dlqReason]: reason,
        [HEADER.dlqError]: describeError(error).slice(0, 1000),
        [HEADER.dlqAttempts]: String(attempts),
        [HEADER.dlqTopic]: topic.name,
        [HEADER.dlqAt]: new Date().toISOString(),
        [HEADER.dlqOrigin]:
          identity === 'position'
            ? `${delivery.topic}/${delivery.partition}/${delivery.offset}`
            : delivery.topic,
        ...(group === undefined ? {} : { [HEADER.dlqGroup]: group }),
      };
      const letter = { topic: deadLetterTopic(topic.name), key: delivery.key };
      if (delivery.body.length <= maxMessageBytes) {
        try {
          await transport.publish([{ ...letter, body: delivery.body, headers }]);
          return;
        } catch (failure) {
          if (!isFerryError(failure, 'MESSAGE_TOO_LARGE')) throw failure;
        }
      }
      const bodyless = {
        [HEADER.dlqBody]: 'omitted',
        [HEADER.dlqSize]: String(delivery.body.length),
      };
      try {
        await transport.publish([{ ...letter, body: EMPTY, headers: { ...headers, ...bodyless } }]);
      } catch (failure) {
        if (!isFerryError(failure, 'MESSAGE_TOO_LARGE')) throw failure;
        // Even its headers are too many: keep only ferry's.
        const own = Object.fromEntries(
          Object.entries(headers).filter(([name]) => name.startsWith('ferry-')),
        );
        await transport.publish([{ ...letter, body: EMPTY, headers: { ...own, ...bodyless } }]);
      }
    };

    let warnedNoId = false;
    const idOf = (delivery: Delivery): string => {
      const id =
        consume.messageId?.(delivery) ?? deliveryId(delivery, transport.capabilities.identity);
      if (id !== undefined) return id;
      if (!warnedNoId && inbox) {
        warnedNoId = true;
        logger.warn(
          { event: 'consume', ...base, offset: delivery.offset },
          `${transport.name} gives messages without a publisher's id no stable id: they are handled without deduplication (give a messageId function to subscribe, or publish with message ids)`,
        );
      }
      return newMessageId();
    };

    const onDelivery = async (delivery: Delivery): Promise<void> => {
      const started = performance.now();
      let id: string;
      let unreadable: Error | undefined;
      try {
        id = idOf(delivery);
      } catch (error) {
        // The subscriber's messageId failed on it: dead-lettered below as undecodable.
        id = newMessageId();
        unreadable =
          error instanceof Error
            ? error
            : new FerryError('CODEC_FAILED', `messageId failed: ${describeError(error)}`);
      }
      const observation = instrumentation.deliver({
        transport: transport.name,
        delivery,
        messageId: id,
        group,
      });
      const outcome = (result: string, attempt: number, error?: unknown, observed = true): void => {
        if (observed && result !== 'retry') observation.end(result, attempt, error);
        if (error === undefined && !audit) return;
        if (!logger.isLevelEnabled(error === undefined ? 'info' : 'warn')) return;
        const line = {
          event: 'consume',
          ...base,
          id,
          traceId: observation.traceId,
          key: delivery.key,
          partition: delivery.partition,
          offset: delivery.offset,
          attempt,
          durationMs: round(performance.now() - started),
          result,
        };
        if (error === undefined) logger.info(line, 'consumed');
        else logger.warn({ ...line, err: error }, `consume ${result}`);
      };

      let message: Message<T>;
      try {
        if (unreadable !== undefined) throw unreadable;
        if (delivery.defect !== undefined) throw new FerryError('CODEC_FAILED', delivery.defect);
        const checked = checkPayload(topic, topic.codec.decode(delivery.body));
        const payload = checked instanceof Promise ? await checked : checked;
        message = {
          id,
          topic: delivery.topic,
          key: delivery.key,
          payload,
          headers: delivery.headers,
          createdAt: deliveryCreatedAt(delivery),
        };
      } catch (error) {
        const reason = isFerryError(error, 'SCHEMA_VIOLATION') ? 'schema' : 'decode';
        try {
          await deadLetterObserved(delivery, reason, error, 0);
        } catch (failure) {
          observation.end('failed', 0, failure);
          throw failure;
        }
        outcome('dead-lettered', 0, error);
        return;
      }

      let attempt = 1;
      try {
        for (; ; attempt++) {
          if (closing.signal.aborted) throw new FerryError('CLOSED', 'Subscription closed');
          const context = { attempt, group, delivery, signal: closing.signal, tx: undefined as Tx };
          try {
            if (inbox && consumer !== undefined) {
              const { duplicate } = await observation.run(() =>
                inbox.process(consumer, id, (tx) => handler(message, { ...context, tx })),
              );
              if (duplicate) observation.duplicate();
              outcome(duplicate ? 'duplicate' : 'ok', attempt);
            } else {
              await observation.run(() => handler(message, context));
              outcome('ok', attempt);
            }
            return;
          } catch (error) {
            const permanent = error instanceof PermanentError;
            if (permanent || attempt >= policy.maxAttempts) {
              await deadLetterObserved(
                delivery,
                permanent ? 'permanent' : 'failed',
                error,
                attempt,
              );
              outcome('dead-lettered', attempt, error);
              return;
            }
            observation.retry(attempt, error);
            outcome('retry', attempt, error);
            await sleep(backoffDelay(policy, attempt), closing.signal);
          }
        }
      } catch (error) {
        // Closed while retrying, or the dead-letter publish failed: left unacknowledged.
        observation.end('failed', attempt, error);
        throw error;
      }

      async function deadLetterObserved(
        target: Delivery,
        reason: 'failed' | 'permanent' | 'decode' | 'schema',
        error: unknown,
        attempts: number,
      ): Promise<void> {
        try {
          await deadLetter(target, reason, error, attempts);
        } catch (failure) {
          // The delivery's one outcome; it is left unacknowledged and handed out again.
          outcome('dead-letter-failed', attempts, failure, false);
          throw failure;
        }
        observation.deadLetter(reason, attempts, error);
      }
    };

    const inner = await transport.subscribe(
      {
        topic: topic.name,
        ...(group === undefined ? {} : { group }),
        ...(consume.from === undefined ? {} : { from: consume.from }),
        ...(consume.concurrency === undefined ? {} : { concurrency: consume.concurrency }),
      },
      onDelivery,
    );
    return subscriptions.add(async (closeOptions) => {
      closing.abort();
      await inner.close(closeOptions);
    });
  }

  return {
    transport,
    logger,
    publish: async (topic, payload, publishOptions = {}) => {
      const [receipt] = await publishMany(topic, [{ ...publishOptions, payload }]);
      return receipt as PublishReceipt;
    },
    publishMany,
    subscribe,
    async close(closeOptions) {
      await subscriptions.closeAll(closeOptions);
      await transport.close(closeOptions);
    },
  };
}

const EMPTY = Buffer.alloc(0);

function describe(message: OutgoingMessage): Record<string, unknown> {
  return {
    id: message.headers[HEADER.id],
    traceId: traceIdOf(message.headers),
    topic: message.topic,
    key: message.key,
  };
}

function receiptOf(message: OutgoingMessage): PublishReceipt {
  return { id: message.headers[HEADER.id] ?? '' };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
