import type { Message } from '../message.js';
import type { ConsumerState, Consumption } from './state.js';
import { processOnce } from './inbox.js';
import type { ConsumeContext } from './types.js';

/**
 * One attempt at a message: the subscriber's handler, inside the delivery's trace context and,
 * with an inbox, inside its transaction. Resolves `duplicate` when the inbox had the message
 * already (the handler did not run), else `ok`; rejects with what the handler threw.
 */
export async function runHandler<T, Tx>(
  state: ConsumerState<T, Tx>,
  run: Consumption,
  message: Message<T>,
  attempt: number,
): Promise<'ok' | 'duplicate'> {
  const context: ConsumeContext<Tx> = {
    attempt,
    group: state.group,
    delivery: run.delivery,
    signal: state.signal,
    tx: undefined as Tx,
  };
  if (state.inbox && state.consumer !== undefined) {
    const { inbox, consumer } = state;
    const duplicate = await run.observation.run(() =>
      processOnce(inbox, consumer, run.id, state.handler, message, context),
    );
    if (duplicate) run.observation.duplicate();
    return duplicate ? 'duplicate' : 'ok';
  }
  await run.observation.run(() => state.handler(message, context));
  return 'ok';
}
