import { isUtf8 } from 'node:buffer';
import {
  HEADER,
  type Delivery,
  type Headers,
  type OutgoingMessage,
} from '../../../core/message.js';

/** What `redis-cli SUBSCRIBE` shows for each ferry message (see `redisPubSub`). */
export interface PubSubEnvelope {
  /** The ferry message id (also in `headers['ferry-id']`). */
  readonly id?: string;
  readonly key?: string;
  /** Every header, ferry's included (`ferry-id`, `ferry-created-at`, `content-type`). */
  readonly headers: Headers;
  /** The payload: its text when `encoding` is absent, base64 when `encoding` is `base64`. */
  readonly body: string;
  readonly encoding?: 'base64';
}

/** Text bodies travel as text; anything else (or bytes that are not UTF-8) as base64. */
function isTextType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  if (contentType === 'application/json') return true;
  const type = contentType.split(';', 1)[0]?.trim().toLowerCase() ?? '';
  return type === 'application/json' || type.endsWith('+json') || type.startsWith('text/');
}

/** The wire form of a message on a Pub/Sub channel. */
export function encodeEnvelope(message: OutgoingMessage): string {
  const { headers, body } = message;
  const text = isTextType(headers[HEADER.contentType]) && isUtf8(body);
  // One object shape for every message (JSON.stringify leaves out the undefined fields).
  return JSON.stringify({
    id: headers[HEADER.id],
    key: message.key,
    headers,
    body: body.toString(text ? 'utf8' : 'base64'),
    encoding: text ? undefined : 'base64',
  });
}

/**
 * Reads a channel message. A ferry envelope gives back key, headers and body; anything else
 * (`redis-cli PUBLISH orders hello`) is delivered as it is: the raw bytes as body, no key,
 * no headers (its id is then derived from the channel and arrival count).
 */
export function decodeEnvelope(raw: Buffer): Pick<Delivery, 'key' | 'headers' | 'body'> {
  if (raw[0] === 0x7b /* { */) {
    try {
      const parsed = JSON.parse(raw.toString('utf8')) as Partial<
        Record<keyof PubSubEnvelope, unknown>
      >;
      if (
        typeof parsed.body === 'string' &&
        (parsed.headers === undefined || isObject(parsed.headers))
      ) {
        const headers: Headers = {};
        for (const [name, value] of Object.entries(parsed.headers ?? {})) {
          headers[name] = String(value);
        }
        if (typeof parsed.id === 'string' && headers[HEADER.id] === undefined) {
          headers[HEADER.id] = parsed.id;
        }
        return {
          key: typeof parsed.key === 'string' ? parsed.key : undefined,
          headers,
          body: Buffer.from(parsed.body, parsed.encoding === 'base64' ? 'base64' : 'utf8'),
        };
      }
    } catch {
      // not an envelope: deliver the raw message
    }
  }
  return { key: undefined, headers: {}, body: raw };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
