import type { StandardSchemaV1 } from '@standard-schema/spec';
import { jsonCodec, type Codec } from './codec.js';
import { FerryError } from './errors.js';

/**
 * A named stream of messages of one payload type. Define it once and share it between
 * publisher and consumers so both sides agree on the type and, optionally, the schema.
 */
export interface Topic<T = unknown> {
  readonly name: string;
  readonly codec: Codec<T>;
  readonly schema: StandardSchemaV1<unknown, T> | undefined;
  /** Type-only marker so `Topic<A>` and `Topic<B>` do not mix; never set at run time. */
  readonly __payload?: T;
}

/** How a topic checks and encodes its payloads; both optional (no schema, JSON). */
export interface TopicOptions<T> {
  /** Any Standard Schema (zod, valibot, arktype, ...): validated on publish and on consume. */
  schema?: StandardSchemaV1<unknown, T>;
  /** Defaults to JSON. */
  codec?: Codec<T>;
}

const TOPIC_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$/;

/** Throws `INVALID_NAME` unless `name` works on every transport (letters, digits, `._-`). */
export function assertTopicName(name: string): void {
  if (typeof name !== 'string' || !TOPIC_NAME.test(name)) {
    throw new FerryError(
      'INVALID_NAME',
      `Invalid topic name ${JSON.stringify(name)}: use 1-200 letters, digits, '.', '_' or '-', not starting with '.' or '-'`,
    );
  }
}

/**
 * Defines a topic. The payload type comes from the schema when one is given, else from the
 * type argument: `defineTopic<Order>('order.created')`.
 */
export function defineTopic<T = unknown>(name: string, options: TopicOptions<T> = {}): Topic<T> {
  assertTopicName(name);
  return Object.freeze({
    name,
    codec: options.codec ?? (jsonCodec as Codec<T>),
    schema: options.schema,
  });
}

/**
 * Validates a payload against the topic's schema and returns the (possibly transformed)
 * value: synchronously when the schema validates synchronously (most do), so hot paths
 * await only what must be awaited. Throws or rejects with `SCHEMA_VIOLATION`.
 */
export function checkPayload<T>(topic: Topic<T>, value: unknown): T | Promise<T> {
  if (!topic.schema) return value as T;
  const outcome = (result: StandardSchemaV1.Result<T>): T => {
    if (result.issues) throw schemaViolation(topic.name, result.issues);
    return result.value;
  };
  const result = topic.schema['~standard'].validate(value);
  return result instanceof Promise ? result.then(outcome) : outcome(result);
}

/** As {@link checkPayload}, always as a promise. */
export async function validatePayload<T>(topic: Topic<T>, value: unknown): Promise<T> {
  return checkPayload(topic, value);
}

/** The `SCHEMA_VIOLATION` error for a payload of `topic` that failed its schema. */
export function schemaViolation(
  topic: string,
  issues: ReadonlyArray<StandardSchemaV1.Issue>,
): FerryError {
  const summary = issues
    .slice(0, 5)
    .map((issue) => {
      const path = issue.path
        ?.map((segment) => (typeof segment === 'object' ? String(segment.key) : String(segment)))
        .join('.');
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join('; ');
  return new FerryError('SCHEMA_VIOLATION', `Payload for ${topic} is invalid: ${summary}`, {
    details: { topic, issues },
  });
}
