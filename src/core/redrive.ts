import { FerryError } from './errors.js';
import {
  listDeadLetters,
  offsetAfter,
  offsetBefore,
  readUntilIdle,
  redriveGroup,
} from './dead-letters.js';
import { HEADER, type Headers, type OutgoingMessage } from './message.js';
import type { RedriveOptions, RedriveResult, Transport } from '../transport/transport.js';
import { deadLetterTopic } from './bus.js';

const DLQ_HEADERS = new Set<string>([
  HEADER.dlqReason,
  HEADER.dlqError,
  HEADER.dlqAttempts,
  HEADER.dlqGroup,
  HEADER.dlqTopic,
  HEADER.dlqAt,
]);

/** {@link redrive}'s options: which dead letters, and how long to wait for more. */
export interface LogRedriveOptions extends RedriveOptions {
  /** Stop once no dead letter has arrived for this long. Default 1.5 s. */
  readonly idleMs?: number;
}

/**
 * Moves dead letters of `topic` back so they are handled again. Uses the transport's own
 * redrive where it has one (RabbitMQ puts each back into the queue of the group it failed
 * in). Elsewhere it reads `<topic>.dlq` as the group `ferry-redrive` (so each dead letter is
 * moved once) and re-publishes to the topic with the same id: every group sees it again,
 * and groups with an inbox skip what they had handled. The `ferry-dlq-*` headers are dropped.
 */
export async function redrive(
  transport: Transport,
  topic: string,
  options: LogRedriveOptions = {},
): Promise<RedriveResult> {
  if (options.ids !== undefined && options.ids.length === 0) return { moved: 0, kept: 0 };
  if (transport.redrive) {
    if (options.ids !== undefined) {
      throw new FerryError(
        'UNSUPPORTED',
        `${transport.name} redrives its dead letters by group, not by message id`,
      );
    }
    return transport.redrive(topic, options);
  }
  // Reading <topic>.dlq from the start needs a log; a queue broker without its own redrive
  // (STOMP) would only see dead letters that arrive from now on, and move nothing.
  if (!transport.capabilities.groups || !transport.capabilities.replay) {
    throw new FerryError(
      'UNSUPPORTED',
      transport.capabilities.persistent
        ? `${transport.name} cannot redrive its dead letters itself; for RabbitMQ's STOMP adapter use the amqp:// URL of the same broker (same queues)`
        : `${transport.name} keeps no dead letters to redrive (not persistent)`,
    );
  }
  if (options.ids !== undefined) return redriveChosen(transport, topic, options.ids, options);
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const idleMs = options.idleMs ?? 1500;
  let moved = 0;
  let kept = 0;
  const reading = readUntilIdle(idleMs);
  const subscription = await transport.subscribe(
    {
      topic: deadLetterTopic(topic),
      group: redriveGroup(options.group),
      from: 'earliest',
      concurrency: 1,
    },
    async (delivery) => {
      if (moved >= limit) {
        reading.finish();
        // Not acknowledged: it stays for the next redrive.
        throw new FerryError('CLOSED', 'redrive limit reached');
      }
      reading.touch();
      if (options.group !== undefined && delivery.headers[HEADER.dlqGroup] !== options.group) {
        kept++;
        return;
      }
      await transport.publish([backToTopic(delivery, topic)]);
      moved++;
      if (moved >= limit) reading.finish();
    },
  );
  await reading.finished;
  await subscription.close();
  return { moved, kept };
}

/** A dead letter as it was published before it failed: its topic, without `ferry-dlq-*`. */
function backToTopic(letter: OutgoingMessage, topic: string): OutgoingMessage {
  const headers: Headers = {};
  for (const [name, value] of Object.entries(letter.headers)) {
    if (!DLQ_HEADERS.has(name)) headers[name] = value;
  }
  return {
    topic: letter.headers[HEADER.dlqTopic] ?? topic,
    key: letter.key,
    headers,
    body: letter.body,
  };
}

/**
 * Moves the chosen dead letters back. In a log the redrive position can only move past whole
 * prefixes, so the other waiting letters it moves past (of the group, or of any group) are
 * appended to the dead-letter topic again first: nothing is lost if this stops half way, at
 * worst a letter is listed or moved twice, which inboxes absorb.
 */
async function redriveChosen(
  transport: Transport,
  topic: string,
  ids: readonly string[],
  options: LogRedriveOptions,
): Promise<RedriveResult> {
  const wanted = new Set(ids);
  const waiting = await listDeadLetters(transport, topic, {
    limit: Number.MAX_SAFE_INTEGER,
    ...(options.idleMs === undefined ? {} : { idleMs: options.idleMs }),
  });
  const ours = (group: string | undefined): boolean =>
    options.group === undefined || group === options.group;
  const chosen = waiting
    .filter((letter) => wanted.has(letter.id) && ours(letter.group))
    .slice(0, options.limit ?? Number.POSITIVE_INFINITY);
  const last = new Map<number, string>();
  for (const letter of chosen) {
    const seen = last.get(letter.partition);
    if (seen === undefined || offsetBefore(seen, letter.offset)) {
      last.set(letter.partition, letter.offset);
    }
  }
  const passed = waiting.filter((letter) => {
    const until = last.get(letter.partition);
    return (
      until !== undefined &&
      ours(letter.group) &&
      !chosen.includes(letter) &&
      offsetBefore(letter.offset, until)
    );
  });
  if (passed.length > 0) {
    await transport.publish(
      passed.map((letter) => ({
        topic: deadLetterTopic(topic),
        key: letter.key,
        headers: letter.headers,
        body: letter.body,
      })),
    );
  }
  if (chosen.length > 0) {
    await transport.publish(chosen.map((letter) => backToTopic(letter, topic)));
  }
  const offsets: Record<number, string> = {};
  for (const [partition, offset] of last) offsets[partition] = offsetAfter(offset);
  if (last.size > 0)
    await transport.seek(deadLetterTopic(topic), redriveGroup(options.group), { offsets });
  return { moved: chosen.length, kept: 0 };
}
