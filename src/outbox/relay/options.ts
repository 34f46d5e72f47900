import { FerryError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { resolveRetry, type RetryPolicy } from '../../core/retry.js';
import type { Instrumentation } from '../../observability/instrumentation.js';
import type { CloseOptions, Transport } from '../../transport/transport.js';

/** How long a relay keeps published rows before deleting them. */
export interface RelayRetention {
  /** Published rows older than this are deleted. Default 24 h. */
  readonly afterMs?: number;
  /** How often to look for rows to delete. Default 60 s. */
  readonly intervalMs?: number;
  /** Rows deleted per statement. Default 1000. */
  readonly batchSize?: number;
}

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
  /** Lease time-to-live; renewed every third of it. Default 10 s. */
  readonly leaseMs?: number;
  /** Most rows read and published per partition per round. Default 500. */
  readonly batchSize?: number;
  /**
   * Publish attempts of one row the broker refuses before it is marked dead (a message too
   * large is dead at once). A broker outage (connection failure, timeout) is never charged
   * to a row: the relay waits and probes instead. Default 10.
   */
  readonly maxAttempts?: number;
  /** Wait before a failed row is tried again: exponential from 1 s, capped at 5 min, with jitter. */
  readonly backoff?: Partial<Omit<RetryPolicy, 'maxAttempts'>>;
  /** Shortest wait between polls when idle. Default 10 ms (busy rounds follow each other at once). */
  readonly pollMinMs?: number;
  /**
   * Longest wait between polls when idle; `wake()` cuts it short. A poll reads every held
   * partition, whatever wake-ups came meanwhile. Default 1 s.
   */
  readonly pollMaxMs?: number;
  /**
   * How long an idle relay waits, once woken, before it reads: rows committed meanwhile
   * (each with its own wake-up) are then read, published and marked together. A longer wait
   * costs each message up to that much latency and saves the relay's CPU at light loads;
   * busy rounds follow each other without it. Default 0.
   */
  readonly gatherMs?: number;
  /** Deletion of published rows, or `'keep'` to keep them (for replay by `republish`). */
  readonly retention?: RelayRetention | 'keep';
  /** Warnings and errors, and the audit lines with `audit`. Default {@link createLogger}. */
  readonly logger?: Logger;
  /** One info line per published row. Default: the `FERRY_AUDIT` environment variable, else off. */
  readonly audit?: boolean;
  /** Tracing and metrics hooks. Default: as the bus's (see `ferry/observability`). */
  readonly instrumentation?: Instrumentation;
  /**
   * Instrumentation points. `afterPublish` runs after the transport confirmed a batch and
   * before it is marked published (the window in which a crash causes a duplicate).
   */
  readonly hooks?: {
    readonly afterPublish?: (partition: number, ids: readonly string[]) => void | Promise<void>;
  };
}

/** What a relay has done since it started: rows published, failed and dead, leases held and lost. */
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
 * its lease cannot mark rows), publish each partition in `seq` order and partitions in
 * parallel, and mark rows published only after the transport confirmed them.
 * At-least-once: a relay that dies after publishing and before marking leaves the rows
 * pending, and they are published again.
 */
export interface Relay {
  readonly owner: string;
  /** Registers, takes leases and starts publishing; resolves once running. */
  start(): Promise<void>;
  /**
   * Stops polling, waits up to `timeoutMs` (default 30 s) for the batch in flight to be
   * published and marked, then gives back its leases and registration. Idempotent.
   */
  stop(options?: CloseOptions): Promise<void>;
  /**
   * Reads now instead of waiting for the next poll (e.g. on a database notification): every
   * held partition, or only `partition` when given (nothing when this relay does not hold
   * it). Wake-ups that come while a round runs are gathered into the next round. Polls go on
   * regardless, so a lost wake-up only delays its rows until the next poll.
   */
  wake(partition?: number): void;
  stats(): RelayStats;
}

/** The counts behind {@link RelayStats}, kept by the parts of a relay as they work. */
export interface RelayCounters {
  published: number;
  failed: number;
  outages: number;
  dead: number;
  batches: number;
  leasesLost: number;
  purged: number;
}

/** {@link RelayOptions} with every default filled in and every number checked. */
export interface RelaySettings {
  readonly leaseMs: number;
  readonly batchSize: number;
  readonly pollMinMs: number;
  readonly pollMaxMs: number;
  readonly gatherMs: number;
  readonly policy: RetryPolicy;
  /** Undefined when published rows are kept. */
  readonly retention: Required<RelayRetention> | undefined;
}

/** Fills in the defaults of `options`; a lease time or batch size that is not positive is `INVALID_ARGUMENT`. */
export function relaySettings(options: RelayOptions): RelaySettings {
  const pollMinMs = options.pollMinMs ?? 10;
  return {
    leaseMs: positive('leaseMs', options.leaseMs ?? 10_000),
    batchSize: positive('batchSize', options.batchSize ?? 500),
    pollMinMs,
    pollMaxMs: Math.max(pollMinMs, options.pollMaxMs ?? 1000),
    gatherMs: notNegative('gatherMs', options.gatherMs ?? 0),
    policy: resolveRetry({
      initialDelayMs: 1000,
      maxDelayMs: 300_000,
      ...options.backoff,
      maxAttempts: options.maxAttempts ?? 10,
    }),
    retention:
      options.retention === 'keep'
        ? undefined
        : {
            afterMs: options.retention?.afterMs ?? 86_400_000,
            intervalMs: options.retention?.intervalMs ?? 60_000,
            batchSize: options.retention?.batchSize ?? 1000,
          },
  };
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new FerryError('INVALID_ARGUMENT', `${name} must be a positive number`);
  }
  return value;
}

function notNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new FerryError('INVALID_ARGUMENT', `${name} must be a number of milliseconds, 0 or more`);
  }
  return value;
}
