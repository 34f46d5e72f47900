// Deleting published rows once they are older than the retention allows, in the background.
import { FerryError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { OutboxStore } from '../store.js';

/** How long published rows are kept: see `RelayOptions.retention`. */
export interface RelayRetention {
  /** Published rows older than this (since they were published) are deleted. Default 24 h. */
  readonly maxAgeMs?: number;
  /** How often to look for rows to delete. Default 60 s. */
  readonly intervalMs?: number;
  /** Rows deleted per statement. Default 1000. */
  readonly batchSize?: number;
}

export interface Purger {
  /** Published rows deleted so far. */
  readonly purged: number;
  /** Stops purging; resolves once a purge under way has ended. */
  stop(): Promise<void>;
}

/** Statements per purge at most, so a huge backlog of published rows is spread over intervals. */
const MAX_STATEMENTS = 100;

/** Checks `retention` and resolves its defaults; undefined for `'keep'`. */
export function resolveRetention(
  retention: RelayRetention | 'keep' | undefined,
): Required<RelayRetention> | undefined {
  if (retention === 'keep') return undefined;
  const given = (retention ?? {}) as RelayRetention & { afterMs?: unknown; maxCount?: unknown };
  if (given.afterMs !== undefined) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      'retention.afterMs is now retention.maxAgeMs (how long published rows are kept)',
    );
  }
  if (given.maxCount !== undefined) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      'A relay keeps published rows by age only: retention.maxCount is not supported (use maxAgeMs)',
    );
  }
  const resolved = {
    maxAgeMs: given.maxAgeMs ?? 86_400_000,
    intervalMs: given.intervalMs ?? 60_000,
    batchSize: given.batchSize ?? 1000,
  };
  for (const [name, value] of Object.entries(resolved)) {
    if (!Number.isFinite(value) || value < 0 || (name !== 'maxAgeMs' && value === 0)) {
      throw new FerryError('INVALID_ARGUMENT', `retention.${name} must be a positive number`);
    }
  }
  return resolved;
}

/** Purges now, then every `intervalMs`, until stopped. */
export function startPurger(
  store: OutboxStore<unknown>,
  retention: Required<RelayRetention>,
  logger: Logger,
): Purger {
  let purged = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  async function purge(): Promise<void> {
    const before = new Date(Date.now() - retention.maxAgeMs);
    for (let i = 0; i < MAX_STATEMENTS && !stopped; i++) {
      const deleted = await store.purgePublished(before, retention.batchSize);
      purged += deleted;
      if (deleted < retention.batchSize) break;
    }
  }
  const tick = (): void => {
    running = purge()
      .catch((error: unknown) => {
        logger.error({ event: 'relay-purge', result: 'error', err: error }, 'purge failed');
      })
      .finally(() => {
        if (stopped) return;
        timer = setTimeout(tick, retention.intervalMs);
        timer.unref();
      });
  };
  tick();

  return {
    get purged() {
      return purged;
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
