import type { TransportDescriptor } from '../../transport/descriptor.js';

export const memoryDescriptor = {
  name: 'memory',
  title: 'memory',
  schemes: ['memory'],
  exampleUrl: 'memory:',
  subpath: 'ferry/memory',
  capabilities: {
    persistent: false,
    groups: true,
    order: 'partition',
    replay: true,
    delivery: 'at-least-once',
    identity: 'position',
    maxMessageBytes: 16 * 1024 * 1024,
  },
  notes: {
    persistent: 'in process',
    order: 'key',
    replay: 'by offset / time',
    identity: 'topic/partition/offset',
  },
} as const satisfies TransportDescriptor;
