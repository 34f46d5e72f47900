import { deliveryCreatedMs, type Delivery, type Message } from '../message.js';

/**
 * The message a handler sees, dated by its `ferry-created-at` header, else by the broker's
 * time, else by `arrivedMs`. A plain object (spreading or serialising it carries every field):
 * an accessor for a lazy `createdAt` costs more per message than the date it would save,
 * since the header text is rarely parsed (see {@link deliveryCreatedMs}).
 */
export function receivedMessage<T>(
  id: string,
  delivery: Delivery,
  payload: T,
  arrivedMs: number,
): Message<T> {
  return {
    id,
    topic: delivery.topic,
    key: delivery.key,
    payload,
    headers: delivery.headers,
    createdAt: new Date(deliveryCreatedMs(delivery, arrivedMs)),
  };
}
