import { FerryError, PermanentError } from '../errors.js';
import type { Message } from '../message.js';
import { backoffDelay, sleep } from '../retry.js';
import { deadLetter } from './dead-letter.js';
import { runHandler } from './handler.js';
import { report, settle } from './outcome.js';
import type { ConsumerState, Consumption } from './state.js';

/**
 * Handles a readable message to its one outcome: attempts until one succeeds; a handler that
 * throws is retried after an exponential, jittered backoff, and after `policy.maxAttempts`
 * (or at once for a `PermanentError`) the message is dead-lettered. Rejects, leaving the
 * delivery unacknowledged, when the subscription closes while retrying or the dead-letter
 * publish fails.
 */
export async function handleWithRetries<T, Tx>(
  state: ConsumerState<T, Tx>,
  run: Consumption,
  message: Message<T>,
): Promise<void> {
  let tries = 1;
  try {
    for (; ; tries++) {
      if (state.signal.aborted) throw new FerryError('CLOSED', 'Subscription closed');
      try {
        if ((await runHandler(state, run, message, tries)) === true) {
          run.observation.duplicate();
          settle(state, run, 'duplicate', tries);
        } else settle(state, run, 'ok', tries);
        return;
      } catch (error) {
        const permanent = error instanceof PermanentError;
        if (permanent || tries >= state.policy.maxAttempts) {
          await deadLetter(state, run, permanent ? 'permanent' : 'failed', error, tries);
          settle(state, run, 'dead-lettered', tries, error);
          return;
        }
        run.observation.retry(tries, error);
        report(state, run, 'retry', tries, error);
        await sleep(backoffDelay(state.policy, tries), state.signal);
      }
    }
  } catch (error) {
    // Closed while retrying, or the dead-letter publish failed: left unacknowledged.
    run.observation.end('failed', tries, error);
    throw error;
  }
}
