import { deliveryId, newMessageId, type Delivery } from '../message.js';
import type { ConsumerState } from './state.js';

/**
 * The id of a delivery: the subscriber's `messageId`, else the transport's rule (the
 * publisher's id, else the broker's durable position), else a fresh one, handled without
 * deduplication (said once per subscription when an inbox is in use). Throws what the
 * subscriber's `messageId` throws.
 */
export function identify<T, Tx>(state: ConsumerState<T, Tx>, delivery: Delivery): string {
  const id =
    state.messageId?.(delivery) ?? deliveryId(delivery, state.transport.capabilities.identity);
  if (id !== undefined) return id;
  if (!state.warnedNoId && state.inbox) {
    state.warnedNoId = true;
    state.logger.warn(
      { offset: delivery.offset },
      `${state.transport.name} gives messages without a publisher's id no stable id: they are handled without deduplication (give a messageId function to subscribe, or publish with message ids)`,
    );
  }
  return newMessageId();
}
