import type { Delivery } from '../../core/message.js';
import type { PartitionPump } from '../../transport/partition-pump.js';

export interface Stored extends Delivery {
  readonly brokerTime: Date;
}

/**
 * One partition's messages, oldest first. `base` is the offset of the oldest one kept;
 * dropped slots are cleared at once and the array is compacted now and then, so a drop
 * costs O(1) amortised.
 */
export class PartitionLog {
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

export interface GroupState {
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
  /** Messages kept per partition at most (see {@link MemoryBrokerOptions.retention}). */
  readonly maxCount: number;
  /** Messages every reader has read kept per partition for replay (see {@link MemoryBrokerOptions.keepRead}). */
  readonly keepRead: number;
  /** @internal */ readonly topics: Map<string, PartitionLog[]>;
  /** @internal Positions of every group and live group-less subscription, per topic. */
  readonly readers: Map<string, Set<Map<number, number>>>;
  /** @internal */ readonly groups: Map<string, GroupState>;
  /** @internal */ readonly pumps: Map<string, Set<PartitionPump>>;
}

/** The partitions of `topic`, made on first use. */
export function logOf(broker: MemoryBroker, topic: string): PartitionLog[] {
  let partitions = broker.topics.get(topic);
  if (!partitions) {
    partitions = Array.from({ length: broker.partitions }, () => new PartitionLog());
    broker.topics.set(topic, partitions);
  }
  return partitions;
}

/** The positions of every reader of `topic` (groups, live private subscriptions). */
export function readersOf(broker: MemoryBroker, topic: string): Set<Map<number, number>> {
  let readers = broker.readers.get(topic);
  if (!readers) broker.readers.set(topic, (readers = new Set()));
  return readers;
}

/** Drops what every reader has read (but `keepRead`), then what is over `maxCount`. */
export function trim(broker: MemoryBroker, topic: string, partition: number): void {
  const entries = broker.topics.get(topic)?.[partition];
  if (!entries) return;
  const readers = broker.readers.get(topic);
  if (readers && readers.size > 0) {
    let floor = entries.end;
    for (const offsets of readers) floor = Math.min(floor, offsets.get(partition) ?? 0);
    entries.dropBefore(floor - broker.keepRead);
  }
  if (entries.size > broker.maxCount) entries.dropBefore(entries.end - broker.maxCount);
}

/** A group's state on `topic`, made (and counted as a reader) on first use. */
export function groupOf(broker: MemoryBroker, topic: string, group: string): GroupState {
  const id = `${topic}\u0000${group}`;
  let state = broker.groups.get(id);
  if (!state) {
    state = { offsets: new Map(), members: new Map(), rebalancing: Promise.resolve() };
    broker.groups.set(id, state);
    readersOf(broker, topic).add(state.offsets);
  }
  return state;
}
