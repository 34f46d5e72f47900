import { randomUUID } from 'node:crypto';
import { FerryError } from '../errors.js';
import type { Delivery, OutgoingMessage } from '../message.js';
import type {
  CloseOptions,
  DeliveryHandler,
  PartitionLag,
  SeekTarget,
  SubscribeOptions,
  Transport,
} from '../transport.js';
import { PartitionPump } from './partition-pump.js';
import {
  assertPartitions,
  checkSize,
  partitionOf,
  roundRobinShare,
  Subscriptions,
} from './shared.js';
import { capabilitiesOf } from './descriptor.js';
import { memoryDescriptor } from './memory/descriptor.js';

interface Stored extends Delivery {
  readonly brokerTime: Date;
}

interface GroupState {
  readonly offsets: Map<number, number>;
  readonly members: Map<string, PartitionPump>;
  rebalancing: Promise<void>;
}

/**
 * The state of an in-process broker. Share one between several `memory()` transports to
 * model several clients of one broker (competing consumers, a publisher and a consumer).
 */
export interface MemoryBroker {
  readonly partitions: number;
  /** @internal */ readonly topics: Map<string, Stored[][]>;
  /** @internal */ readonly groups: Map<string, GroupState>;
  /** @internal */ readonly pumps: Map<string, Set<PartitionPump>>;
}

export function createMemoryBroker(options: { partitions?: number } = {}): MemoryBroker {
  const partitions = options.partitions ?? 8;
  assertPartitions(partitions);
  return { partitions, topics: new Map(), groups: new Map(), pumps: new Map() };
}

export interface MemoryTransportOptions {
  /** Shared broker state; default a new one private to this transport. */
  readonly broker?: MemoryBroker;
  readonly maxMessageBytes?: number;
  /** Told about handlers that rejected (their message is handed out again). */
  readonly onError?: (error: unknown) => void;
}

/**
 * An in-process transport with the semantics of a partitioned log (groups, order per key,
 * replay) and nothing persisted: for tests and examples. Delivery is at-least-once within
 * the process.
 */
export function memory(options: MemoryTransportOptions = {}): Transport {
  const broker = options.broker ?? createMemoryBroker();
  const capabilities = capabilitiesOf(memoryDescriptor, options.maxMessageBytes);
  const mine = new Subscriptions();
  let closed = false;

  const log = (topic: string): Stored[][] => {
    let partitions = broker.topics.get(topic);
    if (!partitions) {
      partitions = Array.from({ length: broker.partitions }, () => []);
      broker.topics.set(topic, partitions);
    }
    return partitions;
  };
  const groupOf = (topic: string, group: string): GroupState => {
    const id = `${topic}\u0000${group}`;
    let state = broker.groups.get(id);
    if (!state) {
      state = { offsets: new Map(), members: new Map(), rebalancing: Promise.resolve() };
      broker.groups.set(id, state);
    }
    return state;
  };
  // Revoke first, then assign, so no partition is ever read by two members at once.
  // Rebalances of one group run one after another.
  const rebalance = (state: GroupState): Promise<void> => {
    state.rebalancing = state.rebalancing.then(async () => {
      const ids = [...state.members.keys()].sort();
      const shares = new Map(ids.map((id) => [id, roundRobinShare(broker.partitions, ids, id)]));
      const members = [...state.members];
      await Promise.all(
        members.map(([id, pump]) => {
          const share = shares.get(id) ?? [];
          return pump.assign(pump.partitions.filter((partition) => share.includes(partition)));
        }),
      );
      await Promise.all(members.map(([id, pump]) => pump.assign(shares.get(id) ?? [])));
    });
    return state.rebalancing;
  };
  const assertOpen = (): void => {
    if (closed) throw new FerryError('CLOSED', 'memory transport is closed');
  };

  return {
    name: 'memory',
    capabilities,

    async ping() {
      assertOpen();
    },

    publish(messages: readonly OutgoingMessage[]) {
      assertOpen();
      checkSize('memory', capabilities, messages);
      const touched = new Set<string>();
      for (const message of messages) {
        const partitions = log(message.topic);
        const partition = partitionOf(message, broker.partitions);
        const entries = partitions[partition] as Stored[];
        entries.push({
          ...message,
          partition,
          offset: String(entries.length),
          brokerTime: new Date(),
        });
        touched.add(message.topic);
      }
      for (const topic of touched) for (const pump of broker.pumps.get(topic) ?? []) pump.wake();
      return Promise.resolve();
    },

    async subscribe(subscribe: SubscribeOptions, handler: DeliveryHandler) {
      assertOpen();
      const partitions = log(subscribe.topic);
      const group =
        subscribe.group === undefined ? undefined : groupOf(subscribe.topic, subscribe.group);
      const from = subscribe.from ?? (group ? 'earliest' : 'latest');
      const offsets = group?.offsets ?? new Map<number, number>();
      const start = (partition: number): number =>
        from === 'earliest' ? 0 : (partitions[partition]?.length ?? 0);
      const pump = new PartitionPump(
        {
          position: (partition) => {
            if (!offsets.has(partition)) offsets.set(partition, start(partition));
            return offsets.get(partition) ?? 0;
          },
          read: (partition, offset, limit) =>
            (partitions[partition] ?? []).slice(offset, offset + limit),
          commit: (partition, next) => {
            offsets.set(partition, Math.max(next, offsets.get(partition) ?? 0));
          },
        },
        handler,
        {
          concurrency: subscribe.concurrency ?? broker.partitions,
          idleWaitMs: 1000,
          redeliveryDelayMs: 50,
          ...(options.onError === undefined ? {} : { onError: options.onError }),
        },
      );
      let pumps = broker.pumps.get(subscribe.topic);
      if (!pumps) broker.pumps.set(subscribe.topic, (pumps = new Set()));
      pumps.add(pump);
      const memberId = randomUUID();
      if (group) {
        group.members.set(memberId, pump);
        await rebalance(group);
      } else {
        for (let partition = 0; partition < broker.partitions; partition++)
          offsets.set(partition, start(partition));
        await pump.assign(Array.from({ length: broker.partitions }, (_, partition) => partition));
      }
      return mine.add(async (closeOptions?: CloseOptions) => {
        pumps.delete(pump);
        await pump.close(closeOptions?.timeoutMs ?? 30_000);
        if (group) {
          group.members.delete(memberId);
          await rebalance(group);
        }
      });
    },

    seek(topic: string, group: string, target: SeekTarget) {
      assertOpen();
      const partitions = log(topic);
      const { offsets } = groupOf(topic, group);
      partitions.forEach((entries, partition) => {
        let next: number;
        if ('position' in target) next = target.position === 'earliest' ? 0 : entries.length;
        else if ('timestamp' in target) {
          const index = entries.findIndex(
            (entry) => entry.brokerTime.getTime() >= target.timestamp.getTime(),
          );
          next = index < 0 ? entries.length : index;
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
      const { offsets } = groupOf(topic, group);
      return Promise.resolve(
        log(topic).map((entries, partition) => {
          const committed = offsets.get(partition);
          return {
            partition,
            committed: committed === undefined ? undefined : String(committed),
            end: String(entries.length),
            lag: entries.length - (committed ?? 0),
          };
        }),
      );
    },

    async close(closeOptions?: CloseOptions) {
      closed = true;
      await mine.closeAll(closeOptions);
    },
  };
}

/** `memory:`: a private in-process broker. */
export function memoryFromUrl(url: URL): Transport {
  const partitions = url.searchParams.get('partitions');
  return memory({
    broker: createMemoryBroker(partitions === null ? {} : { partitions: Number(partitions) }),
  });
}
