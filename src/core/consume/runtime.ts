// The consumer runtime: each delivery goes through identify -> decode -> validate, then
// handler attempts (inside the inbox, when there is one) with retries and backoff, and ends
// in exactly one outcome: handled, duplicate, dead-lettered, or left unacknowledged.
import { performance } from 'node:perf_hooks';
import { describeError, FerryError } from '../errors.js';
import { newMessageId, type Delivery, type Message } from '../message.js';
import type { DeliveryHandler } from '../../transport/transport.js';
import { deadLetter } from './dead-letter.js';
import { decode } from './decode.js';
import { identify } from './identify.js';
import { settle } from './outcome.js';
import { receivedMessage } from './received.js';
import { handleWithRetries } from './retry.js';
import type { ConsumerState, Consumption } from './state.js';
import { unreadableReason, validate } from './validate.js';

/** The transport-facing handler of one subscription: every delivery through the steps. */
export function consumer<T, Tx>(state: ConsumerState<T, Tx>): DeliveryHandler {
  return (delivery) => consume(state, delivery);
}

async function consume<T, Tx>(state: ConsumerState<T, Tx>, delivery: Delivery): Promise<void> {
  const started = performance.now();
  const arrivedMs = Date.now();
  let id: string;
  let unreadable: Error | undefined;
  try {
    id = identify(state, delivery);
  } catch (error) {
    // The subscriber's messageId failed on it: dead-lettered below as undecodable.
    id = newMessageId();
    unreadable =
      error instanceof Error
        ? error
        : new FerryError('CODEC_FAILED', `messageId failed: ${describeError(error)}`);
  }
  const observation = state.instrumentation.deliver({
    transport: state.transport.name,
    delivery,
    messageId: id,
    group: state.group,
  });
  const run: Consumption = { delivery, id, observation, started };

  let message: Message<T>;
  try {
    if (unreadable !== undefined) throw unreadable;
    const checked = validate(state.topic, decode(state.topic, delivery));
    const payload = checked instanceof Promise ? await checked : checked;
    message = receivedMessage(id, delivery, payload, arrivedMs);
  } catch (error) {
    try {
      await deadLetter(state, run, unreadableReason(error), error, 0);
    } catch (failure) {
      observation.end('failed', 0, failure);
      throw failure;
    }
    settle(state, run, 'dead-lettered', 0, error);
    return;
  }
  await handleWithRetries(state, run, message);
}
