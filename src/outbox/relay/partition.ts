// A round's turns of its partitions: read each one's next batch, publish it, mark it
// published under the lease's fence. Where the store reads and marks several partitions in
// one statement, the partitions of a round go together: one read, one publish, one mark,
// and while they come back full the round runs laps that overlap the next read and this
// mark with the broker's confirmation.
// A batch the broker refuses is sent again partition by partition and then row by row, to
// find the row at fault, which is charged an attempt (or marked dead) while the rows before
// it are marked.
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

/**
 * Laps one round may run: while partitions come back full, the next lap's read runs during
 * this lap's send, and this lap's mark during the next lap's send. Bounded so that other
 * partitions' wake-ups wait at most this many laps.
 */
const MAX_LAPS = 4;

interface Batch {
  readonly lease: HeldLease;
  readonly rows: readonly OutboxRecord[];
}

/** Works turns of held partitions: one, or several together. */
export interface PartitionPublisher {
  /** One turn of `lease`'s partition. */
  one(lease: HeldLease): Promise<PartitionTurn>;
  /** One turn of each of `leases`, read, published and marked together where the store can. */
  together(leases: readonly HeldLease[]): Promise<PartitionTurn[]>;
}

/** The turns of held partitions, for the relay's rounds. */
export function partitionPublisher(work: PartitionWork): PartitionPublisher {
  const { store, owner, batchSize, policy, leases, send, outage, counters, audit } = work;
  const afterPublish = work.afterPublish;

  /** Counts and audits what a mark of `rows` did; false when the lease was lost meanwhile. */
  function settle(lease: HeldLease, rows: readonly OutboxRecord[], marked: number): boolean {
    const ok = marked === rows.length;
    if (!ok) leases.drop(lease, 'lost');
    counters.published += marked;
    for (const row of rows) audit(row, ok ? 'ok' : 'unmarked');
    return ok;
  }

  /** Marks `rows` published; false when the lease was lost meanwhile. */
  async function markPublished(lease: HeldLease, rows: readonly OutboxRecord[]): Promise<boolean> {
    if (rows.length === 0) return true;
    const marked = await store.markPublished(
      owner,
      lease,
      rows.map((row) => row.id),
    );
    return settle(lease, rows, marked);
  }

  const idsOf = (rows: readonly OutboxRecord[]): string[] => rows.map((row) => row.id);

  /** Publishes `rows`, read from `lease`'s partition, and marks what went through. */
  async function deliver(lease: HeldLease, rows: readonly OutboxRecord[]): Promise<PartitionTurn> {
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
      await afterPublish?.(lease.partition, idsOf(rows));
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
        await afterPublish?.(lease.partition, idsOf(sent));
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
    await afterPublish?.(lease.partition, idsOf(sent));
    await markPublished(lease, sent);
    return { settled: sent.length, more: full };
  }

  async function one(lease: HeldLease): Promise<PartitionTurn> {
    if (!leases.mayPublish(lease)) return NOTHING;
    const rows = await store.readPending(lease.partition, batchSize);
    if (rows.length === 0 || !leases.mayPublish(lease)) return NOTHING;
    return deliver(lease, rows);
  }

  /** Marks a lap's batches published together and counts what each mark did. */
  async function markLap(batches: readonly Batch[]): Promise<void> {
    const marks = batches.map(({ lease, rows }) => ({ lease, ids: idsOf(rows) }));
    const marked = await (store.markPublishedMany
      ? store.markPublishedMany(owner, marks)
      : Promise.all(marks.map(({ lease, ids }) => store.markPublished(owner, lease, ids))));
    batches.forEach(({ lease, rows }, i) => settle(lease, rows, marked[i] ?? 0));
  }

  async function together(held: readonly HeldLease[]): Promise<PartitionTurn[]> {
    const readMany = store.readPendingMany?.bind(store);
    if (readMany === undefined || held.length <= 1) return settledAll(held.map(one));
    const turns = new Map<number, PartitionTurn>();
    const count = (partition: number, turn: PartitionTurn): void => {
      const before = turns.get(partition)?.settled ?? 0;
      turns.set(partition, { settled: before + turn.settled, more: turn.more });
    };
    const open = held.filter((lease) => leases.mayPublish(lease));
    let read: ReadonlyMap<number, OutboxRecord[]> =
      open.length === 0
        ? new Map()
        : await readMany(
            open.map((l) => l.partition),
            batchSize,
          );
    // The previous lap's mark, running while this lap is sent. Its failure (and a failed
    // read ahead) surfaces where it is awaited; the .catch only keeps it from counting as
    // unhandled in the meantime.
    let marking: { rows: Map<number, readonly OutboxRecord[]>; done: Promise<void> } | undefined;
    const markingDone = async (): Promise<void> => {
      const last = marking;
      marking = undefined;
      await last?.done;
    };
    try {
      for (let lap = 1; ; lap++) {
        const batches = held
          .map((lease) => ({ lease, rows: read.get(lease.partition) ?? [] }))
          .filter(({ lease, rows }) => rows.length > 0 && leases.mayPublish(lease));
        if (batches.length === 0) break;
        // Partitions that came back full are read again while this lap is sent, leaving out
        // the rows in flight (this lap's, and the previous lap's until they are marked).
        const full = batches.filter(({ rows }) => rows.length >= batchSize);
        let ahead: Promise<ReadonlyMap<number, OutboxRecord[]>> | undefined;
        if (lap < MAX_LAPS && full.length > 0) {
          const skip = new Map(
            full.map(({ lease, rows }) => [
              lease.partition,
              [...(marking?.rows.get(lease.partition) ?? []), ...rows].map((row) => row.seq),
            ]),
          );
          ahead = readMany(
            full.map(({ lease }) => lease.partition),
            batchSize,
            skip,
          );
          void ahead.catch(() => undefined);
        }
        try {
          await send(batches.flatMap(({ rows }) => rows));
        } catch (error) {
          await markingDone();
          await ahead?.catch(() => undefined);
          if (isOutage(error)) {
            counters.batches += batches.length;
            outage.down(error);
            break;
          }
          // A row is refused: each partition on its own finds which.
          const alone = await settledAll(batches.map(({ lease, rows }) => deliver(lease, rows)));
          batches.forEach(({ lease }, i) => count(lease.partition, alone[i] ?? NOTHING));
          break;
        }
        counters.batches += batches.length;
        outage.up();
        // Marks follow one another in lap order, as the hooks before them.
        await markingDone();
        if (afterPublish !== undefined) {
          for (const { lease, rows } of batches) await afterPublish(lease.partition, idsOf(rows));
        }
        marking = {
          rows: new Map(batches.map(({ lease, rows }) => [lease.partition, rows])),
          done: markLap(batches),
        };
        void marking.done.catch(() => undefined);
        for (const { lease, rows } of batches) {
          count(lease.partition, { settled: rows.length, more: rows.length >= batchSize });
        }
        if (ahead === undefined) break;
        read = await ahead;
      }
    } finally {
      await markingDone();
    }
    return held.map((lease) => turns.get(lease.partition) ?? NOTHING);
  }

  return { one, together };
}

/**
 * The values of `turns` once every one has settled, or the first failure then: a partition's
 * turn is never left running behind a round that has ended (its lease may be given back).
 */
async function settledAll<T>(turns: readonly Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(turns);
  const failed = settled.find((result) => result.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  return settled.map((result) => (result as PromiseFulfilledResult<T>).value);
}
