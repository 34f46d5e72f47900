import type { TransportDescriptor } from '../../../transport/descriptor.js';

export const redisPubSubDescriptor = {
  name: 'redis',
  title: 'redis Pub/Sub',
  schemes: ['redis', 'rediss'],
  exampleUrl: 'redis://127.0.0.1:6379',
  subpath: 'ferry/redis',
  capabilities: {
    persistent: false,
    groups: false,
    order: 'channel',
    replay: false,
    delivery: 'at-most-once',
    identity: 'none',
    maxMessageBytes: 8 * 1024 * 1024,
  },
  notes: { delivery: 'lost when nobody listens', identity: "the envelope's `id`" },
  advice: { throughput: 200_000, protocols: ['redis'], operations: 1, scalesOut: false },
} as const satisfies TransportDescriptor;
