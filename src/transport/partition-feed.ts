import type { Delivery } from '../core/message.js';
import type { PumpSource } from './partition-pump.js';

/** Options of a {@link PartitionFeed}. */
export interface FeedOptions {
  /** Messages held (queued, or handed out and not yet handled) at which `onFull` is called. */
  readonly maxHeld: number;
  /** The feed holds `maxHeld` messages: stop pushing (pause the client) until `onRoom`. */
  readonly onFull: () => void;
  /** After `onFull`, the feed holds at most half of `maxHeld` again: push on. */
  readonly onRoom: () => void;
  /** New messages in `partition`: wakes its worker (`PartitionPump.wake`). */
  readonly wake: (partition: number) => void;
  /** As `PumpSource.handled`: after each message handled, in offset order per partition. */
  readonly handled: (partition: number, nextOffset: number) => void;
}

interface Queue {
  readonly items: (Delivery | undefined)[];
  head: number;
  /** The last offset pushed: a message at or before it is a refetch, already queued. */
  last: number;
  /** Handed out to the worker and not yet handled. */
  taken: number;
}

/**
 * A {@link PumpSource} for messages a client pushes (Kafka's fetch stream) instead of a log
 * the pump reads at a position. `push` queues a partition's messages in offset order and
 * wakes its worker; the pump hands them out as it does a log's. The feed keeps no
 * positions: `position` is 0, a read hands out what was pushed (skipping offsets below the
 * position the worker reached), `commit` stores nothing — the client stores positions from
 * `handled`, which the pump calls after each message.
 *
 * Backpressure: once `maxHeld` messages are queued or being handled, `onFull`; once at most
 * half are, `onRoom`.
 */
export class PartitionFeed implements PumpSource {
  private readonly queues = new Map<number, Queue>();
  private held = 0;
  private full = false;

  constructor(private readonly options: FeedOptions) {}

  /** Queues a message of `partition` at `offset` (a number, as the pump counts). */
  push(partition: number, offset: number, delivery: Delivery): void {
    let queue = this.queues.get(partition);
    if (!queue) {
      queue = { items: [], head: 0, last: -1, taken: 0 };
      this.queues.set(partition, queue);
    }
    if (offset <= queue.last) return;
    queue.last = offset;
    const wasEmpty = queue.head === queue.items.length;
    queue.items.push(delivery);
    this.held++;
    if (!this.full && this.held >= this.options.maxHeld) {
      this.full = true;
      this.options.onFull();
    }
    // A worker with messages queued reads again before it waits: only the first needs a wake.
    if (wasEmpty) this.options.wake(partition);
  }

  /** Forgets `partition`'s queued messages (revoked, or refetched from its position). */
  drop(partition: number): void {
    const queue = this.queues.get(partition);
    if (!queue) return;
    this.queues.delete(partition);
    this.held -= queue.items.length - queue.head + queue.taken;
    this.roomCheck();
  }

  /** Forgets every partition's queued messages. */
  clear(): void {
    for (const partition of [...this.queues.keys()]) this.drop(partition);
  }

  position(): number {
    return 0;
  }

  read(partition: number, offset: number, limit: number): Delivery[] {
    const queue = this.queues.get(partition);
    if (!queue || queue.head === queue.items.length) return [];
    const { items } = queue;
    const batch: Delivery[] = [];
    while (queue.head < items.length && batch.length < limit) {
      const delivery = items[queue.head] as Delivery;
      items[queue.head++] = undefined;
      if (Number(delivery.offset) < offset) this.held--;
      else batch.push(delivery);
    }
    if (queue.head === items.length) {
      items.length = 0;
      queue.head = 0;
    } else if (queue.head > 1024 && queue.head * 2 > items.length) {
      items.splice(0, queue.head);
      queue.head = 0;
    }
    queue.taken += batch.length;
    this.roomCheck();
    return batch;
  }

  handled(partition: number, nextOffset: number): void {
    const queue = this.queues.get(partition);
    // A message of a dropped partition was already let go of with it.
    if (queue && queue.taken > 0) {
      queue.taken--;
      this.held--;
      this.roomCheck();
    }
    this.options.handled(partition, nextOffset);
  }

  commit(): void {
    // Positions are the client's, stored from `handled`.
  }

  private roomCheck(): void {
    if (this.full && this.held <= this.options.maxHeld / 2) {
      this.full = false;
      this.options.onRoom();
    }
  }
}
