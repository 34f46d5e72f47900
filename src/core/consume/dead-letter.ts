import { describeError, isFerryError } from '../errors.js';
import { HEADER, type Delivery, type Headers } from '../message.js';
import type { Transport } from '../../transport/transport.js';
import { report } from './outcome.js';
import type { ConsumerState, Consumption, DeadLetterReason, DeadLetterSource } from './state.js';

/** The dead-letter topic of `topic`. */
export function deadLetterTopic(topic: string): string {
  return `${topic}.dlq`;
}

const EMPTY = Buffer.alloc(0);

/**
 * Sends `delivery` to `<topic>.dlq` with the reason, the error, the attempt count and the
 * original headers. One that cannot go whole (its body over the limit) goes without its
 * body, saying so, with its size and where the original was read; one whose headers are too
 * many even then keeps only ferry's. Rejects when the transport refuses it otherwise: the
 * delivery is then left unacknowledged.
 */
export async function sendDeadLetter(
  transport: Transport,
  source: DeadLetterSource,
  delivery: Delivery,
  reason: DeadLetterReason,
  error: unknown,
  attempts: number,
): Promise<void> {
  const { identity, maxMessageBytes } = transport.capabilities;
  const headers: Headers = {
    ...delivery.headers,
    [HEADER.dlqReason]: reason,
    [HEADER.dlqError]: describeError(error).slice(0, 1000),
    [HEADER.dlqAttempts]: String(attempts),
    [HEADER.dlqTopic]: source.topic,
    [HEADER.dlqAt]: new Date().toISOString(),
    [HEADER.dlqOrigin]:
      identity === 'position'
        ? `${delivery.topic}/${delivery.partition}/${delivery.offset}`
        : delivery.topic,
  };
  if (source.group !== undefined) headers[HEADER.dlqGroup] = source.group;
  const letter = { topic: deadLetterTopic(source.topic), key: delivery.key };
  if (delivery.body.length <= maxMessageBytes) {
    try {
      await transport.publish([{ ...letter, body: delivery.body, headers }]);
      return;
    } catch (failure) {
      if (!isFerryError(failure, 'MESSAGE_TOO_LARGE')) throw failure;
    }
  }
  const bodyless = {
    [HEADER.dlqBody]: 'omitted',
    [HEADER.dlqSize]: String(delivery.body.length),
  };
  try {
    await transport.publish([{ ...letter, body: EMPTY, headers: { ...headers, ...bodyless } }]);
  } catch (failure) {
    if (!isFerryError(failure, 'MESSAGE_TOO_LARGE')) throw failure;
    // Even its headers are too many: keep only ferry's.
    const own = Object.fromEntries(
      Object.entries(headers).filter(([name]) => name.startsWith('ferry-')),
    );
    await transport.publish([{ ...letter, body: EMPTY, headers: { ...own, ...bodyless } }]);
  }
}

/**
 * Dead-letters a delivery of a subscription and tells its observation. When that fails, the
 * failure is the delivery's one outcome (logged here) and it is rethrown: the delivery stays
 * unacknowledged and is handed out again.
 */
export async function deadLetter<T, Tx>(
  state: ConsumerState<T, Tx>,
  run: Consumption,
  reason: DeadLetterReason,
  error: unknown,
  attempts: number,
): Promise<void> {
  try {
    await sendDeadLetter(state.transport, state.source, run.delivery, reason, error, attempts);
  } catch (failure) {
    report(state, run, 'dead-letter-failed', attempts, failure);
    throw failure;
  }
  run.observation.deadLetter(reason, attempts, error);
}
