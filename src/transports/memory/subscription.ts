import { randomUUID } from 'node:crypto';
import { PartitionPump, roundRobinShare, type StopSubscription } from '../../transport/kernel.js';
import type { DeliveryHandler, SubscribeOptions } from '../../transport/transport.js';
import type { FerryError } from '../../core/errors.js';
import { groupOf, logOf, readersOf, trim, type GroupState, type MemoryBroker } from './wire.js';

/**
 * Shares a group's partitions round robin among its members. Revokes first, then assigns,
 * so no partition is ever read by two members at once; rebalances of one group run one
 * after another.
 */
function rebalance(broker: MemoryBroker, state: GroupState): Promise<void> {
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
}

/** A member of a group (or a private reader) on one topic of an in-process broker. */
export async function subscribeMemory(
  broker: MemoryBroker,
  subscribe: SubscribeOptions,
  handler: DeliveryHandler,
  onError: (error: FerryError) => void,
): Promise<StopSubscription> {
  const { topic } = subscribe;
  const partitions = logOf(broker, topic);
  const group = subscribe.group === undefined ? undefined : groupOf(broker, topic, subscribe.group);
  const from = subscribe.from ?? (group ? 'earliest' : 'latest');
  const offsets = group?.offsets ?? new Map<number, number>();
  const start = (partition: number): number =>
    from === 'earliest' ? (partitions[partition]?.base ?? 0) : (partitions[partition]?.end ?? 0);
  const pump = new PartitionPump(
    {
      position: (partition) => {
        if (!offsets.has(partition)) offsets.set(partition, start(partition));
        return offsets.get(partition) ?? 0;
      },
      read: (partition, offset, limit) => partitions[partition]?.read(offset, limit) ?? [],
      commit: (partition, next) => {
        offsets.set(partition, Math.max(next, offsets.get(partition) ?? 0));
        trim(broker, topic, partition);
      },
    },
    handler,
    {
      concurrency: subscribe.concurrency ?? broker.partitions,
      idleWaitMs: 1000,
      redeliveryDelayMs: 50,
      onError,
    },
  );
  let pumps = broker.pumps.get(topic);
  if (!pumps) broker.pumps.set(topic, (pumps = new Set()));
  pumps.add(pump);
  const memberId = randomUUID();
  if (group) {
    group.members.set(memberId, pump);
    await rebalance(broker, group);
  } else {
    for (let partition = 0; partition < broker.partitions; partition++)
      offsets.set(partition, start(partition));
    readersOf(broker, topic).add(offsets);
    await pump.assign(Array.from({ length: broker.partitions }, (_, partition) => partition));
  }
  return async (closeOptions) => {
    pumps.delete(pump);
    await pump.close(closeOptions?.timeoutMs ?? 30_000);
    if (group) {
      group.members.delete(memberId);
      await rebalance(broker, group);
    } else {
      broker.readers.get(topic)?.delete(offsets);
    }
  };
}
