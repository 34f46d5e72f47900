import { performance } from 'node:perf_hooks';
import type { Delivery, Headers } from '../core/message.js';
import { LabelCache, type Labelled } from './label-cache.js';
import { metrics } from './metrics.js';
import {
  errorType,
  messagingSystem,
  startProcessSpan,
  startProducerSpan,
  traceIdOf,
  type ProcessSpan,
  type ProducerSpan,
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
const UNPUBLISHED: PublishObservation = { headers: undefined, end(): void {} };

/** A delivery nobody observes: only its trace id, for the log. */
class Unobserved implements DeliveryObservation {
  constructor(private readonly headers: Readonly<Headers>) {}
  get traceId(): string | undefined {
    return traceIdOf(this.headers);
  }
  run<R>(work: () => R): R {
    return work();
  }
  retry(): void {}
  duplicate(): void {}
  deadLetter(): void {}
  end(): void {}
}

/** An {@link Instrumentation} that records nothing and costs nothing: for tests and benchmarks. */
export const noInstrumentation: Instrumentation = {
  publish: () => UNPUBLISHED,
  deliver: ({ delivery }) => new Unobserved(delivery.headers),
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
 * One delivery's observation: a class rather than an object of closures, so a delivery costs
 * one small allocation when no tracer is registered.
 */
class Delivered implements DeliveryObservation {
  private readonly started = performance.now();

  constructor(
    private readonly span: ProcessSpan | undefined,
    private readonly headers: Readonly<Headers>,
    private readonly system: string,
    private readonly topic: string,
    private readonly group: string,
    private readonly labels: Labelled | undefined,
  ) {}

  get traceId(): string | undefined {
    return this.span?.traceId ?? traceIdOf(this.headers);
  }

  run<R>(work: () => R): R {
    return this.span ? this.span.run(work) : work();
  }

  retry(attempt: number, error: unknown): void {
    this.span?.retry(attempt, error);
    this.labels?.retryCount.add();
  }

  duplicate(): void {
    this.span?.duplicate();
    this.labels?.duplicateCount.add();
  }

  deadLetter(reason: string, attempts: number, error: unknown): void {
    this.span?.deadLetter(reason, attempts, error);
    if (this.labels)
      metrics.deadLetters.add({
        messaging_destination_name: this.topic,
        messaging_consumer_group_name: this.group,
        reason,
      });
  }

  end(outcome: string, attempts: number, error?: unknown): void {
    this.span?.end(outcome, attempts, error);
    if (!this.labels) return;
    if (error === undefined) {
      this.labels.processedDuration.record(seconds(this.started));
      return;
    }
    metrics.processDuration.record(
      {
        messaging_system: this.system,
        messaging_destination_name: this.topic,
        messaging_consumer_group_name: this.group,
        error_type: errorType(error),
      },
      seconds(this.started),
    );
  }
}

/** One publish call's observation (see {@link Delivered}). */
class Published implements PublishObservation {
  private readonly started = performance.now();

  constructor(
    private readonly span: ProducerSpan | undefined,
    private readonly system: string,
    private readonly topic: string,
    private readonly count: number,
    private readonly labels: Labelled | undefined,
  ) {}

  get headers(): Headers | undefined {
    return this.span?.headers;
  }

  end(error?: unknown): void {
    this.span?.end(error);
    if (!this.labels) return;
    const labels =
      error === undefined
        ? this.labels.sent
        : {
            messaging_system: this.system,
            messaging_destination_name: this.topic,
            messaging_operation_name: 'send',
            error_type: errorType(error),
          };
    if (error === undefined) this.labels.sentCount.add(this.count);
    else metrics.sent.add(labels, this.count);
    metrics.operationDuration.record(labels, seconds(this.started));
  }
}

/**
 * The default {@link Instrumentation}: OpenTelemetry spans with trace context carried in
 * message headers (when an SDK is registered; otherwise the API's no-op), and ferry's
 * metrics in the Prometheus registry that `serveMetrics` serves.
 */
export function createInstrumentation(options: InstrumentationOptions = {}): Instrumentation {
  const tracing = options.tracing ?? true;
  const metered = options.metrics ?? true;
  const labelCache = new LabelCache();

  return {
    publish(info) {
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
      const labels = metered ? labelCache.get(system, info.topic, '') : undefined;
      return new Published(span, system, info.topic, info.count, labels);
    },

    deliver(info) {
      const system = messagingSystem(info.transport);
      const span = tracing
        ? startProcessSpan({
            system,
            delivery: info.delivery,
            messageId: info.messageId,
            group: info.group,
          })
        : undefined;
      const topic = info.delivery.topic;
      const group = info.group ?? '';
      const labels = metered ? labelCache.get(system, topic, group) : undefined;
      labels?.consumedCount.add();
      return new Delivered(span, info.delivery.headers, system, topic, group, labels);
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
