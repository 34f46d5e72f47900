// The relay: its factory, the loop of rounds, start and stop. Leases, a partition's turn,
// publishing, retention and the idle wait each have their own file beside this one.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { FerryError } from '../../core/errors.js';
import { auditFromEnv, createLogger, infoLines } from '../../core/log.js';
import { defaultInstrumentation } from '../../observability/instrumentation.js';
import type { OutboxStore } from '../store.js';
import { leaseKeeper, type HeldLease } from './leases.js';
import { relaySettings, type Relay, type RelayOptions, type RelayStats } from './options.js';
import { partitionPublisher } from './partition.js';
import { auditor, outageTracker, sender } from './publish.js';
import { purger } from './retention.js';
import { waker } from './wake.js';

export type { Relay, RelayOptions, RelayRetention, RelayStats } from './options.js';
export { isOutage } from './publish.js';

export function defaultRelayOwner(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
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
  const { leaseMs, batchSize, pollMinMs, pollMaxMs, gatherMs, policy, retention } =
    relaySettings(options);
  const auditOn = options.audit ?? auditFromEnv();
  const rootLogger = options.logger ?? createLogger(auditOn ? { level: 'info' } : {});
  const logger = rootLogger.child({ relay: owner });
  const instrumentation = options.instrumentation ?? defaultInstrumentation();

  const counters = {
    published: 0,
    failed: 0,
    outages: 0,
    dead: 0,
    batches: 0,
    leasesLost: 0,
    purged: 0,
  };
  let state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  const running = (): boolean => state === 'running';
  let loop: Promise<void> | undefined;
  let stopped: Promise<void> | undefined;
  const inFlight = new Map<number, Promise<unknown>>();
  const { pause, sleep, wake, take, namedAt } = waker(running);
  const leases = leaseKeeper({
    store,
    owner,
    leaseMs,
    logger,
    counters,
    running,
    inFlight,
    acquired: wake,
  });
  const outage = outageTracker(logger, destination, counters);
  const publisher = partitionPublisher({
    store,
    owner,
    batchSize,
    policy,
    leases,
    send: sender(transport, owner, instrumentation),
    outage,
    counters,
    instrumentation,
    audit: auditor(
      logger,
      auditOn ? infoLines(rootLogger, { relay: owner, event: 'relay-publish' }) : undefined,
    ),
    afterPublish: options.hooks?.afterPublish,
  });
  const purge = purger(store, retention, counters, running);

  /**
   * Works one turn of each held partition, or of those in `only`, together; returns how many
   * rows were settled and the partitions that may hold more.
   */
  async function round(only?: ReadonlySet<number>): Promise<{ done: number; busy: number[] }> {
    const held = [...leases.held.values()].filter(
      (lease) => only === undefined || only.has(lease.partition),
    );
    if (held.length === 0) return { done: 0, busy: [] };
    const work = publisher.together(held);
    for (const lease of held) inFlight.set(lease.partition, work);
    let done = 0;
    const busy: number[] = [];
    try {
      const turns = await work;
      turns.forEach((turn, i) => {
        done += turn.settled;
        if (turn.more) busy.push((held[i] as HeldLease).partition);
      });
    } catch (error) {
      logger.error({ event: 'relay-round', result: 'error', err: error }, 'relay round failed');
    } finally {
      for (const lease of held) {
        if (inFlight.get(lease.partition) === work) inFlight.delete(lease.partition);
      }
    }
    return { done, busy };
  }

  /**
   * Rounds until stopped. A poll reads every held partition; a wake-up that names partitions
   * reads only those (and reads again those that may hold more, at once). Polls go on
   * whatever the wake-ups say, every `pollMinMs` doubling up to `pollMaxMs` while they find
   * nothing (or while wake-ups name partitions), so rows whose wake-up was lost are
   * published all the same.
   */
  async function run(): Promise<void> {
    let idleMs = pollMinMs;
    let pollAt = 0;
    let again: ReadonlySet<number> = new Set();
    while (running()) {
      // During an outage publishing waits for the next probe, which reads every partition.
      const probeInMs = outage.probeInMs();
      if (probeInMs > 0) {
        await sleep(probeInMs);
        pollAt = 0;
        continue;
      }
      const woken = take();
      const poll = woken === 'all' || Date.now() >= pollAt;
      let turn: { done: number; busy: number[] } = { done: 0, busy: [] };
      try {
        turn = await round(poll ? undefined : new Set([...woken, ...again]));
        await purge();
      } catch (error) {
        logger.error({ event: 'relay-round', result: 'error', err: error }, 'relay round failed');
      }
      if (!running()) break;
      again = new Set(turn.busy);
      // While wake-ups name the partitions written, rows a poll finds are mostly ones whose
      // wake-up is on its way: polls stay a safety net and keep backing off.
      const named = Date.now() - namedAt() < pollMaxMs;
      if (poll && turn.done > 0 && !named) {
        idleMs = pollMinMs;
        pollAt = 0;
      } else if (poll) {
        pollAt = Date.now() + idleMs;
        idleMs = Math.min(pollMaxMs, Math.max(1, idleMs * 2));
      }
      if (again.size > 0 || Date.now() >= pollAt) {
        await new Promise((resolve) => setImmediate(resolve));
      } else {
        await pause(pollAt - Date.now());
        // Woken from idle: rows committed in the next moments go in the same round.
        if (gatherMs > 0) await sleep(gatherMs);
      }
    }
  }

  function stats(): RelayStats {
    const outageSince = outage.since();
    return {
      owner,
      ...counters,
      outageSince: outageSince === undefined ? undefined : new Date(outageSince),
      partitions: [...leases.held.keys()].sort((a, b) => a - b),
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
      await leases.start();
      loop = run();
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
        leases.stopRenewing();
        wake();
        if (wasRunning) {
          const timeoutMs = stopOptions.timeoutMs ?? 30_000;
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            Promise.allSettled([loop, leases.upkeep()]),
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
