// The relay: publishes what the outbox holds. This file holds its options and public face;
// relay/ holds the parts: leases (sharing partitions between relays), partition-worker (one
// partition's read → publish → mark pipeline), publish (rows to messages, outage vs refusal)
// and retention (deleting published rows).
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { FerryError } from '../core/errors.js';
import { auditFromEnv, createLogger, type Logger } from '../core/log.js';
import { defaultInstrumentation, type Instrumentation } from '../observability/instrumentation.js';
import { traceIdOf } from '../observability/tracing.js';
import { resolveRetry, type RetryPolicy } from '../core/retry.js';
import type { CloseOptions, Transport } from '../transport/transport.js';
import type { OutboxRecord, OutboxStore } from './store.js';
import { createLeaseKeeper, type HeldLease } from './relay/leases.js';
import {
  startPartitionWorker,
  type PartitionWorker,
  type RelayCounters,
} from './relay/partition-worker.js';
import { createOutageTracker, createSend } from './relay/publish.js';
import {
  resolveRetention,
  startPurger,
  type Purger,
  type RelayRetention,
} from './relay/retention.js';

export type { RelayRetention } from './relay/retention.js';
export { isOutage } from './relay/publish.js';

/** Options of {@link createRelay}: where to publish, and how to share and retry the work. */
export interface RelayOptions {
  /** Where messages go. The relay does not close it. */
  readonly transport: Transport;
  /**
   * The transport's identity, recorded with the relay's registration: scheme and host such
   * as `kafka://10.0.0.1:9092`, never credentials. A relay refuses (`CONFLICT`) to join an
   * outbox table whose live relays publish to another destination. Default: the
   * transport's name (`ferry relay` passes the URL's scheme and host).
   */
  readonly destination?: string;
  /** This relay's identity in the lease table. Default `host:pid:random`. */
  readonly owner?: string;
  /**
   * Lease time-to-live; renewed every third of it. A partition's rows are sent only while its
   * lease holds for another third (the time to mark them), so a starved relay stops sending
   * before another relay may take the partition over. Default 10 s.
   */
  readonly leaseMs?: number;
  /**
   * Most rows read, published (in one `transport.publish` call) and marked at a time per
   * partition. Default 500.
   */
  readonly batchSize?: number;
  /**
   * Publish attempts of one row the broker refuses before it is marked dead (a message too
   * large is dead at once). A broker outage (connection failure, timeout) is never charged
   * to a row: the relay waits and probes instead. Default 10.
   */
  readonly maxAttempts?: number;
  /** Wait before a failed row is tried again: exponential from 1 s, capped at 5 min, with jitter. */
  readonly backoff?: Partial<Omit<RetryPolicy, 'maxAttempts'>>;
  /**
   * Shortest wait between polls of a partition: a poll that finds rows no wake-up announced
   * polls again after this. Default 10 ms.
   */
  readonly pollMinMs?: number;
  /**
   * Longest wait between polls of a partition: each poll that finds nothing doubles the wait
   * up to this. `wake()` cuts it short. Default 1 s.
   */
  readonly pollMaxMs?: number;
  /**
   * Deletion of published rows: `{ maxAgeMs }` deletes them that long after they were
   * published (default 24 h), or `'keep'` keeps them (for replay by `republish`). A relay
   * keeps rows by age only: `maxCount` is refused (`INVALID_ARGUMENT`).
   */
  readonly retention?: RelayRetention | 'keep';
  /** Warnings and errors, and the audit lines with `audit`. Default {@link createLogger}. */
  readonly logger?: Logger;
  /** One info line per published row. Default: the `FERRY_AUDIT` environment variable, else off. */
  readonly audit?: boolean;
  /** Tracing and metrics hooks. Default: as the bus's (see `ferry/observability`). */
  readonly instrumentation?: Instrumentation;
  /**
   * Instrumentation points. `afterPublish` runs after the transport confirmed a batch and
   * before it is marked published (the window in which a crash causes a duplicate); the
   * partition's next batch is sent only once it has resolved.
   */
  readonly hooks?: {
    readonly afterPublish?: (partition: number, ids: readonly string[]) => void | Promise<void>;
  };
}

