import { deadLetterTopic } from './consume/dead-letter.js';
import { FerryError } from './errors.js';
import { deliveryId, HEADER, type Delivery, type Headers } from './message.js';
import type { PartitionLag, Transport } from '../transport/transport.js';

/** A dead letter waiting in `<topic>.dlq`, with what the consumer runtime recorded. */
export interface DeadLetter {
  readonly id: string;
  /** The topic it failed on. */
  readonly topic: string;
  readonly key: string | undefined;
  /** The consumer group it failed in (`ferry-dlq-group`), if any. */
  readonly group: string | undefined;
  readonly reason: string | undefined;
  readonly error: string | undefined;
  readonly attempts: number | undefined;
  /** When it was dead-lettered. */
  readonly at: Date | undefined;
  /** Where it sits in the dead-letter topic. */
  readonly partition: number;
  readonly offset: string;
  readonly headers: Headers;
  readonly body: Buffer;
}

/** Which dead letters `listDeadLetters` reads, and when it stops reading. */
export interface ListDeadLettersOptions {
  /** Only the dead letters of this group. */
  readonly group?: string;
  /** At most this many (the oldest first). Default 500. */
  readonly limit?: number;
  /** Stop reading once nothing has arrived for this long. Default 1 s. */
  readonly idleMs?: number;
}

/** The group `redrive()` reads `<topic>.dlq` as (all groups, or one group's dead letters). */
export function redriveGroup(group: string | undefined): string {
  return group === undefined ? 'ferry-redrive' : `ferry-redrive.${group}`;
}

/**
 * Lists the dead letters of `topic` that `redrive()` has not moved yet, without moving or
 * acknowledging anything. Needs a transport that keeps a replayable log (SQLite, Kafka, Redis
 * Streams, memory); RabbitMQ keeps dead letters in queues (see its queue depth with `lag`).
 *
 * A dead letter counts as moved once the redrive position of all groups, or of its own group,
 * is past it.
 */
export async function listDeadLetters(
  transport: Transport,
  topic: string,
  options: ListDeadLettersOptions = {},
): Promise<DeadLetter[]> {
  if (!transport.capabilities.replay || !transport.capabilities.groups || !transport.lag) {
    throw new FerryError(
      'UNSUPPORTED',
      `${transport.name} cannot list dead letters without moving them (no replayable log)`,
    );
  }
  const dlq = deadLetterTopic(topic);
  const limit = options.limit ?? 500;
  const idleMs = options.idleMs ?? 1000;
  const ends = await positions(transport, dlq, redriveGroup(undefined));
  const seen: Delivery[] = [];
  const reached = new Set<number>();
  const waiting = [...ends.values()].filter((lag) => !isEmpty(lag.end));
  const reading = readUntilIdle(idleMs);
  if (waiting.length === 0) reading.finish();
  const subscription = await transport.subscribe(
    { topic: dlq, from: 'earliest', concurrency: 1 },
    async (delivery) => {
      reading.touch();
      seen.push(delivery);
      const end = ends.get(delivery.partition)?.end;
      if (end !== undefined && atEnd(delivery.offset, end)) reached.add(delivery.partition);
      if (waiting.every((lag) => reached.has(lag.partition))) reading.finish();
      return Promise.resolve();
    },
  );
  await reading.finished;
  await subscription.close({ timeoutMs: 5000 });

  const groups = new Set(seen.map((delivery) => delivery.headers[HEADER.dlqGroup]));
  const redriven = new Map<string | undefined, Map<number, PartitionLag>>([[undefined, ends]]);
  for (const group of groups) {
    if (group !== undefined) {
      redriven.set(group, await positions(transport, dlq, redriveGroup(group)));
    }
  }
  const letters: DeadLetter[] = [];
  for (const delivery of seen) {
    const group = delivery.headers[HEADER.dlqGroup];
    if (options.group !== undefined && group !== options.group) continue;
    const moved = [undefined, group].some((by) => {
      const committed = redriven.get(by)?.get(delivery.partition)?.committed;
      return committed !== undefined && isBefore(delivery.offset, committed);
    });
    if (moved) continue;
    letters.push(toDeadLetter(delivery, topic));
    if (letters.length >= limit) break;
  }
  return letters;
}

