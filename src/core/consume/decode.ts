import { FerryError } from '../errors.js';
import type { Delivery } from '../message.js';
import type { Topic } from '../topic.js';

/**
 * The payload of a delivery as the topic's codec reads it, not yet validated. Throws
 * `CODEC_FAILED` for a delivery the transport could not read (`defect`) or the codec cannot.
 */
export function decode<T>(topic: Topic<T>, delivery: Delivery): unknown {
  if (delivery.defect !== undefined) throw new FerryError('CODEC_FAILED', delivery.defect);
  return topic.codec.decode(delivery.body);
}
