import type { Message, Options } from 'amqplib';
import {
  HEADER,
  type Delivery,
  type Headers,
  type OutgoingMessage,
} from '../../../core/message.js';
import { KEY_HEADER } from '../topology.js';

/**
 * ferry headers → AMQP properties: `ferry-id` → `messageId`, `content-type` →
 * `contentType`, `ferry-created-at` → `timestamp` (seconds; the header keeps the
 * milliseconds), key → header `ferry-key`; the other headers travel as AMQP headers. Always
 * persistent (delivery mode 2).
 */
export function publishOptions(message: OutgoingMessage, mandatory: boolean): Options.Publish {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers)) {
    if (name !== HEADER.id && name !== HEADER.contentType) headers[name] = value;
  }
  if (message.key !== undefined) headers[KEY_HEADER] = message.key;
  const created = Date.parse(message.headers[HEADER.createdAt] ?? '');
  const options: Options.Publish = { persistent: true, headers, mandatory };
  const id = message.headers[HEADER.id];
  if (id !== undefined) options.messageId = id;
  const contentType = message.headers[HEADER.contentType];
  if (contentType !== undefined) options.contentType = contentType;
  options.timestamp = Math.floor((Number.isNaN(created) ? Date.now() : created) / 1000);
  return options;
}

function headerText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  return JSON.stringify(value);
}

/** An AMQP message (from ferry or any other client) as a ferry delivery. */
export function toDelivery(topic: string, message: Message): Delivery {
  const headers: Headers = {};
  let key: string | undefined;
  const raw: Record<string, unknown> = message.properties.headers ?? {};
  for (const [name, value] of Object.entries(raw)) {
    const text = headerText(value);
    if (text === undefined) continue;
    if (name === KEY_HEADER) key = text;
    else headers[name] = text;
  }
  const { messageId, contentType, timestamp } = message.properties as {
    messageId?: unknown;
    contentType?: unknown;
    timestamp?: unknown;
  };
  if (typeof messageId === 'string' && headers[HEADER.id] === undefined)
    headers[HEADER.id] = messageId;
  if (typeof contentType === 'string' && headers[HEADER.contentType] === undefined)
    headers[HEADER.contentType] = contentType;
  if (typeof timestamp === 'number' && headers[HEADER.createdAt] === undefined)
    headers[HEADER.createdAt] = new Date(timestamp * 1000).toISOString();
  return {
    topic,
    key,
    headers,
    body: message.content,
    partition: 0,
    offset: String(message.fields.deliveryTag),
  };
}
