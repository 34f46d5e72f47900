// One held partition's pipeline: reads its next batch while the current one is published, and
// marks published batches in the background, in order, fenced by the lease. A partition waits
// only for itself: no other partition's reads, sends or marks hold it up.
import { describeError, isFerryError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { backoffDelay, type RetryPolicy } from '../../core/retry.js';
import type { Instrumentation } from '../../observability/instrumentation.js';
import type { OutboxRecord, OutboxStore } from '../store.js';
import type { HeldLease, LeaseKeeper } from './leases.js';
import { isOutage, type OutageTracker, type Send } from './publish.js';

export interface RelayCounters {
  published: number;
  failed: number;
  dead: number;
  batches: number;
}

export interface PartitionWorkerContext {
  readonly store: OutboxStore<unknown>;
  readonly owner: string;
  readonly batchSize: number;
  readonly pollMinMs: number;
  readonly pollMaxMs: number;
  readonly policy: RetryPolicy;
  readonly leases: LeaseKeeper;
  readonly send: Send;
  readonly outage: OutageTracker;
  readonly counters: RelayCounters;
  readonly instrumentation: Instrumentation;
  readonly logger: Logger;
  readonly running: () => boolean;
  readonly audit: (row: OutboxRecord, result: string, extra?: Record<string, unknown>) => void;
  readonly afterPublish:
    ((partition: number, ids: readonly string[]) => void | Promise<void>) | undefined;
}

export interface PartitionWorker {
  /** Rows may be waiting (a wake-up or a new lease): read now rather than at the next poll. */
  wake(): void;
  /** Resolves once the worker stopped sending and every mark it started has finished. */
  readonly finished: Promise<void>;
}

/** Batches sent but not yet marked, at most: the one being marked and the ones queued behind it. */
const MAX_UNMARKED_BATCHES = 2;

const idsOf = (rows: readonly OutboxRecord[]): string[] => rows.map((row) => row.id);

/** Starts working `lease`'s partition until the lease is gone or the relay stops. */
export function startPartitionWorker(
  lease: HeldLease,
  context: PartitionWorkerContext,
): PartitionWorker {
  const { store, owner, batchSize, leases, outage, counters, logger } = context;
  const { partition } = lease;
  const active = (): boolean => context.running() && !lease.gone;

  let dirty = true;
  let idleMs = context.pollMinMs;
  let waiter: (() => void) | undefined;
  /**
   * `seq`s of the rows being sent or marked: reads leave them out. (Not a cursor: a row that
   * commits late with a lower `seq` than rows already sent must still be read, before the
   * later rows of its key.)
   */
  const taken = new Set<bigint>();
  const release = (rows: readonly OutboxRecord[]): void => {
    for (const row of rows) taken.delete(row.seq);
  };

  // Marks run one statement at a time, in order; batches sent meanwhile are marked together.
  const queued: OutboxRecord[][] = [];
  let marking: Promise<void> | undefined;
  let unmarked = 0;
  /** A mark failed: its rows are pending again and must be read again before anything else. */
  let markError = false;
  const markIdle: Array<() => void> = [];

  async function markQueued(): Promise<void> {
    while (queued.length > 0) {
      const batches = queued.splice(0);
      const rows = batches.length === 1 ? (batches[0] as OutboxRecord[]) : batches.flat();
      try {
        const marked = await store.markPublished(owner, lease, idsOf(rows));
        const ok = marked === rows.length;
        if (!ok) leases.drop(lease, 'lost');
        counters.published += marked;
        for (const row of rows) context.audit(row, ok ? 'ok' : 'unmarked');
      } catch (error) {
        // Still pending: read (and published) again once the marks before them are done.
        markError = true;
        logger.error(
          { event: 'relay-mark', partition, result: 'error', err: error },
          'marking published rows failed: they are published again',
        );
      }
      release(rows);
      unmarked -= batches.length;
      for (const resolve of markIdle.splice(0)) resolve();
    }
    marking = undefined;
  }

  const queueMark = (rows: readonly OutboxRecord[]): void => {
    if (rows.length === 0) return;
    queued.push(rows as OutboxRecord[]);
    unmarked++;
    marking ??= markQueued();
  };

  /** Waits until fewer than `limit` batches are unmarked; false when the lease was lost. */
  async function marksBelow(limit: number): Promise<boolean> {
    while (unmarked >= limit && unmarked > 0) {
      await new Promise<void>((resolve) => markIdle.push(resolve));
    }
    return !lease.gone;
  }
  const marksDone = (): Promise<boolean> => marksBelow(1);

  async function read(): Promise<OutboxRecord[] | undefined> {
    try {
      const exclude = taken.size === 0 ? undefined : [...taken];
      const rows = await store.readPending(partition, batchSize, exclude);
      // A store that ignores `exclude` returns rows being sent or marked: leave them out.
      if (exclude === undefined || !rows.some((row) => taken.has(row.seq))) return rows;
      return rows.filter((row) => !taken.has(row.seq));
    } catch (error) {
      logger.error(
        { event: 'relay-read', partition, result: 'error', err: error },
        'reading pending rows failed',
      );
      return undefined;
    }
  }

  /** Waits for a wake-up or the next poll; true when the poll timer ended the wait. */
  function nextTurn(): Promise<boolean> {
    if (!active()) return Promise.resolve(false);
    const probeMs = outage.waitMs();
    if (dirty && probeMs === 0 && leases.mayPublish(lease)) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        waiter = undefined;
        resolve(true);
      }, probeMs || idleMs);
      waiter = () => {
        clearTimeout(timer);
        waiter = undefined;
        resolve(false);
      };
    });
  }

  /**
   * Publishes `rows` (already in `taken`), then queues their mark; false when they were not all
   * sent (those not sent leave `taken`).
   */
  async function publish(rows: readonly OutboxRecord[]): Promise<boolean> {
    if (
      !(await marksBelow(MAX_UNMARKED_BATCHES)) ||
      markError ||
      !active() ||
      !leases.mayPublish(lease) ||
      outage.waitMs() > 0
    ) {
      release(rows);
      return false;
    }
    counters.batches++;
    try {
      await context.send(rows);
    } catch (error) {
      const sent = await publishEach(rows, error);
      release(rows.slice(sent));
      return false;
    }
    outage.up();
    await context.afterPublish?.(partition, idsOf(rows));
    queueMark(rows);
    return true;
  }

  /**
   * After a batch failed: a broker outage waits for the next probe. Otherwise the row(s) the
   * broker refuses are found one by one, in order, stopping at the first failure so that later
   * rows of its keys do not overtake it; that row is charged an attempt, or marked dead.
   * Returns how many rows were sent (and queued to be marked).
   */
  async function publishEach(rows: readonly OutboxRecord[], batchError: unknown): Promise<number> {
    if (isOutage(batchError)) {
      outage.down(batchError);
      return 0;
    }
    const sent: OutboxRecord[] = [];
    for (const row of rows) {
      if (!active() || !leases.mayPublish(lease)) break;
      try {
        await context.send([row]);
        outage.up();
        sent.push(row);
        continue;
      } catch (error) {
        await context.afterPublish?.(partition, idsOf(sent));
        queueMark(sent);
        if (!(await marksDone())) return sent.length;
        if (isOutage(error)) outage.down(error);
        else await refused(row, error);
        return sent.length;
      }
    }
    await context.afterPublish?.(partition, idsOf(sent));
    queueMark(sent);
    return sent.length;
  }

  async function refused(row: OutboxRecord, error: unknown): Promise<void> {
    const { policy } = context;
    const attempts = row.attempts + 1;
    const dead = attempts >= policy.maxAttempts || isFerryError(error, 'MESSAGE_TOO_LARGE');
    const retryInMs = dead ? 0 : backoffDelay(policy, attempts);
    const recorded = await store.markFailed(owner, lease, row.id, describeError(error), {
      dead,
      retryInMs,
    });
    if (!recorded) {
      leases.drop(lease, 'lost');
      return;
    }
    counters.failed++;
    if (dead) counters.dead++;
    context.instrumentation.relayFailed({ relay: owner, dead });
    context.audit(row, dead ? 'dead' : 'failed', { err: error, ...(dead ? {} : { retryInMs }) });
    // The rest of the partition (other keys, or this key after a dead row) can go on at once.
    dirty = true;
  }

  async function run(): Promise<void> {
    let ahead: Promise<OutboxRecord[] | undefined> | undefined;
    while (active()) {
      let rows: OutboxRecord[] | undefined;
      if (ahead !== undefined) {
        rows = await ahead;
        ahead = undefined;
      } else {
        const polled = await nextTurn();
        if (!active()) break;
        if (outage.waitMs() > 0 || !leases.mayPublish(lease)) continue;
        dirty = false;
        if (markError && !(await marksDone())) break;
        if (unmarked === 0) markError = false;
        rows = await read();
        // Only a poll that finds rows no wake-up announced keeps polling often.
        if (polled) {
          idleMs =
            rows !== undefined && rows.length > 0
              ? context.pollMinMs
              : Math.min(context.pollMaxMs, Math.max(1, idleMs * 2));
        }
      }
      if (rows === undefined || rows.length === 0 || !active()) continue;
      for (const row of rows) taken.add(row.seq);
      // A full batch: more is likely waiting, so the next batch is read while this one is sent.
      if (rows.length >= batchSize) ahead = read();
      if (await publish(rows)) continue;
      // Not all sent: what was read after these rows must not overtake them.
      if (ahead !== undefined) await ahead;
      ahead = undefined;
      await marksDone();
    }
    if (ahead !== undefined) await ahead;
    await marksDone();
  }

  const finished = run().catch((error: unknown) => {
    logger.error({ event: 'relay-partition', partition, result: 'error', err: error }, 'failed');
  });

  return {
    wake() {
      dirty = true;
      waiter?.();
    },
    finished,
  };
}
