import { createMemoryBroker, memory } from '../../src/transports/memory.js';
import { deadLetterContract } from './dead-letters.js';
import { transportContract } from './transport.js';

const broker = createMemoryBroker({ partitions: 4 });
transportContract('memory', { create: () => memory({ broker }) });

deadLetterContract('memory', { create: () => memory({ broker }) });
