import { performance } from 'node:perf_hooks';
import type { Delivery, Headers } from '../core/message.js';
import { metrics } from './metrics.js';
import {
  errorType,
  messagingSystem,
  startProcessSpan,
  startProducerSpan,
  traceIdOf,
  type ProcessSpan,
} from './tracing.js';

/** One publish call (a batch of one topic), from before encoding to the broker's confirm. */
export interface PublishObservation {
  /** Headers to add to every message of the batch (the trace context), if any. */
  readonly headers: Headers | undefined;
  end(error?: unknown): void;
}

/** One delivery, through every attempt, to its one outcome. */
export interface DeliveryObservation {
  /** The trace id to log with the delivery, if it has one. */
  readonly traceId: string | undefined;
  /** Runs a handler attempt inside the delivery's trace context. */
  run<R>(work: () => R): R;
  retry(attempt: number, error: unknown): void;
  duplicate(): void;
  deadLetter(reason: string, attempts: number, error: unknown): void;
  /** `ok`, `duplicate`, `dead-lettered`, or `failed` (left unacknowledged). */
  end(outcome: string, attempts: number, error?: unknown): void;
}

/** The rows of one relay publish call. */
export interface RelayRow {
  readonly id: string;
  readonly topic: string;
  readonly key: string | undefined;
  readonly partition: number;
  readonly headers: Readonly<Headers>;
}

/**
 * Where tracing and metrics plug into the bus, the outbox and the relay. Each method is
 * called once per operation and returns the object that follows it to its end; an
 * implementation must not throw. `createInstrumentation()` is the default (OpenTelemetry
 * when an SDK is registered, plus ferry's Prometheus metrics); `noInstrumentation` records
 * nothing.
 */
export interface Instrumentation {
  publish(info: {
    readonly transport: string;
    readonly topic: string;
    readonly count: number;
    readonly messageId?: string | undefined;
    readonly key?: string | undefined;
  }): PublishObservation;
  deliver(info: {
    readonly transport: string;
    readonly delivery: Delivery;
    readonly messageId: string;
    readonly group: string | undefined;
  }): DeliveryObservation;
  /** Trace context to store in a new outbox row's headers, if any. */
  enqueue(info: {
    readonly topic: string;
    readonly messageId: string;
    readonly key: string | undefined;
  }): Headers | undefined;
  /** A relay hands `rows` to the transport; `end` when it confirmed or failed. */
  relayPublish(info: {
    readonly transport: string;
    readonly relay: string;
    readonly rows: readonly RelayRow[];
  }): { end(error?: unknown): void };
  /** A row the broker refused: scheduled again, or marked dead. */
  relayFailed(info: { readonly relay: string; readonly dead: boolean }): void;
}

const NOTHING = { end(): void {} };

/** An {@link Instrumentation} that records nothing and costs nothing: for tests and benchmarks. */
export const noInstrumentation: Instrumentation = {
  publish: () => ({ headers: undefined, end() {} }),
  deliver: ({ delivery }) => ({
    traceId: traceIdOf(delivery.headers),
    run: (work) => work(),
    retry() {},
    duplicate() {},
    deadLetter() {},
    end() {},
  }),
  enqueue: () => undefined,
  relayPublish: () => NOTHING,
  relayFailed() {},
};

/** What {@link createInstrumentation} records; both on by default. */
export interface InstrumentationOptions {
  /** Spans and trace context through `@opentelemetry/api`, when an SDK is registered. Default true. */
  readonly tracing?: boolean;
  /** ferry's Prometheus metrics (and OpenTelemetry metrics when a meter provider is registered). Default true. */
  readonly metrics?: boolean;
}

const seconds = (started: number): number => (performance.now() - started) / 1000;

/**
 * The default {@link Instrumentation}: OpenTelemetry spans with trace context carried in
 * message headers (when an SDK is registered; otherwise the API's no-op), and ferry's
 * metrics in the Prometheus registry that `serveMetrics` serves.
 */
