import { createMemoryBroker, memory } from '../../src/transports/memory/index.js';
import { deadLetterContract } from './dead-letters.js';
import { publishingThrough, transportContract } from './transport.js';

const broker = createMemoryBroker({ partitions: 4 });
transportContract('memory', {
  create: () => memory({ broker }),
  // Another client of the same broker that takes bigger messages than ferry's limit.
  foreign: () => publishingThrough(memory({ broker, maxMessageBytes: 64 * 1024 * 1024 })),
});

deadLetterContract('memory', { create: () => memory({ broker }) });
