// `ferry/memory`: the in-process transport, and the broker several of them may share.
export {
  createMemoryBroker,
  memory,
  type MemoryBroker,
  type MemoryBrokerOptions,
  type MemoryTransportOptions,
} from './transport.js';
