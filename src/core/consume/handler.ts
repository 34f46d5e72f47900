import type { Message } from '../message.js';
import type { ConsumerState, Consumption } from './state.js';
import { processOnce } from './inbox.js';
import type { ConsumeContext } from './types.js';

/**
 * One attempt at a message: the subscriber's handler, inside the delivery's trace context and,
 * with an inbox, inside its transaction. Resolves true when the inbox had the message already
 * (the handler did not run); rejects with what the handler threw.
 */
export function runHandler<T, Tx>(
  state: ConsumerState<T, Tx>,
  run: Consumption,
  message: Message<T>,
  attempt: number,
): Promise<boolean | void> {
  const context: ConsumeContext<Tx> = {
    attempt,
    group: state.group,
    delivery: run.delivery,
    signal: state.signal,
    tx: undefined as Tx,
  };
  const { inbox, consumer, handler } = state;
  if (inbox && consumer !== undefined) {
    return run.observation.run(() =>
      processOnce(inbox, consumer, run.id, handler, message, context),
    );
  }
  return run.observation.run(() => handler(message, context));
}
