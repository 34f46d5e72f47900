import type { TransportDescriptor } from './descriptor.js';
import { kafkaDescriptor } from './kafka/descriptor.js';
import { memoryDescriptor } from './memory/descriptor.js';
import { amqpDescriptor } from './rabbitmq/amqp/descriptor.js';
import { stompDescriptor } from './rabbitmq/stomp/descriptor.js';
import { redisPubSubDescriptor } from './redis/pubsub/descriptor.js';
import { redisStreamsDescriptor } from './redis/streams/descriptor.js';
import { sqliteDescriptor } from './sqlite/descriptor.js';

/**
 * Every transport ferry ships, in the order the README lists them. Descriptors import no
 * driver, so reading them loads no broker client.
 */
export const TRANSPORTS = [
  memoryDescriptor,
  sqliteDescriptor,
  kafkaDescriptor,
  amqpDescriptor,
  stompDescriptor,
  redisPubSubDescriptor,
  redisStreamsDescriptor,
] as const satisfies readonly TransportDescriptor[];

export type TransportName = (typeof TRANSPORTS)[number]['name'];
