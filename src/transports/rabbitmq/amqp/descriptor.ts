import type { TransportDescriptor } from '../../../transport/descriptor.js';

export const amqpDescriptor = {
  name: 'rabbitmq',
  title: 'rabbitmq (AMQP 0-9-1)',
  schemes: ['amqp', 'amqps'],
  exampleUrl: 'amqp://guest:guest@127.0.0.1:5672',
  subpath: 'ferry/rabbitmq',
  capabilities: {
    persistent: true,
    groups: true,
    order: 'queue',
    replay: false,
    delivery: 'at-least-once',
    identity: 'none',
    // RabbitMQ accepts up to 128 MiB (512 MiB hard limit); big bodies stall a channel for everyone.
    maxMessageBytes: 16 * 1024 * 1024,
  },
  notes: {
    groups: 'queue per group',
    replay: 'dead letters re-driven',
    identity: 'AMQP `message-id`',
  },
  advice: { throughput: 10_000, protocols: ['amqp'], operations: 2, scalesOut: true },
} as const satisfies TransportDescriptor;
