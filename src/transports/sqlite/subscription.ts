import { randomUUID } from 'node:crypto';
import type { FerryErrorCode } from '../../core/errors.js';
import { PartitionPump, type StopSubscription } from '../../transport/kernel.js';
import type { CloseOptions, DeliveryHandler, SubscribeOptions } from '../../transport/transport.js';
import type { SqliteSettings } from './options.js';
import type { SqliteLog } from './wire.js';

/** Pumps of every open subscription in this process, per database file and topic. */
export const localPumps = new Map<string, Set<PartitionPump>>();

/** What the subscriptions of one transport share. */
export interface SqliteContext {
  readonly log: SqliteLog;
  readonly settings: SqliteSettings;
  /** Topics with live subscriptions, and how many: the poller wakes their pumps. */
  readonly watchedTopics: Map<string, number>;
  readonly report: (error: unknown, code: FerryErrorCode, what: string) => void;
}

/**
 * A member of a group (or a private reader) on one topic of the log. Group members share
 * partitions through leases in the file: each renews its own every `heartbeatIntervalMs`,
 * drops members silent for `sessionTimeoutMs`, takes a fair share of the free partitions
 * and gives back extras only after their handlers stopped, so no partition is read by two
 * members at once. The group offset moves only after handlers resolved, and only while the
 * member still holds the partition's lease (else `LEASE_LOST`, and the new owner redoes it).
 */
export async function subscribeSqlite(
  context: SqliteContext,
  options: SubscribeOptions,
  handler: DeliveryHandler,
): Promise<StopSubscription> {
  const { log, settings, watchedTopics } = context;
  const { partitionsOf, endOf, firstOf } = log;
  const { topic, group } = options;
  const partitions = partitionsOf(topic);
  const from = options.from ?? (group === undefined ? 'latest' : 'earliest');
  const member = randomUUID();
  const privatePositions = new Map<number, number>();
  const startOf = (partition: number): number =>
    from === 'earliest' ? firstOf(topic, partition) : endOf(topic, partition);

  const pump = new PartitionPump(
    {
      position: (partition) => {
        if (group === undefined) return privatePositions.get(partition) ?? startOf(partition);
        return log.committed(group, topic, partition) ?? startOf(partition);
      },
      read: (partition, offset, limit) => log.read(topic, partition, offset, limit),
      commit: (partition, next) => {
        if (group === undefined) {
          privatePositions.set(partition, next);
          return;
        }
        log.commitHeld(group, topic, member, partition, next);
      },
    },
    handler,
    {
      concurrency: options.concurrency ?? settings.concurrency ?? partitions,
      idleWaitMs: 1000,
      redeliveryDelayMs: 50,
      onError: (error) => context.report(error, 'STORE_FAILED', `SQLite log ${topic}`),
    },
  );
  const pumpKey = `${settings.path}\u0000${topic}`;
  let pumps = localPumps.get(pumpKey);
  if (!pumps) localPumps.set(pumpKey, (pumps = new Set()));
  pumps.add(pump);
  watchedTopics.set(topic, (watchedTopics.get(topic) ?? 0) + 1);

  // Group membership: renew our leases, drop the dead, take a fair share, give back extras.
  const balance = async (): Promise<void> => {
    if (group === undefined) return;
    const { keep, take } = log.renewLeases(group, topic, member, settings.sessionTimeoutMs);
    const held = [...keep, ...take];
    // Stop work on extras before letting them go, so no partition is read by two members.
    await pump.assign(held);
    log.giveBack(group, topic, member, held);
  };

  let heartbeat: NodeJS.Timeout | undefined;
  let balancing: Promise<void> = Promise.resolve();
  const rebalance = (): Promise<void> =>
    (balancing = balancing.catch(() => undefined).then(balance));
  if (group === undefined) {
    for (let p = 0; p < partitions; p++) privatePositions.set(p, startOf(p));
    await pump.assign(Array.from({ length: partitions }, (_, p) => p));
  } else {
    await rebalance();
    heartbeat = setInterval(() => {
      rebalance().catch((error: unknown) =>
        context.report(error, 'STORE_FAILED', `Renewing the leases of ${group} on ${topic}`),
      );
    }, settings.heartbeatIntervalMs);
  }

  return async (closeOptions?: CloseOptions) => {
    clearInterval(heartbeat);
    await balancing.catch(() => undefined);
    await pump.close(closeOptions?.timeoutMs ?? 30_000);
    pumps.delete(pump);
    const watchers = (watchedTopics.get(topic) ?? 1) - 1;
    if (watchers === 0) watchedTopics.delete(topic);
    else watchedTopics.set(topic, watchers);
    if (group !== undefined) {
      log.leave(group, topic, member);
    }
  };
}
