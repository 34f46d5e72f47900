// One partition's turn in a round: read its next batch, publish it, mark it published under
// the lease's fence. A batch the broker refuses is sent row by row to find the row at fault,
// which is charged an attempt (or marked dead) while the rows before it are marked.
import { describeError, isFerryError } from '../../core/errors.js';
import { backoffDelay, type RetryPolicy } from '../../core/retry.js';
import type { Instrumentation } from '../../observability/instrumentation.js';
import type { OutboxRecord, OutboxStore } from '../store.js';
import type { HeldLease, LeaseKeeper } from './leases.js';
import type { RelayCounters } from './options.js';
import { isOutage, type Audit, type OutageTracker, type Send } from './publish.js';

/** What a partition's turn needs of the relay around it. */
export interface PartitionWork {
  readonly store: OutboxStore<unknown>;
  readonly owner: string;
  readonly batchSize: number;
  readonly policy: RetryPolicy;
  readonly leases: LeaseKeeper;
  readonly send: Send;
  readonly outage: OutageTracker;
  readonly counters: RelayCounters;
  readonly instrumentation: Instrumentation;
  readonly audit: Audit;
  readonly afterPublish:
    ((partition: number, ids: readonly string[]) => void | Promise<void>) | undefined;
}

/** What one turn of a partition did. */
export interface PartitionTurn {
  /** Rows settled: published, or charged a failed attempt. */
  readonly settled: number;
  /** Rows may be waiting still: a full batch was read, or a refused row let the rest go on. */
  readonly more: boolean;
}

const NOTHING: PartitionTurn = { settled: 0, more: false };

/** A function that works one turn of a held partition. */
export function partitionPublisher(
  work: PartitionWork,
): (lease: HeldLease) => Promise<PartitionTurn> {
  const { store, owner, batchSize, policy, leases, send, outage, counters, audit } = work;
  const afterPublish = work.afterPublish;

  /** Marks `rows` published; false when the lease was lost meanwhile. */
  async function markPublished(lease: HeldLease, rows: readonly OutboxRecord[]): Promise<boolean> {
    if (rows.length === 0) return true;
    const marked = await store.markPublished(
      owner,
      lease,
      rows.map((row) => row.id),
    );
    const ok = marked === rows.length;
    if (!ok) leases.drop(lease, 'lost');
    counters.published += marked;
    for (const row of rows) audit(row, ok ? 'ok' : 'unmarked');
    return ok;
  }

  return async function publishPartition(lease: HeldLease): Promise<PartitionTurn> {
    if (!leases.mayPublish(lease)) return NOTHING;
    const rows = await store.readPending(lease.partition, batchSize);
    if (rows.length === 0 || !leases.mayPublish(lease)) return NOTHING;
    const full = rows.length >= batchSize;
    counters.batches++;
    let batchError: unknown;
    try {
      await send(rows);
    } catch (error) {
      batchError = error;
    }
    if (batchError === undefined) {
      outage.up();
      await afterPublish?.(
        lease.partition,
        rows.map((row) => row.id),
      );
      await markPublished(lease, rows);
      return { settled: rows.length, more: full };
    }
    if (isOutage(batchError)) {
      outage.down(batchError);
      return NOTHING;
    }
    // Find the row(s) the transport refuses: one by one, in order, stopping at the first
    // failure so that later rows of its keys do not overtake it.
    const sent: OutboxRecord[] = [];
    for (const row of rows) {
      if (!leases.mayPublish(lease)) break;
      try {
        await send([row]);
        outage.up();
        sent.push(row);
        continue;
      } catch (error) {
        await afterPublish?.(
          lease.partition,
          sent.map((r) => r.id),
        );
        if (!(await markPublished(lease, sent))) return { settled: sent.length, more: false };
        if (isOutage(error)) {
          outage.down(error);
          return { settled: sent.length, more: false };
        }
        const attempts = row.attempts + 1;
        const dead = attempts >= policy.maxAttempts || isFerryError(error, 'MESSAGE_TOO_LARGE');
        const retryInMs = dead ? 0 : backoffDelay(policy, attempts);
        const recorded = await store.markFailed(owner, lease, row.id, describeError(error), {
          dead,
          retryInMs,
        });
        if (!recorded) {
          leases.drop(lease, 'lost');
          return { settled: sent.length, more: false };
        }
        counters.failed++;
        if (dead) counters.dead++;
        work.instrumentation.relayFailed({ relay: owner, dead });
        audit(row, dead ? 'dead' : 'failed', {
          err: error,
          ...(dead ? {} : { retryInMs }),
        });
        return { settled: sent.length + 1, more: true };
      }
    }
    await afterPublish?.(
      lease.partition,
      sent.map((r) => r.id),
    );
    await markPublished(lease, sent);
    return { settled: sent.length, more: full };
  };
}
