import { randomUUID } from 'node:crypto';
import { FerryError } from '../../core/errors.js';
import type { Delivery, OutgoingMessage } from '../../core/message.js';
import type {
  CloseOptions,
  DeliveryHandler,
  PartitionLag,
  SeekTarget,
  SubscribeOptions,
  Transport,
} from '../../transport/transport.js';
import {
  assertPartitions,
  capabilitiesOf,
  createTransport,
  errorReporter,
  PartitionPump,
  partitionOf,
  roundRobinShare,
} from '../../transport/kernel.js';
import { memoryDescriptor } from './descriptor.js';

interface Stored extends Delivery {
  readonly brokerTime: Date;
}

/**
 * One partition's messages, oldest first. `base` is the offset of the oldest one kept;
 * dropped slots are cleared at once and the array is compacted now and then, so a drop
 * costs O(1) amortised.
 */
class PartitionLog {
  base = 0;
  private head = 0;
  private readonly entries: Array<Stored | undefined> = [];

  get size(): number {
    return this.entries.length - this.head;
  }

  /** The offset the next message gets. */
  get end(): number {
    return this.base + this.size;
  }

  append(make: (offset: number) => Stored): void {
    this.entries.push(make(this.end));
  }

  /** Up to `limit` messages from `offset` (from the oldest kept, if that was dropped). */
  read(offset: number, limit: number): Stored[] {
    const from = this.head + Math.max(0, offset - this.base);
    return this.entries.slice(from, from + limit) as Stored[];
  }

  /** The offset of the first message `match` accepts, else {@link end}. */
  find(match: (entry: Stored) => boolean): number {
    for (let i = this.head; i < this.entries.length; i++) {
      const entry = this.entries[i];
      if (entry && match(entry)) return this.base + i - this.head;
    }
    return this.end;
  }

  /** Forgets the messages before `offset`. */
  dropBefore(offset: number): void {
    const count = Math.min(offset - this.base, this.size);
    if (count <= 0) return;
    for (let i = this.head; i < this.head + count; i++) this.entries[i] = undefined;
    this.head += count;
    this.base += count;
    if (this.head >= 1024 && this.head * 2 >= this.entries.length) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
  }
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
  /** Messages kept per partition at most (see {@link MemoryBrokerOptions.maxRetained}). */
  readonly maxRetained: number;
  /** Messages every reader has read kept per partition for replay (see {@link MemoryBrokerOptions.keepRead}). */
  readonly keepRead: number;
  /** @internal */ readonly topics: Map<string, PartitionLog[]>;
  /** @internal Positions of every group and live group-less subscription, per topic. */
  readonly readers: Map<string, Set<Map<number, number>>>;
  /** @internal */ readonly groups: Map<string, GroupState>;
  /** @internal */ readonly pumps: Map<string, Set<PartitionPump>>;
}

export interface MemoryBrokerOptions {
  /** Partitions per topic; default 8. */
  readonly partitions?: number;
  /**
   * Retention. Of the messages every known reader of a topic has read (every group that ever
   * subscribed, every live subscription without a group), a partition keeps the last
   * `keepRead` (default 1000) for replay and drops the rest; a topic nobody has subscribed to
   * keeps what it is sent, for a later `from: 'earliest'`. On top of that a partition keeps
   * at most `maxRetained` messages (default 10 000): beyond it the oldest are dropped even if
   * unread, and a reader behind them goes on from the oldest kept. Memory therefore stays
   * bounded however long a process runs.
   */
  readonly maxRetained?: number;
  /** Read messages kept per partition for replay; default 1000 (see {@link maxRetained}). */
  readonly keepRead?: number;
}

export function createMemoryBroker(options: MemoryBrokerOptions = {}): MemoryBroker {
  const partitions = options.partitions ?? 8;
  assertPartitions(partitions);
  const maxRetained = options.maxRetained ?? 10_000;
  const keepRead = options.keepRead ?? Math.min(1000, maxRetained);
  if (!Number.isSafeInteger(maxRetained) || maxRetained < 1) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `maxRetained must be a whole number >= 1, got ${maxRetained}`,
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
    maxRetained,
    keepRead,
    topics: new Map(),
    readers: new Map(),
    groups: new Map(),
    pumps: new Map(),
  };
}

export interface MemoryTransportOptions {
  /** Shared broker state; default a new one private to this transport. */
  readonly broker?: MemoryBroker;
  readonly maxMessageBytes?: number;
  /**
   * Told about background failures the transport recovers from by itself, as FerryErrors.
   * A handler that rejects is not one: its message is handed out again.
   */
  readonly onError?: (error: FerryError) => void;
}

/**
 * An in-process transport with the semantics of a partitioned log (groups, order per key,
 * replay) and nothing persisted: for tests and examples. Delivery is at-least-once within
 * the process.
 */
