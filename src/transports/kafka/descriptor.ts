import type { TransportDescriptor } from '../../transport/descriptor.js';

export const kafkaDescriptor = {
  name: 'kafka',
  title: 'kafka',
  schemes: ['kafka'],
  exampleUrl: 'kafka://127.0.0.1:9092',
  subpath: 'ferry/kafka',
  capabilities: {
    persistent: true,
    groups: true,
    order: 'partition',
    replay: true,
    delivery: 'at-least-once',
    identity: 'position',
    maxMessageBytes: 1_000_000,
  },
  notes: { order: 'key', replay: 'by offset / time', identity: 'topic/partition/offset' },
  advice: { throughput: 100_000, protocols: ['kafka'], operations: 3, scalesOut: true },
} as const satisfies TransportDescriptor;
