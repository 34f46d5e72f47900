import type { TransportDescriptor } from '../../../transport/descriptor.js';

export const stompDescriptor = {
  name: 'stomp',
  title: 'stomp (RabbitMQ)',
  schemes: ['stomp'],
  exampleUrl: 'stomp://guest:guest@127.0.0.1:61613',
  subpath: 'ferry/stomp',
  capabilities: {
    persistent: true,
    groups: true,
    order: 'queue',
    replay: false,
    delivery: 'at-least-once',
    identity: 'none',
    // As AMQP: RabbitMQ takes up to 128 MiB, but big bodies stall a connection and the STOMP
    // client parses frames in memory; 16 MiB (20 MB frames measured working).
    maxMessageBytes: 16 * 1024 * 1024,
  },
  notes: { groups: 'queue per group', identity: 'AMQP `message-id`' },
  advice: { throughput: 5_000, protocols: ['stomp'], operations: 2, scalesOut: true },
} as const satisfies TransportDescriptor;
