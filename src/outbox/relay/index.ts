// Longer than 400 lines: the relay's one loop — leases, reads, publishes, fenced marks and
// outage handling — kept together while its pipelined split is reworked.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { describeError, FerryError, isFerryError } from '../../core/errors.js';
import { auditFromEnv, createLogger, type Logger } from '../../core/log.js';
import { buildOutgoing, HEADER, type OutgoingMessage } from '../../core/message.js';
import {
  defaultInstrumentation,
  type Instrumentation,
} from '../../observability/instrumentation.js';
import { traceIdOf } from '../../observability/tracing.js';
import { backoffDelay, resolveRetry, type RetryPolicy } from '../../core/retry.js';
import type { CloseOptions, Transport } from '../../transport/transport.js';
import type { Lease, OutboxRecord, OutboxStore } from '../store.js';

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
  /** Longest wait between polls when idle; `wake()` cuts it short. Default 1 s. */
  readonly pollMaxMs?: number;
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
  /** Polls now instead of waiting for the next poll (e.g. on a database notification). */
  wake(): void;
  stats(): RelayStats;
}

export function defaultRelayOwner(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

interface HeldLease extends Lease {
  /** Set when the relay stops working the partition (given back or lost). */
  gone: boolean;
  /**
   * Local time before which the lease surely still holds: when the call that last renewed or
   * took it was made, plus the lease time-to-live (the store dates it no earlier).
   */
  validUntil: number;
}

/**
 * A relay that publishes the rows of the outbox `store` to `options.transport`, in order per
 * partition, marking each published only after the broker confirmed it (a crash in between
 * publishes it again: at-least-once, deduplicated by the consumers' inbox). Relays over one
 * store share its partitions by leases with fencing, so two never publish the same partition
 * at once. A row the broker refuses is retried with backoff and marked dead after
 * `maxAttempts`; a broker outage is waited out without charging the rows. Nothing runs until
 * `start()`; see {@link Relay}.
 */
export function createRelay<Tx>(store: OutboxStore<Tx>, options: RelayOptions): Relay {
  const { transport } = options;
  const destination = options.destination ?? transport.name;
  const owner = options.owner ?? defaultRelayOwner();
  const leaseMs = positive('leaseMs', options.leaseMs ?? 10_000);
  // Renewals come every third of the lease; sending stops a third before it runs out, which
  // leaves that third to mark what was sent.
  const publishMarginMs = leaseMs / 3;
  const batchSize = positive('batchSize', options.batchSize ?? 500);
  const pollMinMs = options.pollMinMs ?? 10;
  const pollMaxMs = Math.max(pollMinMs, options.pollMaxMs ?? 1000);
  const policy = resolveRetry({
    initialDelayMs: 1000,
    maxDelayMs: 300_000,
    ...options.backoff,
    maxAttempts: options.maxAttempts ?? 10,
  });
  const retention =
    options.retention === 'keep'
      ? undefined
      : {
          afterMs: options.retention?.afterMs ?? 86_400_000,
          intervalMs: options.retention?.intervalMs ?? 60_000,
          batchSize: options.retention?.batchSize ?? 1000,
        };
  const auditOn = options.audit ?? auditFromEnv();
  const logger = (options.logger ?? createLogger(auditOn ? { level: 'info' } : {})).child({
    relay: owner,
  });
  const instrumentation = options.instrumentation ?? defaultInstrumentation();

  /** Publishes rows through the transport, observed as one send of each row. */
  const send = async (rows: readonly OutboxRecord[]): Promise<void> => {
    const observed = instrumentation.relayPublish({
      transport: transport.name,
      relay: owner,
      rows,
    });
    try {
      await transport.publish(rows.map(toOutgoing));
    } catch (error) {
      observed.end(error);
      throw error;
    }
    observed.end();
  };
  const afterPublish = options.hooks?.afterPublish;

  const held = new Map<number, HeldLease>();
  const inFlight = new Map<number, Promise<number>>();
  /** Partitions given up for balance whose batch in flight has not been marked yet. */
  const releasing = new Set<number>();
  const counters = {
    published: 0,
    failed: 0,
    outages: 0,
    dead: 0,
    batches: 0,
    leasesLost: 0,
    purged: 0,
  };
  /** While the broker is unreachable: rows wait uncharged and a probe runs every `delayMs`. */
  let outage: { since: number; delayMs: number; probeAt: number } | undefined;
  let state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  let loop: Promise<void> | undefined;
  let leaseTimer: NodeJS.Timeout | undefined;
  let leaseWork: Promise<void> = Promise.resolve();
  let nextPurge = 0;
  let wakeUp: (() => void) | undefined;
  let woken = false;
  let stopped: Promise<void> | undefined;

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

  async function maintainLeases(): Promise<void> {
    // The store dates the renewal when it runs the call, never before it was made.
    const asked = Date.now();
    const renewed = await store.heartbeat(owner, leaseMs);
    const still = new Map(renewed.map((lease) => [lease.partition, lease]));
    for (const lease of [...held.values()]) {
      const current = still.get(lease.partition);
      if (current?.fence !== lease.fence) drop(lease, 'lost');
      else lease.validUntil = Math.max(lease.validUntil, asked + leaseMs);
    }
    if (state !== 'running') return;
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
        wake();
      }
    } else if (held.size > share) {
      const extras = [...held.values()]
        .sort((a, b) => b.partition - a.partition)
        .slice(0, held.size - share);
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
    }
  }

  const scheduleLeases = (): void => {
    leaseWork = leaseWork.then(maintainLeases).catch((error: unknown) => {
      logger.error({ event: 'relay-lease', result: 'error', err: error }, 'lease upkeep failed');
    });
  };

  const toOutgoing = (row: OutboxRecord): OutgoingMessage =>
    buildOutgoing({
      id: row.id,
      topic: row.topic,
      key: row.key,
      body: row.body,
      contentType: row.headers[HEADER.contentType] ?? 'application/octet-stream',
      createdAt: row.createdAt,
      headers: row.headers,
    });

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

  const noteOutage = (error: unknown): void => {
    const now = Date.now();
    if (outage === undefined) {
      counters.outages++;
      outage = { since: now, delayMs: OUTAGE_FIRST_PROBE_MS, probeAt: now + OUTAGE_FIRST_PROBE_MS };
      logger.warn(
        { event: 'relay-outage', result: 'down', destination, err: error },
        'broker unreachable: rows wait, uncharged, and the relay probes',
      );
    } else if (now >= outage.probeAt) {
      outage.delayMs = Math.min(outage.delayMs * 2, OUTAGE_MAX_PROBE_MS);
      outage.probeAt = now + outage.delayMs;
    }
  };
  const noteDelivered = (): void => {
    if (outage === undefined) return;
    logger.info(
      { event: 'relay-outage', result: 'up', destination, downMs: Date.now() - outage.since },
      'broker reachable again',
    );
    outage = undefined;
  };

  /** Marks `rows` published; false when the lease was lost meanwhile. */
  async function markPublished(lease: HeldLease, rows: readonly OutboxRecord[]): Promise<boolean> {
    if (rows.length === 0) return true;
    const marked = await store.markPublished(
      owner,
      lease,
      rows.map((row) => row.id),
    );
    const ok = marked === rows.length;
    if (!ok) drop(lease, 'lost');
    counters.published += marked;
    for (const row of rows) audit(row, ok ? 'ok' : 'unmarked');
    return ok;
  }

  /**
   * Whether rows of `lease` may still be sent: only while the lease surely holds for long enough
   * to mark them too. A relay starved past that (a stalled event loop, a slow store) stops
   * publishing the partition instead of racing the relay that may take it over.
   */
  const mayPublish = (lease: HeldLease): boolean =>
    !lease.gone && Date.now() < lease.validUntil - publishMarginMs;

  async function publishPartition(lease: HeldLease): Promise<number> {
    if (!mayPublish(lease)) return 0;
    const rows = await store.readPending(lease.partition, batchSize);
    if (rows.length === 0 || !mayPublish(lease)) return 0;
    counters.batches++;
    let batchError: unknown;
    try {
      await send(rows);
    } catch (error) {
      batchError = error;
    }
    if (batchError === undefined) {
      noteDelivered();
      await afterPublish?.(
        lease.partition,
        rows.map((row) => row.id),
      );
      await markPublished(lease, rows);
      return rows.length;
    }
    if (isOutage(batchError)) {
      noteOutage(batchError);
      return 0;
    }
    // Find the row(s) the transport refuses: one by one, in order, stopping at the first
    // failure so that later rows of its keys do not overtake it.
    const sent: OutboxRecord[] = [];
    for (const row of rows) {
      if (!mayPublish(lease)) break;
      try {
        await send([row]);
        noteDelivered();
        sent.push(row);
        continue;
      } catch (error) {
        await afterPublish?.(
          lease.partition,
          sent.map((r) => r.id),
        );
        if (!(await markPublished(lease, sent))) return sent.length;
        if (isOutage(error)) {
          noteOutage(error);
          return sent.length;
        }
        const attempts = row.attempts + 1;
        const dead = attempts >= policy.maxAttempts || isFerryError(error, 'MESSAGE_TOO_LARGE');
        const retryInMs = dead ? 0 : backoffDelay(policy, attempts);
        const recorded = await store.markFailed(owner, lease, row.id, describeError(error), {
          dead,
          retryInMs,
        });
        if (!recorded) {
          drop(lease, 'lost');
          return sent.length;
        }
        counters.failed++;
        if (dead) counters.dead++;
        instrumentation.relayFailed({ relay: owner, dead });
        audit(row, dead ? 'dead' : 'failed', {
          err: error,
          ...(dead ? {} : { retryInMs }),
        });
        return sent.length + 1;
      }
    }
    await afterPublish?.(
      lease.partition,
      sent.map((r) => r.id),
    );
    await markPublished(lease, sent);
    return sent.length;
  }

  async function round(): Promise<number> {
    // During an outage publishing waits for the next probe.
    if (outage !== undefined && Date.now() < outage.probeAt) return 0;
    const work = [...held.values()].map((lease) => {
      const running = publishPartition(lease).finally(() => inFlight.delete(lease.partition));
      inFlight.set(lease.partition, running);
      return running;
    });
    const results = await Promise.allSettled(work);
    let done = 0;
    for (const result of results) {
      if (result.status === 'fulfilled') done += result.value;
      else
        logger.error(
          { event: 'relay-round', result: 'error', err: result.reason },
          'relay round failed',
        );
    }
    return done;
  }

  async function purge(): Promise<void> {
    if (!retention || Date.now() < nextPurge) return;
    nextPurge = Date.now() + retention.intervalMs;
    const before = new Date(Date.now() - retention.afterMs);
    for (let i = 0; i < 100 && state === 'running'; i++) {
      const deleted = await store.purgePublished(before, retention.batchSize);
      counters.purged += deleted;
      if (deleted < retention.batchSize) break;
    }
  }

  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (woken || state !== 'running') {
        woken = false;
        resolve();
        return;
      }
      const timer = setTimeout(finish, ms);
      function finish(): void {
        clearTimeout(timer);
        wakeUp = undefined;
        woken = false;
        resolve();
      }
      wakeUp = finish;
    });

  function wake(): void {
    woken = true;
    wakeUp?.();
  }

  async function run(): Promise<void> {
    let idleMs = pollMinMs;
    while (state === 'running') {
      let done = 0;
      try {
        done = await round();
        await purge();
      } catch (error) {
        logger.error({ event: 'relay-round', result: 'error', err: error }, 'relay round failed');
      }
      if (state !== 'running') break;
      if (done > 0) {
        idleMs = pollMinMs;
        await new Promise((resolve) => setImmediate(resolve));
      } else {
        await pause(idleMs);
        idleMs = Math.min(pollMaxMs, Math.max(1, idleMs * 2));
      }
    }
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
      loop = run();
      logger.info(
        {
          event: 'relay-start',
          transport: transport.name,
          store: store.dialect,
          partitions: [...held.keys()],
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
            Promise.allSettled([loop, leaseWork]),
            new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs))),
          ]);
          clearTimeout(timer);
          const partitions = [...held.keys()];
          for (const lease of [...held.values()]) drop(lease, 'released');
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

  function stats(): RelayStats {
    return {
      owner,
      ...counters,
      outageSince: outage === undefined ? undefined : new Date(outage.since),
      partitions: [...held.keys()].sort((a, b) => a - b),
    };
  }
}

const OUTAGE_FIRST_PROBE_MS = 250;
/** Probes at least this often, so publishing resumes within seconds of the broker's return. */
const OUTAGE_MAX_PROBE_MS = 2000;

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);
// Drivers that give no code say it in words (ioredis: "Connection is closed", "Reached the
// max retries per request limit" while it reconnects).
const NETWORK_TEXT =
  /connection (is )?closed|connection lost|socket hang up|timed? ?out|max retries per request|ECONNREFUSED|ECONNRESET|ETIMEDOUT/i;

/**
 * Whether a publish failed because the broker could not be reached (connection failure,
 * timeout), not because it refused the message: such a failure is not the row's fault.
 * Looks through the `cause` chain, since drivers wrap socket errors in their own.
 */
export function isOutage(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    if (isFerryError(current)) {
      if (['CONNECTION_FAILED', 'TIMEOUT', 'CLOSED'].includes(current.code)) return true;
      if (current.code === 'MESSAGE_TOO_LARGE') return false;
    }
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    if (current instanceof Error && NETWORK_TEXT.test(current.message)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new FerryError('INVALID_ARGUMENT', `${name} must be a positive number`);
  }
  return value;
}
