import type { Attributes, Context, Link, Span, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { Delivery, Headers } from '../core/message.js';
import { activeTraceApi, type OtelApi } from './otel.js';

/** The instrumentation scope name spans and metrics are recorded under. */
export const SCOPE = 'ferry';

// Numeric values of the api's enums, so that this module never needs the api loaded.
const PRODUCER = 3 as SpanKind.PRODUCER;
const CONSUMER = 4 as SpanKind.CONSUMER;
const ERROR = 2 as SpanStatusCode.ERROR;

/** W3C trace context headers, as the conventions and `traceparent`-aware tools expect. */
export const TRACE_HEADERS = ['traceparent', 'tracestate'] as const;

/**
 * `messaging.system` for a transport name: the conventions' well-known value where there is
 * one (`kafka`, `rabbitmq`), else the transport's own name.
 */
export function messagingSystem(transport: string): string {
  if (transport === 'stomp' || transport === 'rabbitmq') return 'rabbitmq';
  if (transport.startsWith('redis')) return 'redis';
  return transport;
}

/** The trace id in a `traceparent` header, for log lines; undefined when absent or malformed. */
export function traceIdOf(headers: Readonly<Headers>): string | undefined {
  const parent = headers.traceparent;
  if (parent === undefined || parent.length < 55 || parent[2] !== '-') return undefined;
  return parent.slice(3, 35);
}

const setter = {
  set(carrier: Headers, key: string, value: string): void {
    carrier[key] = value;
  },
};
const getter = {
  get: (carrier: Readonly<Headers>, key: string): string | undefined => carrier[key],
  keys: (carrier: Readonly<Headers>): string[] => Object.keys(carrier),
};

function inject(api: typeof OtelApi, context: Context): Headers {
  const carrier: Headers = {};
  api.propagation.inject(context, carrier, setter);
  return carrier;
}

function fail(span: Span, error: unknown): void {
  const exception = error instanceof Error ? error : new Error(String(error));
  span.recordException(exception);
  span.setStatus({ code: ERROR, message: exception.message });
  span.setAttribute('error.type', errorType(error));
}

/** `error.type` per the conventions: the ferry code, else the error class name. */
export function errorType(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') return code;
  return error instanceof Error ? error.constructor.name : '_OTHER';
}

export interface ProducerSpan {
  /** Trace context to write into the message headers (empty when not sampled or no propagator). */
  readonly headers: Headers;
  end(error?: unknown): void;
}

export interface ProducerInfo {
  readonly system: string | undefined;
  readonly topic: string;
  /** `create` (outbox enqueue) or `send` (publish). */
  readonly operation: 'create' | 'send';
  readonly count: number;
  readonly messageId?: string | undefined;
  readonly key?: string | undefined;
  readonly partition?: number | undefined;
  /** Context to start under instead of the active one (a relay continues the row's context). */
  readonly parent?: Readonly<Headers> | undefined;
  readonly attributes?: Readonly<Record<string, string | number | boolean>>;
}

/**
 * Starts a producer span (`create <topic>` or `send <topic>`) under the active context, or
 * returns undefined when no tracer provider is registered.
 */
export function startProducerSpan(info: ProducerInfo): ProducerSpan | undefined {
  const api = activeTraceApi();
  if (!api) return undefined;
  const parent =
    info.parent === undefined
      ? api.context.active()
      : api.propagation.extract(api.context.active(), info.parent, getter);
  const attributes: Attributes = {
    'messaging.operation.type': info.operation,
    'messaging.operation.name': info.operation,
    'messaging.destination.name': info.topic,
    ...info.attributes,
  };
  if (info.system !== undefined) attributes['messaging.system'] = info.system;
  if (info.count !== 1) attributes['messaging.batch.message_count'] = info.count;
  if (info.messageId !== undefined) attributes['messaging.message.id'] = info.messageId;
  if (info.partition !== undefined)
    attributes['messaging.destination.partition.id'] = String(info.partition);
  if (info.key !== undefined) Object.assign(attributes, keyAttributes(info.system, info.key));
  const span = api.trace
    .getTracer(SCOPE)
    .startSpan(`${info.operation} ${info.topic}`, { kind: PRODUCER, attributes }, parent);
  const headers = inject(api, api.trace.setSpan(parent, span));
  return {
    headers,
    end(error) {
      if (error !== undefined) fail(span, error);
      span.end();
    },
  };
}

function keyAttributes(system: string | undefined, key: string): Attributes {
  if (system === 'kafka') return { 'messaging.kafka.message.key': key };
  if (system === 'rabbitmq') return { 'messaging.rabbitmq.destination.routing_key': key };
  return { 'ferry.message.key': key };
}

/** A consumer `process` span, live while one delivery is handled (all its attempts). */
export interface ProcessSpan {
  readonly traceId: string;
  /** Runs `work` with the span as the active context, so the handler's spans are its children. */
  run<R>(work: () => R): R;
  /** A failed attempt that will be retried. */
  retry(attempt: number, error: unknown): void;
  /** The inbox had this message already: the handler did not run. */
  duplicate(): void;
  /** The message went to the dead-letter topic. */
  deadLetter(reason: string, attempts: number, error: unknown): void;
  end(outcome: string, attempts: number, error?: unknown): void;
}

export interface ProcessInfo {
  readonly system: string;
  readonly delivery: Delivery;
  readonly messageId: string;
  readonly group: string | undefined;
}

/**
 * Starts `process <topic>` as a child of the message's creation context, with a link to it
 * too (the conventions' choice for single-message processing), or returns undefined when no
 * tracer provider is registered.
 */
export function startProcessSpan(info: ProcessInfo): ProcessSpan | undefined {
  const api = activeTraceApi();
  if (!api) return undefined;
  const { delivery } = info;
  const creation = api.propagation.extract(api.context.active(), delivery.headers, getter);
  const creationSpan = api.trace.getSpanContext(creation);
  const links: Link[] =
    creationSpan && api.isSpanContextValid(creationSpan) ? [{ context: creationSpan }] : [];
  const attributes: Attributes = {
    'messaging.system': info.system,
    'messaging.operation.type': 'process',
    'messaging.operation.name': 'process',
    'messaging.destination.name': delivery.topic,
    'messaging.message.id': info.messageId,
    'messaging.destination.partition.id': String(delivery.partition),
    'messaging.message.body.size': delivery.body.length,
  };
  if (info.group !== undefined) attributes['messaging.consumer.group.name'] = info.group;
  if (info.system === 'kafka') attributes['messaging.kafka.offset'] = Number(delivery.offset);
  if (delivery.key !== undefined)
    Object.assign(attributes, keyAttributes(info.system, delivery.key));
  const span = api.trace
    .getTracer(SCOPE)
    .startSpan(`process ${delivery.topic}`, { kind: CONSUMER, attributes, links }, creation);
  const active = api.trace.setSpan(creation, span);
  return {
    traceId: span.spanContext().traceId,
    run: (work) => api.context.with(active, work),
    retry(attempt, error) {
      span.addEvent('retry', {
        'ferry.attempt': attempt,
        'exception.type': errorType(error),
        'exception.message': error instanceof Error ? error.message : String(error),
      });
    },
    duplicate() {
      span.addEvent('inbox.duplicate');
    },
    deadLetter(reason, attempts, error) {
      span.addEvent('dead_letter', {
        'ferry.dlq.reason': reason,
        'ferry.attempt': attempts,
        'messaging.destination.name': `${delivery.topic}.dlq`,
      });
      fail(span, error);
    },
    end(outcome, attempts, error) {
      span.setAttribute('ferry.outcome', outcome);
      span.setAttribute('ferry.attempts', attempts);
      if (error !== undefined && outcome !== 'dead-lettered') fail(span, error);
      span.end();
    },
  };
}