export function createInstrumentation(options: InstrumentationOptions = {}): Instrumentation {
  const tracing = options.tracing ?? true;
  const metered = options.metrics ?? true;

  // Label objects of the successful path, built once per destination rather than per message:
  // a consumer or producer sees few distinct (system, topic, group) triples.
  interface Labelled {
    readonly consumed: Readonly<Record<string, string>>;
    readonly processed: Readonly<Record<string, string>>;
    readonly sent: Readonly<Record<string, string>>;
  }
  const labelCache = new Map<string, Labelled>();
  const labelsFor = (system: string, topic: string, group: string): Labelled => {
    const key = `${system}\u0000${topic}\u0000${group}`;
    let labels = labelCache.get(key);
    if (!labels) {
      labels = {
        consumed: {
          messaging_system: system,
          messaging_destination_name: topic,
          messaging_consumer_group_name: group,
          messaging_operation_name: 'process',
          error_type: '',
        },
        processed: {
          messaging_system: system,
          messaging_destination_name: topic,
          messaging_consumer_group_name: group,
          error_type: '',
        },
        sent: {
          messaging_system: system,
          messaging_destination_name: topic,
          messaging_operation_name: 'send',
          error_type: '',
        },
      };
      labelCache.set(key, labels);
    }
    return labels;
  };

  return {
    publish(info) {
      const started = performance.now();
      const system = messagingSystem(info.transport);
      const span = tracing
        ? startProducerSpan({
            system,
            topic: info.topic,
            operation: 'send',
            count: info.count,
            messageId: info.messageId,
            key: info.key,
          })
        : undefined;
      return {
        headers: span?.headers,
        end(error) {
          span?.end(error);
          if (!metered) return;
          const labels =
            error === undefined
              ? labelsFor(system, info.topic, '').sent
              : {
                  messaging_system: system,
                  messaging_destination_name: info.topic,
                  messaging_operation_name: 'send',
                  error_type: errorType(error),
                };
          metrics.sent.add(labels, info.count);
          metrics.operationDuration.record(labels, seconds(started));
        },
      };
    },

    deliver(info) {
      const started = performance.now();
      const system = messagingSystem(info.transport);
      const span: ProcessSpan | undefined = tracing
        ? startProcessSpan({
            system,
            delivery: info.delivery,
            messageId: info.messageId,
            group: info.group,
          })
        : undefined;
      const topic = info.delivery.topic;
      const group = info.group ?? '';
      if (metered) metrics.consumed.add(labelsFor(system, topic, group).consumed);
      return {
        traceId: span?.traceId ?? traceIdOf(info.delivery.headers),
        run: span ? (work) => span.run(work) : (work) => work(),
        retry(attempt, error) {
          span?.retry(attempt, error);
          if (metered)
            metrics.retries.add({
              messaging_destination_name: topic,
              messaging_consumer_group_name: group,
            });
        },
        duplicate() {
          span?.duplicate();
          if (metered)
            metrics.inboxDuplicates.add({
              messaging_destination_name: topic,
              messaging_consumer_group_name: group,
            });
        },
        deadLetter(reason, attempts, error) {
          span?.deadLetter(reason, attempts, error);
          if (metered)
            metrics.deadLetters.add({
              messaging_destination_name: topic,
              messaging_consumer_group_name: group,
              reason,
            });
        },
        end(outcome, attempts, error) {
          span?.end(outcome, attempts, error);
          if (!metered) return;
          metrics.processDuration.record(
            error === undefined
              ? labelsFor(system, topic, group).processed
              : {
                  messaging_system: system,
                  messaging_destination_name: topic,
                  messaging_consumer_group_name: group,
                  error_type: errorType(error),
                },
            seconds(started),
          );
        },
      };
    },

    enqueue(info) {
      if (!tracing) return undefined;
      const span = startProducerSpan({
        system: undefined,
        topic: info.topic,
        operation: 'create',
        count: 1,
        messageId: info.messageId,
        key: info.key,
        attributes: { 'ferry.outbox': true },
      });
      if (!span) return undefined;
      span.end();
      return span.headers;
    },

    relayPublish(info) {
      const started = performance.now();
      const system = messagingSystem(info.transport);
      const spans = tracing
        ? info.rows.map((row) =>
            startProducerSpan({
              system,
              topic: row.topic,
              operation: 'send',
              count: 1,
              messageId: row.id,
              key: row.key,
              parent: row.headers,
              attributes: { 'ferry.relay': info.relay, 'ferry.outbox.partition': row.partition },
            }),
          )
        : [];
      if (metered) metrics.relayBatch.record({ relay: info.relay }, info.rows.length);
      return {
        end(error) {
          for (const span of spans) span?.end(error);
          if (!metered) return;
          const duration = seconds(started);
          const perTopic = new Map<string, number>();
          for (const row of info.rows) perTopic.set(row.topic, (perTopic.get(row.topic) ?? 0) + 1);
          const failed = error === undefined ? '' : errorType(error);
          for (const [topic, count] of perTopic) {
            const labels = {
              messaging_system: system,
              messaging_destination_name: topic,
              messaging_operation_name: 'send',
              error_type: failed,
            };
            metrics.sent.add(labels, count);
            metrics.operationDuration.record(labels, duration);
          }
          if (error === undefined)
            metrics.relayPublished.add({ relay: info.relay }, info.rows.length);
        },
      };
    },

    relayFailed(info) {
      if (metered)
        metrics.relayFailures.add({ relay: info.relay, outcome: info.dead ? 'dead' : 'retry' });
    },
  };
}

let fallback: Instrumentation | undefined;

/** The instrumentation used where none is given: {@link createInstrumentation} with defaults. */
export function defaultInstrumentation(): Instrumentation {
  return (fallback ??= createInstrumentation());
}
