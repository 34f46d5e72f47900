import type { IMessage, StompHeaders } from '@stomp/stompjs';
import {
  HEADER,
  type Delivery,
  type Headers,
  type OutgoingMessage,
} from '../../../core/message.js';
import { KEY_HEADER } from '../topology.js';

/** STOMP frame headers the broker adds; not part of the message. */
const FRAME_HEADERS = new Set([
  'content-length',
  'ack',
  'message-id',
  'destination',
  'subscription',
  'redelivered',
  'persistent',
  'receipt',
  'amqp-message-id',
  'timestamp',
]);

/** `/` and `%` would end or escape a destination segment. */
export function segment(name: string): string {
  return name.replace(/%/g, '%25').replace(/\//g, '%2F');
}

/**
 * STOMP 1.1 header escaping (`\\`, `\n`, `\c`), of names and values, in one pass. ferry
 * speaks STOMP 1.1 and escapes itself: the client library escapes only values, and its
 * unescaping in 1.2 replaces one escape after another, which corrupts values such as `a\\nb`.
 */
export function escapeHeader(text: string): string {
  return text.replace(/[\\\n:]/g, (char) =>
    char === '\\' ? '\\\\' : char === '\n' ? '\\n' : '\\c',
  );
}

/** The reverse of {@link escapeHeader}; an unknown escape is left as it is. */
export function unescapeHeader(text: string): string {
  return text.replace(/\\([\\nc])/g, (_, char: string) =>
    char === 'n' ? '\n' : char === 'c' ? ':' : '\\',
  );
}

/** A STOMP MESSAGE frame as a ferry delivery (from ferry, AMQP clients or other STOMP clients). */
export function stompToDelivery(topic: string, message: IMessage): Delivery {
  const headers: Headers = {};
  let key: string | undefined;
  for (const [escapedName, escapedValue] of Object.entries(message.headers)) {
    const name = unescapeHeader(escapedName);
    const value = unescapeHeader(escapedValue);
    if (name === KEY_HEADER) key = value;
    else if (!FRAME_HEADERS.has(name)) headers[name] = value;
  }
  const id = message.headers['amqp-message-id'];
  if (id !== undefined && headers[HEADER.id] === undefined) headers[HEADER.id] = id;
  const timestamp = Number(message.headers.timestamp);
  if (headers[HEADER.createdAt] === undefined && Number.isFinite(timestamp) && timestamp > 0) {
    headers[HEADER.createdAt] = new Date(timestamp * 1000).toISOString();
  }
  return {
    topic,
    key,
    headers,
    body: Buffer.from(message.binaryBody),
    partition: 0,
    offset: message.headers['message-id'] ?? '',
  };
}

/**
 * ferry headers as STOMP SEND headers (escaped); RabbitMQ maps them onto the same AMQP
 * properties, and every other SEND header onto an AMQP header.
 */
export function sendHeaders(message: OutgoingMessage): StompHeaders {
  const headers: StompHeaders = { persistent: 'true' };
  for (const [name, value] of Object.entries(message.headers)) {
    if (name === HEADER.id) headers['amqp-message-id'] = escapeHeader(value);
    else headers[escapeHeader(name)] = escapeHeader(value);
  }
  if (message.key !== undefined) headers[KEY_HEADER] = escapeHeader(message.key);
  const created = Date.parse(message.headers[HEADER.createdAt] ?? '');
  headers.timestamp = String(Math.floor((Number.isNaN(created) ? Date.now() : created) / 1000));
  return headers;
}
