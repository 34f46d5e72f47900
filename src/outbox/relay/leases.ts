// The relay's partition leases: renewed every third of their time-to-live, taken up to a fair
// share of the partitions, given back beyond it, and dropped when another relay took one over.
import type { Logger } from '../../core/log.js';
import type { Lease, OutboxStore } from '../store.js';
import type { RelayCounters } from './options.js';

/** A lease this relay works, with what it knows locally of its validity. */
export interface HeldLease extends Lease {
  /** Set when the relay stops working the partition (given back or lost). */
  gone: boolean;
  /**
   * Local time before which the lease surely still holds: when the call that last renewed or
   * took it was made, plus the lease time-to-live (the store dates it no earlier).
   */
  validUntil: number;
}

/** What {@link leaseKeeper} needs of the relay around it. */
export interface LeaseKeeperOptions {
  readonly store: OutboxStore<unknown>;
  readonly owner: string;
  readonly leaseMs: number;
  readonly logger: Logger;
  readonly counters: RelayCounters;
  /** False once the relay stops: renewals go on, but nothing new is taken. */
  readonly running: () => boolean;
  /** The batch being published of each partition, if any: a partition is given back after it. */
  readonly inFlight: ReadonlyMap<number, Promise<unknown>>;
  /** Partitions were taken: their rows may be waiting. */
  readonly acquired: () => void;
}

/** The leases of one relay and their upkeep. */
export interface LeaseKeeper {
  /** Leases held now, by partition. */
  readonly held: ReadonlyMap<number, HeldLease>;
  /** Takes the first leases, then renews every third of their time-to-live. */
  start(): Promise<void>;
  /** Stops the renewals (the one under way goes on: see {@link LeaseKeeper.upkeep}). */
  stopRenewing(): void;
  /** The upkeep under way, or a resolved promise; it never rejects. */
  upkeep(): Promise<void>;
  /** Stops working `lease`'s partition: `lost` to another relay, or `released` by this one. */
  drop(lease: HeldLease, reason: 'lost' | 'released'): void;
  /**
   * Whether rows of `lease` may still be sent: only while the lease surely holds for long
   * enough to mark them too. A relay starved past that (a stalled event loop, a slow store)
   * stops publishing the partition instead of racing the relay that may take it over.
   */
  mayPublish(lease: HeldLease): boolean;
}

/**
 * Keeps the leases of `owner`: each upkeep renews the held ones (a renewal that comes back
 * with another fence means the lease was lost), then takes partitions up to a fair share of
 * the live relays or gives back the extras once their batch in flight is marked.
 */
export function leaseKeeper(options: LeaseKeeperOptions): LeaseKeeper {
  const { store, owner, leaseMs, logger, counters, inFlight } = options;
  // Renewals come every third of the lease; sending stops a third before it runs out, which
  // leaves that third to mark what was sent.
  const publishMarginMs = leaseMs / 3;
  const held = new Map<number, HeldLease>();
  /** Partitions given up for balance whose batch in flight has not been marked yet. */
  const releasing = new Set<number>();
  let timer: NodeJS.Timeout | undefined;
  let work: Promise<void> = Promise.resolve();

  const drop = (lease: HeldLease, reason: 'lost' | 'released'): void => {
    if (held.get(lease.partition) !== lease) return;
    lease.gone = true;
    held.delete(lease.partition);
    if (reason === 'lost') {
      counters.leasesLost++;
      logger.warn(
        {
          event: 'relay-lease',
          partition: lease.partition,
          fence: String(lease.fence),
          result: 'lost',
        },
        'lease lost to another relay',
      );
    }
  };

  const adopt = (lease: Lease, validUntil: number): void => {
    const current = held.get(lease.partition);
    if (current && current.fence === lease.fence) {
      current.validUntil = Math.max(current.validUntil, validUntil);
      return;
    }
    if (current) drop(current, 'lost');
    held.set(lease.partition, {
      partition: lease.partition,
      fence: lease.fence,
      gone: false,
      validUntil,
    });
  };

  const giveBack = (extras: readonly HeldLease[], share: number, live: number): void => {
    for (const lease of extras) {
      drop(lease, 'released');
      releasing.add(lease.partition);
    }
    // Give a partition back only after its batch in flight is marked, so the next owner
    // does not publish the same rows again; heartbeats keep the lease meanwhile, and do
    // not wait for it.
    const partitions = extras.map((lease) => lease.partition);
    void Promise.allSettled(partitions.map((p) => inFlight.get(p) ?? Promise.resolve(0)))
      .then(() => store.release(owner, partitions))
      .then(
        () =>
          logger.info(
            { event: 'relay-lease', result: 'released', partitions, share, live },
            'leases given back for balance',
          ),
        (error: unknown) =>
          logger.error({ event: 'relay-lease', result: 'error', err: error }, 'release failed'),
      )
      .finally(() => {
        for (const partition of partitions) releasing.delete(partition);
      });
  };

  async function maintain(): Promise<void> {
    // The store dates the renewal when it runs the call, never before it was made.
    const asked = Date.now();
    const renewed = await store.heartbeat(owner, leaseMs);
    const still = new Map(renewed.map((lease) => [lease.partition, lease]));
    for (const lease of [...held.values()]) {
      const current = still.get(lease.partition);
      if (current?.fence !== lease.fence) drop(lease, 'lost');
      else lease.validUntil = Math.max(lease.validUntil, asked + leaseMs);
    }
    if (!options.running()) return;
    for (const lease of renewed) if (!releasing.has(lease.partition)) adopt(lease, asked + leaseMs);

    const live = Math.max(1, await store.liveRelays());
    const share = Math.ceil(store.partitions / live);
    const holding = held.size + releasing.size;
    if (holding < share) {
      const askedAcquire = Date.now();
      const taken = await store.acquire(owner, share - holding, leaseMs);
      for (const lease of taken) adopt(lease, askedAcquire + leaseMs);
      if (taken.length > 0) {
        logger.info(
          {
            event: 'relay-lease',
            result: 'acquired',
            partitions: taken.map((lease) => lease.partition),
            share,
            live,
          },
          'leases acquired',
        );
        options.acquired();
      }
    } else if (held.size > share) {
      const extras = [...held.values()]
        .sort((a, b) => b.partition - a.partition)
        .slice(0, held.size - share);
      giveBack(extras, share, live);
    }
  }

  const schedule = (): void => {
    work = work.then(maintain).catch((error: unknown) => {
      logger.error({ event: 'relay-lease', result: 'error', err: error }, 'lease upkeep failed');
    });
  };

  return {
    held,
    async start() {
      schedule();
      await work;
      timer = setInterval(schedule, Math.max(1, Math.floor(leaseMs / 3)));
      timer.unref();
    },
    stopRenewing() {
      if (timer) clearInterval(timer);
    },
    upkeep: () => work,
    drop,
    mayPublish: (lease) => !lease.gone && Date.now() < lease.validUntil - publishMarginMs,
  };
}
