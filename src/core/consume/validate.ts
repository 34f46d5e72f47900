import { isFerryError } from '../errors.js';
import { checkPayload, type Topic } from '../topic.js';
import type { DeadLetterReason } from './state.js';

/**
 * A decoded payload checked against the topic's schema (and transformed by it), synchronously
 * where the schema is; throws or rejects with `SCHEMA_VIOLATION`.
 */
export function validate<T>(topic: Topic<T>, value: unknown): T | Promise<T> {
  return checkPayload(topic, value);
}

/** The dead-letter reason of a delivery that failed decoding or validation. */
export function unreadableReason(error: unknown): DeadLetterReason {
  return isFerryError(error, 'SCHEMA_VIOLATION') ? 'schema' : 'decode';
}