/** What a relay has done since it started: see {@link Relay.stats}. */
export interface RelayStats {
  readonly owner: string;
  /** Messages published and marked. */
  readonly published: number;
  /** Publishes the broker refused (each scheduled for a retry or marked dead). */
  readonly failed: number;
  /** Broker outages seen (connection failures, timeouts); none is charged to a row. */
  readonly outages: number;
  /** Since when the broker has been unreachable, or undefined while it is reachable. */
  readonly outageSince: Date | undefined;
  /** Messages marked dead. */
  readonly dead: number;
  /** Batches handed to the transport. */
  readonly batches: number;
  /** Leases found taken over by another relay. */
  readonly leasesLost: number;
  /** Partitions this relay holds now. */
  readonly partitions: readonly number[];
  /** Published rows deleted by retention. */
  readonly purged: number;
}

/**
 * Publishes what the outbox holds. Relays share the outbox's partitions through leases
 * (each partition has at most one relay at a time; writes are fenced, so a relay that lost
 * its lease cannot mark rows), publish each partition in `seq` order and partitions
 * independently of each other, and mark rows published only after the transport confirmed
 * them. At-least-once: a relay that dies after publishing and before marking leaves the rows
 * pending, and they are published again.
 */
export interface Relay {
  readonly owner: string;
  /** Registers, takes leases and starts publishing; resolves once running. */
  start(): Promise<void>;
  /**
   * Stops reading, waits up to `timeoutMs` (default 30 s) for the batches in flight to be
   * published and marked, then gives back its leases and registration. Idempotent.
   */
  stop(options?: CloseOptions): Promise<void>;
  /**
   * Reads now instead of at the next poll (e.g. on a database notification): `partition`'s
   * rows only when given, else those of every partition held. A partition this relay does not
   * hold is ignored.
   */
  wake(partition?: number): void;
  stats(): RelayStats;
}

