import { performance } from 'node:perf_hooks';
import { FerryError } from './errors.js';
import { infoLines, type InfoFields, type InfoLines, type Logger } from './log.js';
import {
  buildOutgoing,
  HEADER,
  newMessageId,
  type Headers,
  type OutgoingMessage,
} from './message.js';
import { checkPayload, type Topic } from './topic.js';
import type { Instrumentation } from '../observability/instrumentation.js';
import { traceIdOf } from '../observability/tracing.js';
import type { Transport } from '../transport/transport.js';

/** Options of one published message. */
export interface PublishOptions {
  /** Order and partition key: messages with one key keep their order. */
  readonly key?: string;
  /** The user's headers; ferry's own (`ferry-id`, `ferry-created-at`, `content-type`) win. */
  readonly headers?: Headers;
}

/** One message of `publishMany`. */
export interface PublishItem<T> extends PublishOptions {
  readonly payload: T;
}

/** What the broker confirmed. */
export interface PublishReceipt {
  /** The message's id (`ferry-id`), its idempotency key end to end. */
  readonly id: string;
}

/** What the publish side of a bus works with. */
export interface PublisherState {
  readonly transport: Transport;
  readonly instrumentation: Instrumentation;
  readonly logger: Logger;
  /** An info line per published message. */
  readonly audit: boolean;
}

/**
 * The bus's `publishMany`: validate every payload, then encode every message (both before
 * anything is sent), publish them in one transport call, and log each (failures always, and
 * successes with the audit trail on).
 */
export function publisher(
  state: PublisherState,
): <T>(topic: Topic<T>, items: readonly PublishItem<T>[]) => Promise<PublishReceipt[]> {
  // Audit lines per topic, `event` and `topic` bound: serialised once, not per line.
  const audits = new Map<string, InfoLines>();
  const auditFor = (topic: string): InfoLines => {
    let lines = audits.get(topic);
    if (!lines) audits.set(topic, (lines = infoLines(state.logger, { event: 'publish', topic })));
    return lines;
  };
  return async (topic, items) => {
    const payloads = await validateAll(topic, items);
    const ids = items.map(() => newMessageId());
    const single = items.length === 1 ? items[0] : undefined;
    const observation = state.instrumentation.publish({
      transport: state.transport.name,
      topic: topic.name,
      count: items.length,
      messageId: single && ids[0],
      key: single?.key,
    });
    const trace = observation.headers;
    const createdAt = new Date().toISOString();
    let messages: OutgoingMessage[];
    try {
      messages = items.map((item, index) =>
        encode(state.transport, topic, item, payloads[index]!, ids[index]!, trace, createdAt),
      );
    } catch (error) {
      observation.end(error);
      throw error;
    }
    const started = performance.now();
    try {
      await state.transport.publish(messages);
      observation.end();
    } catch (error) {
      observation.end(error);
      const logger = state.logger.child({ event: 'publish', topic: topic.name });
      for (const message of messages)
        logger.error({ ...line(message, 'failed'), err: error }, 'publish failed');
      throw error;
    }
    if (state.audit && state.logger.isLevelEnabled('info')) {
      const lines = auditFor(topic.name);
      const durationMs = Math.round((performance.now() - started) * 100) / 100;
      for (const message of messages) lines.info(line(message, 'ok', durationMs), 'published');
    }
    return messages.map(receiptOf);
  };
}

/** A publish line's own fields (`event` and `topic` are bound to the logger). */
function line(message: OutgoingMessage, result: 'ok' | 'failed', durationMs?: number): InfoFields {
  return {
    id: message.headers[HEADER.id],
    traceId: traceIdOf(message.headers),
    key: message.key,
    durationMs,
    result,
  };
}

/** The payloads checked against the topic's schema; awaits only when a check is async. */
async function validateAll<T>(topic: Topic<T>, items: readonly PublishItem<T>[]): Promise<T[]> {
  const checked = items.map((item) => checkPayload(topic, item.payload));
  return checked.some((value) => value instanceof Promise)
    ? await Promise.all(checked)
    : (checked as T[]);
}

/** The wire form of one message; `MESSAGE_TOO_LARGE` when its body is over the transport's limit. */
function encode<T>(
  transport: Transport,
  topic: Topic<T>,
  item: PublishItem<T>,
  payload: T,
  id: string,
  trace: Headers | undefined,
  createdAt: string,
): OutgoingMessage {
  const message = buildOutgoing({
    id,
    topic: topic.name,
    key: item.key,
    body: topic.codec.encode(payload),
    contentType: topic.codec.contentType,
    createdAt,
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

function receiptOf(message: OutgoingMessage): PublishReceipt {
  return { id: message.headers[HEADER.id] ?? '' };
}
