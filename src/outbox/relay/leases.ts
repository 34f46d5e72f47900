// The relay's partition leases: renewed every third of their time-to-live, taken up to a fair
// share of the partitions, given back beyond it, and dropped when another relay took one over.
import type { Logger } from '../../core/log.js';
import type { Lease, OutboxStore } from '../store.js';

export interface HeldLease extends Lease {
  /** Set when the relay stops working the partition (given back or lost). */
  gone: boolean;
  /**
   * Local time before which the lease surely still holds: when the call that last renewed or
   * took it was made, plus the lease time-to-live (the store dates it no earlier).
   */
  validUntil: number;
}

export interface LeaseKeeper {
  /** Leases held now, by partition. */
  readonly held: ReadonlyMap<number, HeldLease>;
  /** Leases found taken over by another relay. */
  readonly lost: number;
  /** One upkeep pass: renew, then take or give back partitions for balance. */
  maintain(): Promise<void>;
  /** Stops working `lease`'s partition: `lost` to another relay, or `released` by this one. */
  drop(lease: HeldLease, reason: 'lost' | 'released'): void;
  /**
   * Whether rows of `lease` may still be sent: only while the lease surely holds for long
   * enough to mark them too (a third of its time-to-live). A relay starved past that (a
   * stalled event loop, a slow store) stops publishing the partition instead of racing the
   * relay that may take it over.
   */
  mayPublish(lease: HeldLease): boolean;
}

export interface LeaseKeeperOptions {
  readonly store: OutboxStore<unknown>;
  readonly owner: string;
  readonly leaseMs: number;
  readonly logger: Logger;
  /** False once the relay stops: renewals go on, but nothing new is taken. */
  readonly running: () => boolean;
  /** A partition was taken: start working it. */
  readonly adopted: (lease: HeldLease) => void;
  /** A partition is no longer worked. */
  readonly dropped: (lease: HeldLease) => void;
  /** Resolves once nothing of `partition` is being published or marked any more. */
  readonly settled: (partition: number) => Promise<void>;
}

export function createLeaseKeeper(options: LeaseKeeperOptions): LeaseKeeper {
  const { store, owner, leaseMs, logger } = options;
  // Renewals come every third of the lease; sending stops a third before it runs out, which
  // leaves that third to mark what was sent.
  const publishMarginMs = leaseMs / 3;
  const held = new Map<number, HeldLease>();
  /** Partitions given up for balance whose rows in flight have not been marked yet. */
  const releasing = new Set<number>();
  let lost = 0;

  const drop = (lease: HeldLease, reason: 'lost' | 'released'): void => {
    if (held.get(lease.partition) !== lease) return;
    lease.gone = true;
    held.delete(lease.partition);
    if (reason === 'lost') {
      lost++;
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
    options.dropped(lease);
  };

  const adopt = (lease: Lease, validUntil: number): void => {
    const current = held.get(lease.partition);
    if (current && current.fence === lease.fence) {
      current.validUntil = Math.max(current.validUntil, validUntil);
      return;
    }
    if (current) drop(current, 'lost');
    const fresh: HeldLease = {
      partition: lease.partition,
      fence: lease.fence,
      gone: false,
      validUntil,
    };
    held.set(lease.partition, fresh);
    options.adopted(fresh);
  };

  const giveBack = (extras: readonly HeldLease[], share: number, live: number): void => {
    for (const lease of extras) {
      drop(lease, 'released');
      releasing.add(lease.partition);
    }
    // Give a partition back only after its rows in flight are marked, so the next owner does
    // not publish them again; heartbeats keep the lease meanwhile, and do not wait for it.
    const partitions = extras.map((lease) => lease.partition);
    void Promise.allSettled(partitions.map((partition) => options.settled(partition)))
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
      // Stopped meanwhile: the leases are given back with the rest.
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
      }
    } else if (held.size > share) {
      const extras = [...held.values()]
        .sort((a, b) => b.partition - a.partition)
        .slice(0, held.size - share);
      giveBack(extras, share, live);
    }
  }

  return {
    held,
    get lost() {
      return lost;
    },
    maintain,
    drop,
    mayPublish: (lease) => !lease.gone && Date.now() < lease.validUntil - publishMarginMs,
  };
}