/** `host:pid:random`: a relay owner unique per process and relay. */
export function defaultRelayOwner(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

/**
 * A relay that publishes the rows of the outbox `store` to `options.transport`.
 *
 * - Sharing: any number of relays (in one process or many) may run over one store. They split
 *   its partitions by leases (a fair share each, rebalanced as relays come and go); taking a
 *   partition over increments its fence, and every mark is fenced, so a relay that lost a
 *   lease can no longer mark its rows, and it stops sending a partition's rows a third of a
 *   lease before its lease could run out.
 * - Order and delivery: each partition's rows are published in `seq` order and marked
 *   published only after the broker confirmed them, so per-key order is kept. A relay crash
 *   (or a lost lease) between publish and mark publishes those rows again: at-least-once,
 *   deduplicated by the consumers' inbox.
 * - Speed: each partition is a pipeline of its own: its next batch is read while the current
 *   one is published, and marks run in the background, in order; an idle partition is read
 *   when woken (`wake(partition)`) or by its own adaptive poll.
 * - Outage vs poison: a broker outage (connection failure, timeout) charges no row; the
 *   relay waits and probes. A row the broker refuses is retried with backoff and marked dead
 *   after `maxAttempts`; a dead row blocks the later rows of its key (only that key) until it
 *   is retried or skipped.
 *
 * Nothing runs until `start()`; see {@link Relay} and {@link RelayOptions}.
 */
export function createRelay<Tx>(store: OutboxStore<Tx>, options: RelayOptions): Relay {
  const { transport } = options;
  const destination = options.destination ?? transport.name;
  const owner = options.owner ?? defaultRelayOwner();
  const leaseMs = positive('leaseMs', options.leaseMs ?? 10_000);
  const batchSize = positive('batchSize', options.batchSize ?? 500);
  const pollMinMs = options.pollMinMs ?? 10;
  const pollMaxMs = Math.max(pollMinMs, options.pollMaxMs ?? 1000);
  const policy = resolveRetry({
    initialDelayMs: 1000,
    maxDelayMs: 300_000,
    ...options.backoff,
    maxAttempts: options.maxAttempts ?? 10,
  });
  const retention = resolveRetention(options.retention);
  const auditOn = options.audit ?? auditFromEnv();
  const logger = (options.logger ?? createLogger(auditOn ? { level: 'info' } : {})).child({
    relay: owner,
  });
  const instrumentation = options.instrumentation ?? defaultInstrumentation();
  const outboxStore = store as OutboxStore<unknown>;

  const counters: RelayCounters = { published: 0, failed: 0, dead: 0, batches: 0 };
  const outage = createOutageTracker(logger, destination);
  const workers = new Map<number, PartitionWorker>();
  let state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  const running = (): boolean => state === 'running';
  let leaseTimer: NodeJS.Timeout | undefined;
  let leaseWork: Promise<void> = Promise.resolve();
  let purger: Purger | undefined;
  let stopped: Promise<void> | undefined;

  const audit = (row: OutboxRecord, result: string, extra: Record<string, unknown> = {}): void => {
    if (result === 'ok' && !auditOn) return;
    const line = {
      event: 'relay-publish',
      id: row.id,
      traceId: traceIdOf(row.headers),
      topic: row.topic,
      key: row.key,
      partition: row.partition,
      attempt: row.attempts + 1,
      result,
      ...extra,
    };
    if (result === 'ok') logger.info(line, 'relayed');
    else logger.warn(line, `relay ${result}`);
  };

  const leases = createLeaseKeeper({
    store: outboxStore,
    owner,
    leaseMs,
    logger,
    running,
    adopted: (lease: HeldLease) => {
      const worker = startPartitionWorker(lease, context);
      workers.set(lease.partition, worker);
      void worker.finished.then(() => {
        if (workers.get(lease.partition) === worker) workers.delete(lease.partition);
      });
    },
    dropped: (lease: HeldLease) => workers.get(lease.partition)?.wake(),
    settled: async (partition) => {
      await workers.get(partition)?.finished;
    },
  });
  const context = {
    store: outboxStore,
    owner,
    batchSize,
    pollMinMs,
    pollMaxMs,
    policy,
    leases,
    send: createSend(transport, instrumentation, owner),
    outage,
    counters,
    instrumentation,
    logger,
    running,
    audit,
    afterPublish: options.hooks?.afterPublish,
  };

  const scheduleLeases = (): void => {
    leaseWork = leaseWork
      .then(() => leases.maintain())
      .catch((error: unknown) => {
        logger.error({ event: 'relay-lease', result: 'error', err: error }, 'lease upkeep failed');
      });
  };

  function wake(partition?: number): void {
    if (partition === undefined) for (const worker of workers.values()) worker.wake();
    else workers.get(partition)?.wake();
  }

  function stats(): RelayStats {
    return {
      owner,
      ...counters,
      outages: outage.count,
      outageSince: outage.since === undefined ? undefined : new Date(outage.since),
      leasesLost: leases.lost,
      partitions: [...leases.held.keys()].sort((a, b) => a - b),
      purged: purger?.purged ?? 0,
    };
  }

  return {
    owner,
    async start() {
      if (state !== 'new') throw new FerryError('CLOSED', 'A relay can be started once');
      state = 'starting';
      const conflict = await store.register(owner, leaseMs, destination).catch((error: unknown) => {
        state = 'stopped';
        throw error;
      });
      if (conflict !== undefined) {
        state = 'stopped';
        throw new FerryError(
          'CONFLICT',
          `This outbox table feeds ${conflict}: a relay publishing to ${destination} may not join it (one outbox table feeds one transport; give the other transport its own table)`,
          { details: { destination, existing: conflict } },
        );
      }
      state = 'running';
      if (transport.capabilities.delivery === 'at-most-once') {
        logger.warn(
          { event: 'relay-start', transport: transport.name },
          `${transport.name} delivers at most once: messages relayed while no subscriber listens are lost`,
        );
      }
      scheduleLeases();
      await leaseWork;
      leaseTimer = setInterval(scheduleLeases, Math.max(1, Math.floor(leaseMs / 3)));
      leaseTimer.unref();
      if (retention !== undefined) purger = startPurger(outboxStore, retention, logger);
      logger.info(
        {
          event: 'relay-start',
          transport: transport.name,
          store: store.dialect,
          partitions: [...leases.held.keys()],
        },
        'relay started',
      );
    },
    stop(stopOptions = {}) {
      stopped ??= (async () => {
        const wasRunning = state === 'running';
        state = 'stopping';
        if (leaseTimer) clearInterval(leaseTimer);
        wake();
        if (wasRunning) {
          const timeoutMs = stopOptions.timeoutMs ?? 30_000;
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            Promise.allSettled([
              leaseWork,
              purger?.stop(),
              ...[...workers.values()].map((worker) => worker.finished),
            ]),
            new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs))),
          ]);
          clearTimeout(timer);
          const partitions = [...leases.held.keys()];
          for (const lease of [...leases.held.values()]) leases.drop(lease, 'released');
          await store.release(owner, partitions, true);
        }
        state = 'stopped';
        logger.info({ event: 'relay-stop', ...stats() }, 'relay stopped');
      })();
      return stopped;
    },
    wake,
    stats,
  };
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new FerryError('INVALID_ARGUMENT', `${name} must be a positive number`);
  }
  return value;
}
