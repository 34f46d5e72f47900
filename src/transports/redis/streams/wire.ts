import { FerryError } from '../../../core/errors.js';
import {
  HEADER,
  type Delivery,
  type Headers,
  type OutgoingMessage,
} from '../../../core/message.js';

/** Stream field carrying the message key. Every other field before `body` is a header. */
export const KEY_FIELD = 'ferry-key';
const BODY_FIELD = 'body';
const MAX_SEQ = '18446744073709551615';

/** The XADD field list of a message: headers, then `ferry-key`, then `body` last. */
export function entryFields(message: OutgoingMessage): Array<string | Buffer> {
  const fields: Array<string | Buffer> = [];
  for (const [name, value] of Object.entries(message.headers)) {
    if (name !== KEY_FIELD) fields.push(name, value);
  }
  if (message.key !== undefined) fields.push(KEY_FIELD, message.key);
  fields.push(BODY_FIELD, message.body);
  return fields;
}

/**
 * Reads a stream entry. ferry's entries (and any with a `body` field, else a `payload`
 * field) give that field as body, `ferry-key` as key and every other field as a header.
 * An entry with one field gives its value as body; one with several other fields gives
 * them as a JSON object (`content-type: application/json`). Entries without `ferry-id` get
 * their id from the stream position (see `deliveryId`), and without `ferry-created-at` the
 * time in their stream id.
 */
export function decodeEntry(
  topic: string,
  partition: number,
  id: string,
  fields: readonly Buffer[],
): Delivery {
  const names: string[] = [];
  for (let i = 0; i < fields.length; i += 2) names.push(String(fields[i]));
  let bodyAt = names.lastIndexOf(BODY_FIELD);
  if (bodyAt < 0) bodyAt = names.lastIndexOf('payload');
  if (bodyAt < 0 && names.length === 1) bodyAt = 0;
  const value = (index: number): Buffer => fields[index * 2 + 1] ?? Buffer.alloc(0);
  if (bodyAt < 0) {
    const object = Object.fromEntries(names.map((name, index) => [name, value(index).toString()]));
    return {
      topic,
      key: undefined,
      headers: { [HEADER.contentType]: 'application/json' },
      body: Buffer.from(JSON.stringify(object)),
      partition,
      offset: id,
      brokerTime: timeOf(id),
    };
  }
  const headers: Headers = {};
  let key: string | undefined;
  names.forEach((name, index) => {
    if (index === bodyAt) return;
    if (name === KEY_FIELD) key = value(index).toString();
    else headers[name] = value(index).toString();
  });
  return {
    topic,
    key,
    headers,
    body: value(bodyAt),
    partition,
    offset: id,
    brokerTime: headers[HEADER.createdAt] === undefined ? timeOf(id) : undefined,
  };
}

/** The time in a stream id (`<ms>-<seq>`): when Redis added the entry. */
function timeOf(id: string): Date {
  return new Date(Number.parseInt(id, 10));
}

/** The stream id just before `id`, so that a group set to it reads `id` next. */
export function previousId(id: string): string {
  const match = /^(\d+)(?:-(\d+))?$/.exec(id);
  if (!match) throw new FerryError('INVALID_ARGUMENT', `Not a stream id: ${JSON.stringify(id)}`);
  const ms = BigInt(match[1] ?? '0');
  const seq = BigInt(match[2] ?? '0');
  if (seq > 0n) return `${ms}-${seq - 1n}`;
  return ms > 0n ? `${ms - 1n}-${MAX_SEQ}` : '0';
}

/** An entry as XREAD, XREADGROUP and XAUTOCLAIM return it (fields null once trimmed away). */
export type StreamEntry = [id: Buffer, fields: Buffer[] | null];

/** A flat `[name, value, name, value, ...]` Redis reply as an object. */
export function toRecord(fields: readonly unknown[]): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) record[String(fields[i])] = fields[i + 1];
  return record;
}
