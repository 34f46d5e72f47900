import type { TransportDescriptor } from '../../../transport/descriptor.js';

export const redisStreamsDescriptor = {
  name: 'redis-streams',
  title: 'redis Streams',
  schemes: ['redis-streams'],
  exampleUrl: 'redis-streams://127.0.0.1:6379',
  subpath: 'ferry/redis',
  capabilities: {
    persistent: true,
    groups: true,
    order: 'stream',
    replay: true,
    delivery: 'at-least-once',
    identity: 'position',
    maxMessageBytes: 16 * 1024 * 1024,
  },
  notes: {
    persistent: 'as Redis persists',
    replay: 'by id / time',
    identity: 'topic/stream/stream id',
  },
  advice: { throughput: 50_000, protocols: ['redis'], operations: 1, scalesOut: false },
} as const satisfies TransportDescriptor;
