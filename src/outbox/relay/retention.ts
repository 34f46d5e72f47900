// Deleting published rows once they are older than the retention: at most every `intervalMs`,
// `batchSize` rows a statement, and no more than 100 statements a turn so rounds go on.
import type { OutboxStore } from '../store.js';
import type { RelayCounters, RelaySettings } from './options.js';

/** A purge to run after each round; it does nothing until the interval has passed. */
export function purger(
  store: OutboxStore<unknown>,
  retention: RelaySettings['retention'],
  counters: RelayCounters,
  running: () => boolean,
): () => Promise<void> {
  let nextPurge = 0;
  return async () => {
    if (!retention || Date.now() < nextPurge) return;
    nextPurge = Date.now() + retention.intervalMs;
    const before = new Date(Date.now() - retention.afterMs);
    for (let i = 0; i < 100 && running(); i++) {
      const deleted = await store.purgePublished(before, retention.batchSize);
      counters.purged += deleted;
      if (deleted < retention.batchSize) break;
    }
  };
}