/** Ends a read of a dead-letter topic: on `finish()`, or once `touch()` has not come for `idleMs`. */
export interface IdleReading {
  /** Resolves once finished; the idle timer is cleared by then. */
  readonly finished: Promise<void>;
  /** Something arrived: the idle period starts again. */
  touch(): void;
  finish(): void;
}

/** Starts the idle timer of a read that stops at the end of the log or when nothing arrives. */
export function readUntilIdle(idleMs: number): IdleReading {
  let idle: NodeJS.Timeout | undefined;
  let over = false;
  let resolve!: () => void;
  const finished = new Promise<void>((done) => (resolve = done));
  const finish = (): void => {
    over = true;
    clearTimeout(idle);
    resolve();
  };
  const touch = (): void => {
    // A delivery that lands while the subscription closes must not start a new timer.
    if (over) return;
    clearTimeout(idle);
    idle = setTimeout(finish, idleMs);
  };
  touch();
  return { finished, touch, finish };
}

async function positions(
  transport: Transport,
  topic: string,
  group: string,
): Promise<Map<number, PartitionLag>> {
  const lags = (await transport.lag?.(topic, group)) ?? [];
  return new Map(lags.map((lag) => [lag.partition, lag]));
}

function toDeadLetter(delivery: Delivery, topic: string): DeadLetter {
  const headers = delivery.headers;
  const attempts = Number(headers[HEADER.dlqAttempts]);
  const stamp = headers[HEADER.dlqAt];
  const at = stamp === undefined ? undefined : new Date(stamp);
  return {
    // Dead letters are read from a log: where the publisher gave no id, their position names them.
    id: deliveryId(delivery, 'position'),
    topic: headers[HEADER.dlqTopic] ?? topic,
    key: delivery.key,
    group: headers[HEADER.dlqGroup],
    reason: headers[HEADER.dlqReason],
    error: headers[HEADER.dlqError],
    attempts: Number.isFinite(attempts) ? attempts : undefined,
    at: at === undefined || Number.isNaN(at.getTime()) ? undefined : at,
    partition: delivery.partition,
    offset: delivery.offset,
    headers,
    body: delivery.body,
  };
}

/**
 * Offsets are numbers (SQLite, Kafka, memory: the committed offset is the next one to read)
 * or stream ids `ms-seq` (Redis Streams: the committed id is the last one read).
 */
function isBefore(offset: string, committed: string): boolean {
  const a = streamId(offset);
  const b = streamId(committed);
  if (a && b) return !offsetBefore(committed, offset);
  return offsetBefore(offset, committed);
}

/** Whether `a` comes before `b` in one partition (numbers, or stream ids `ms-seq`). */
export function offsetBefore(a: string, b: string): boolean {
  const x = streamId(a);
  const y = streamId(b);
  if (x && y) return x[0] < y[0] || (x[0] === y[0] && x[1] < y[1]);
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(a) < BigInt(b);
  throw new FerryError('INVALID_ARGUMENT', `Cannot compare offsets ${a} and ${b}`);
}

/** The offset right after `offset`, as `seek` takes it (the next one to read). */
export function offsetAfter(offset: string): string {
  const id = streamId(offset);
  if (id) return `${id[0]}-${id[1] + 1n}`;
  if (/^\d+$/.test(offset)) return String(BigInt(offset) + 1n);
  throw new FerryError('INVALID_ARGUMENT', `Not an offset: ${offset}`);
}

function atEnd(offset: string, end: string): boolean {
  if (streamId(end)) return offset === end;
  if (/^\d+$/.test(offset) && /^\d+$/.test(end)) return BigInt(offset) + 1n >= BigInt(end);
  return false;
}

function isEmpty(end: string): boolean {
  return end === '0' || end === '0-0';
}

function streamId(text: string): [bigint, bigint] | undefined {
  const match = /^(\d+)-(\d+)$/.exec(text);
  return match ? [BigInt(match[1] as string), BigInt(match[2] as string)] : undefined;
}
