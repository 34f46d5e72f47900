import type { TransportDescriptor } from './descriptor.js';
import { kafkaDescriptor } from '../transports/kafka/descriptor.js';
import { memoryDescriptor } from '../transports/memory/descriptor.js';
import { amqpDescriptor } from '../transports/rabbitmq/amqp/descriptor.js';
import { stompDescriptor } from '../transports/rabbitmq/stomp/descriptor.js';
import { redisPubSubDescriptor } from '../transports/redis/pubsub/descriptor.js';
import { redisStreamsDescriptor } from '../transports/redis/streams/descriptor.js';
import { sqliteDescriptor } from '../transports/sqlite/descriptor.js';

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
