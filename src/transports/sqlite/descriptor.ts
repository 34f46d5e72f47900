import type { TransportDescriptor } from '../../transport/descriptor.js';

export const sqliteDescriptor = {
  name: 'sqlite',
  title: 'sqlite (embedded log)',
  schemes: ['sqlite'],
  exampleUrl: 'sqlite:./ferry.db',
  subpath: 'ferry/sqlite',
  capabilities: {
    persistent: true,
    groups: true,
    order: 'partition',
    replay: true,
    delivery: 'at-least-once',
    identity: 'position',
    maxMessageBytes: 16 * 1024 * 1024,
  },
  notes: { order: 'key', replay: 'by offset / time', identity: 'topic/partition/offset' },
  advice: { throughput: 5_000, protocols: [], operations: 1, scalesOut: false },
} as const satisfies TransportDescriptor;
