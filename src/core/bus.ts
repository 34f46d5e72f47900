import { FerryError } from './errors.js';
import { auditFromEnv, createLogger, infoLines, type Logger } from './log.js';
import { resolveRetry, type RetryPolicy } from './retry.js';
import type { Topic } from './topic.js';
import { consumer } from './consume/runtime.js';
import type { ConsumeOptions, Handler, Inbox } from './consume/types.js';
import {
  publisher,
  type PublishItem,
  type PublishOptions,
  type PublishReceipt,
} from './publish.js';
import { defaultInstrumentation, type Instrumentation } from '../observability/instrumentation.js';
import type { CloseOptions, Subscription, Transport } from '../transport/transport.js';
import { Subscriptions } from '../transport/shared.js';

export { deadLetterTopic } from './consume/dead-letter.js';
export type { ConsumeContext, ConsumeOptions, Handler, Inbox } from './consume/types.js';
export type { PublishItem, PublishOptions, PublishReceipt } from './publish.js';

/** How a bus is made: its transport, and what it logs, observes and retries by default. */
export interface BusOptions {
  /** Where messages go and come from. The bus owns it: `close()` closes it. */
  readonly transport: Transport;
  /**
   * Where warnings, errors and (with `audit`) audit lines go: any pino-compatible logger.
   * Default {@link createLogger} (warnings and errors, to stderr; `info` with `audit`).
   */
  readonly logger?: Logger;
  /**
   * One info line per publish and per consume outcome (id, topic, key, partition/offset,
   * group, attempt, duration, result, trace id). Default: the `FERRY_AUDIT` environment
   * variable (`1`/`true`), else off. Failures are logged as warnings either way.
   */
  readonly audit?: boolean;
  /**
   * Tracing and metrics hooks. Default: OpenTelemetry spans and trace context when an SDK is
   * registered, and ferry's Prometheus metrics (see `ferry/observability`).
   */
  readonly instrumentation?: Instrumentation;
  /** Default retry policy of subscriptions (see {@link RetryPolicy} for the defaults). */
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
  /**
   * Validates, encodes and publishes one message; resolves once the broker confirmed it.
   * Rejects with `SCHEMA_VIOLATION`, `CODEC_FAILED` or `MESSAGE_TOO_LARGE` before anything
   * is sent, or with the transport's error.
   */
  publish<T>(topic: Topic<T>, payload: T, options?: PublishOptions): Promise<PublishReceipt>;
  /**
   * As `publish`, for many messages in one broker round trip where the transport batches.
   * Every payload is validated and encoded before any is sent; receipts come in item order.
   */
  publishMany<T>(topic: Topic<T>, items: readonly PublishItem<T>[]): Promise<PublishReceipt[]>;
  /**
   * Consumes a topic. A handler that resolves acknowledges the message. One that throws is
   * retried with exponential backoff and jitter; after `retry.maxAttempts` (or at once for a
   * `PermanentError`) the message goes to `<topic>.dlq` with the error, attempt count and its
   * original headers. Undecodable or schema-invalid messages go to the DLQ with the reason.
   * While a message is retried, later messages of its partition wait; others go on.
   * With an inbox, each message's effects are applied once per group. Every delivery ends
   * in one outcome, logged as a warning when it failed and, with the audit trail, always.
   * Rejects with `INVALID_ARGUMENT` for an inbox without a group or consumer name, and with
   * `UNSUPPORTED` for what the transport cannot do.
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
  /**
   * Closes the subscriptions (waiting up to `timeoutMs` for handlers in flight; retries
   * waiting for their backoff stop at once, unacknowledged) and then the transport.
   */
  close(options?: CloseOptions): Promise<void>;
}

/**
 * The typed publish/subscribe API over one transport. Publishing validates the payload with
 * the topic's schema and encodes it with its codec (`SCHEMA_VIOLATION` / `CODEC_FAILED` before
 * anything is sent) and resolves once the broker confirmed the message. A subscription
 * decodes and validates each delivery, runs the handler (inside the inbox, when one is given,
 * so a message already handled by the group is skipped), retries a failing handler with
 * backoff and then dead-letters it to `<topic>.dlq` with the reason; a message that cannot be
 * decoded or validated is dead-lettered at once, never dropped. `close()` closes the
 * subscriptions, draining handlers in flight, and then the transport. Tracing and metrics
 * hooks fire once per publish call and once per delivery.
 */
export function createBus(options: BusOptions): Bus {
  const { transport } = options;
  const audit = options.audit ?? auditFromEnv();
  const logger = options.logger ?? createLogger(audit ? { level: 'info' } : {});
  const instrumentation = options.instrumentation ?? defaultInstrumentation();
  const subscriptions = new Subscriptions();
  const publishMany = publisher({ transport, instrumentation, logger, audit });

  async function subscribe<T, Tx>(
    topic: Topic<T>,
    consume: ConsumeOptions & { readonly inbox?: Inbox<Tx> },
    handler: Handler<T, Tx>,
  ): Promise<Subscription> {
    const policy = resolveRetry({ ...options.retry, ...consume.retry });
    const { group, inbox } = consume;
    const name = consume.consumer ?? group;
    if (inbox && name === undefined) {
      throw new FerryError(
        'INVALID_ARGUMENT',
        'An inbox needs a consumer group (or a consumer name on transports without groups)',
      );
    }
    const closing = new AbortController();
    const bindings = { event: 'consume', topic: topic.name, group };
    const inner = await transport.subscribe(
      {
        topic: topic.name,
        ...(group === undefined ? {} : { group }),
        ...(consume.from === undefined ? {} : { from: consume.from }),
        ...(consume.concurrency === undefined ? {} : { concurrency: consume.concurrency }),
      },
      consumer({
        transport,
        topic,
        group,
        source: { topic: topic.name, group },
        consumer: name,
        inbox,
        handler,
        policy,
        messageId: consume.messageId,
        instrumentation,
        logger: logger.child(bindings),
        auditLines: audit ? infoLines(logger, bindings) : undefined,
        signal: closing.signal,
        warnedNoId: false,
      }),
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