export function memory(options: MemoryTransportOptions = {}): Transport {
  const broker = options.broker ?? createMemoryBroker();
  const capabilities = capabilitiesOf(memoryDescriptor, options.maxMessageBytes);
  const report = errorReporter(options.onError);

  const log = (topic: string): PartitionLog[] => {
    let partitions = broker.topics.get(topic);
    if (!partitions) {
      partitions = Array.from({ length: broker.partitions }, () => new PartitionLog());
      broker.topics.set(topic, partitions);
    }
    return partitions;
  };
  const readersOf = (topic: string): Set<Map<number, number>> => {
    let readers = broker.readers.get(topic);
    if (!readers) broker.readers.set(topic, (readers = new Set()));
    return readers;
  };
  /** Drops what every reader has read, then what is over the cap. */
  const trim = (topic: string, partition: number): void => {
    const entries = broker.topics.get(topic)?.[partition];
    if (!entries) return;
    const readers = broker.readers.get(topic);
    if (readers && readers.size > 0) {
      let floor = entries.end;
      for (const offsets of readers) floor = Math.min(floor, offsets.get(partition) ?? 0);
      entries.dropBefore(floor - broker.keepRead);
    }
    if (entries.size > broker.maxRetained) entries.dropBefore(entries.end - broker.maxRetained);
  };
  const groupOf = (topic: string, group: string): GroupState => {
    const id = `${topic}\u0000${group}`;
    let state = broker.groups.get(id);
    if (!state) {
      state = { offsets: new Map(), members: new Map(), rebalancing: Promise.resolve() };
      broker.groups.set(id, state);
      readersOf(topic).add(state.offsets);
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

  return createTransport({
    name: 'memory',
    capabilities,

    ping: () => Promise.resolve(),

    publish(messages: readonly OutgoingMessage[]) {
      const touched = new Set<string>();
      for (const message of messages) {
        const partitions = log(message.topic);
        const partition = partitionOf(message, broker.partitions);
        const entries = partitions[partition] as PartitionLog;
        entries.append((offset) => ({
          ...message,
          partition,
          offset: String(offset),
          brokerTime: new Date(),
        }));
        if (entries.size > broker.maxRetained) trim(message.topic, partition);
        touched.add(message.topic);
      }
      for (const topic of touched) for (const pump of broker.pumps.get(topic) ?? []) pump.wake();
      return Promise.resolve();
    },

    async subscribe(subscribe: SubscribeOptions, handler: DeliveryHandler) {
      const partitions = log(subscribe.topic);
      const group =
        subscribe.group === undefined ? undefined : groupOf(subscribe.topic, subscribe.group);
      const from = subscribe.from ?? (group ? 'earliest' : 'latest');
      const offsets = group?.offsets ?? new Map<number, number>();
      const start = (partition: number): number =>
        from === 'earliest'
          ? (partitions[partition]?.base ?? 0)
          : (partitions[partition]?.end ?? 0);
      const pump = new PartitionPump(
        {
          position: (partition) => {
            if (!offsets.has(partition)) offsets.set(partition, start(partition));
            return offsets.get(partition) ?? 0;
          },
          read: (partition, offset, limit) => partitions[partition]?.read(offset, limit) ?? [],
          commit: (partition, next) => {
            offsets.set(partition, Math.max(next, offsets.get(partition) ?? 0));
            trim(subscribe.topic, partition);
          },
        },
        handler,
        {
          concurrency: subscribe.concurrency ?? broker.partitions,
          idleWaitMs: 1000,
          redeliveryDelayMs: 50,
          onError: (error) => report(error, 'CONNECTION_FAILED', 'memory'),
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
        readersOf(subscribe.topic).add(offsets);
        await pump.assign(Array.from({ length: broker.partitions }, (_, partition) => partition));
      }
      return async (closeOptions?: CloseOptions) => {
        pumps.delete(pump);
        await pump.close(closeOptions?.timeoutMs ?? 30_000);
        if (!group) broker.readers.get(subscribe.topic)?.delete(offsets);
        if (group) {
          group.members.delete(memberId);
          await rebalance(group);
        }
      };
    },

    seek(topic: string, group: string, target: SeekTarget) {
      const partitions = log(topic);
      const { offsets } = groupOf(topic, group);
      partitions.forEach((entries, partition) => {
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
      const { offsets } = groupOf(topic, group);
      return Promise.resolve(
        log(topic).map((entries, partition) => {
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

/** `memory:`: a private in-process broker. Query: `partitions`, `maxRetained`, `keepRead` (per partition). */
export function memoryFromUrl(url: URL): Transport {
  const partitions = url.searchParams.get('partitions');
  const maxRetained = url.searchParams.get('maxRetained');
  const keepRead = url.searchParams.get('keepRead');
  return memory({
    broker: createMemoryBroker({
      ...(partitions === null ? {} : { partitions: Number(partitions) }),
      ...(maxRetained === null ? {} : { maxRetained: Number(maxRetained) }),
      ...(keepRead === null ? {} : { keepRead: Number(keepRead) }),
    }),
  });
}
