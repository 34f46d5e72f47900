import type { Message } from '../message.js';
import type { ConsumeContext, Handler, Inbox } from './types.js';

/**
 * Runs `handler` once per `(consumer, id)`: inside the inbox's transaction, with that
 * transaction as `context.tx`. Resolves true when the inbox had the message already (the
 * handler did not run).
 */
export async function processOnce<T, Tx>(
  inbox: Inbox<Tx>,
  consumer: string,
  id: string,
  handler: Handler<T, Tx>,
  message: Message<T>,
  context: ConsumeContext<Tx>,
): Promise<boolean> {
  const { duplicate } = await inbox.process(consumer, id, (tx) =>
    handler(message, { ...context, tx }),
  );
  return duplicate;
}
