// `ferry/memory`: the in-process transport, and the broker several of them may share.
import { FerryError } from '../../core/errors.js';
import type { OutgoingMessage } from '../../core/message.js';
import {
  capabilitiesOf,
  assertPartitions,
  createTransport,
  errorReporter,
  partitionOf,
} from '../../transport/kernel.js';
import { transportUrl } from '../../transport/parse-url.js';
import type { PartitionLag, SeekTarget, Transport } from '../../transport/transport.js';
import { memoryDescriptor } from './descriptor.js';
import {
  memoryBrokerOptionsFromUrl,
  type MemoryBrokerOptions,
  type MemoryTransportOptions,
} from './options.js';
import { subscribeMemory } from './subscription.js';
import { groupOf, logOf, trim, type MemoryBroker, type PartitionLog } from './wire.js';

export type { MemoryBroker } from './wire.js';
export type { MemoryBrokerOptions, MemoryRetention, MemoryTransportOptions } from './options.js';

/** The state of one in-process broker, to share between `memory()` transports. */
export function createMemoryBroker(options: MemoryBrokerOptions = {}): MemoryBroker {
  const partitions = options.partitions ?? 8;
  assertPartitions(partitions);
  if (options.retention?.maxAgeMs !== undefined) {
    throw new FerryError(
      'UNSUPPORTED',
      'The memory transport keeps no message by age: use retention.maxCount to bound it',
    );
  }
  const maxCount = options.retention?.maxCount ?? 10_000;
  const keepRead = options.keepRead ?? Math.min(1000, maxCount);
  if (!Number.isSafeInteger(maxCount) || maxCount < 1) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `retention.maxCount must be a whole number >= 1, got ${maxCount}`,
    );
  }
  if (!Number.isSafeInteger(keepRead) || keepRead < 0) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `keepRead must be a whole number >= 0, got ${keepRead}`,
    );
  }
  return {
    partitions,
    maxCount,
    keepRead,
    topics: new Map(),
    readers: new Map(),
    groups: new Map(),
    pumps: new Map(),
  };
}

/**
 * An in-process transport with the semantics of a partitioned log (groups, order per key,
 * replay) and nothing persisted: for tests and examples. Delivery is at-least-once within
 * the process; `publish` resolves once the messages are in the broker's memory.
 */
export function memory(options: MemoryTransportOptions = {}): Transport {
  if (options.url !== undefined && options.broker !== undefined) {
    throw new FerryError('INVALID_ARGUMENT', 'memory takes url or broker, not both');
  }
  const broker =
    options.broker ??
    createMemoryBroker(
      options.url === undefined
        ? {}
        : memoryBrokerOptionsFromUrl(transportUrl(options.url, memoryDescriptor.schemes)),
    );
  const capabilities = capabilitiesOf(memoryDescriptor, options.maxMessageBytes);
  const report = errorReporter(options.onError);

  return createTransport({
    name: 'memory',
    capabilities,

    ping: () => Promise.resolve(),

    publish(messages: readonly OutgoingMessage[]) {
      const touched = new Set<string>();
      for (const message of messages) {
        const partition = partitionOf(message, broker.partitions);
        const entries = logOf(broker, message.topic)[partition] as PartitionLog;
        entries.append((offset) => ({
          ...message,
          partition,
          offset: String(offset),
          brokerTime: new Date(),
        }));
        if (entries.size > broker.maxCount) trim(broker, message.topic, partition);
        touched.add(message.topic);
      }
      for (const topic of touched) for (const pump of broker.pumps.get(topic) ?? []) pump.wake();
      return Promise.resolve();
    },

    subscribe: (subscribe, handler) =>
      subscribeMemory(broker, subscribe, handler, (error) =>
        report(error, 'CONNECTION_FAILED', 'memory'),
      ),

    seek(topic: string, group: string, target: SeekTarget) {
      const { offsets } = groupOf(broker, topic, group);
      logOf(broker, topic).forEach((entries, partition) => {
        let next: number;
        if ('position' in target)
          next = target.position === 'earliest' ? entries.base : entries.end;
        else if ('timestamp' in target) {
          next = entries.find((entry) => entry.brokerTime.getTime() >= target.timestamp.getTime());
        } else {
          const offset = target.offsets[partition];
          if (offset === undefined) return;
          next = Number(offset);
        }
        offsets.set(partition, next);
      });
      return Promise.resolve();
    },

    lag(topic: string, group: string): Promise<PartitionLag[]> {
      const { offsets } = groupOf(broker, topic, group);
      return Promise.resolve(
        logOf(broker, topic).map((entries, partition) => {
          const committed = offsets.get(partition);
          return {
            partition,
            committed: committed === undefined ? undefined : String(committed),
            end: String(entries.end),
            lag: entries.end - Math.max(committed ?? 0, entries.base),
          };
        }),
      );
    },
  });
}
