import type { PgPool, PgPoolClient } from './drivers/postgres-pool.js';
import { guarded } from './shared.js';

/** A wake-up subscription opened by `PostgresOutboxStore.listen`. */
export interface WakeSubscription {
  /** Stops listening and returns the dedicated connection (destroyed, not pooled). */
  close(): Promise<void>;
}

/**
 * LISTENs on `channel` on a dedicated connection of `pool` and calls `onWake` for each
 * notification; after the connection fails it reconnects with backoff and calls `onWake`
 * once, since notifications sent meanwhile are lost. Kept in `registry` until closed.
 */
export async function openListener(
  pool: PgPool,
  channel: string,
  onWake: (partitions?: readonly number[]) => void,
  registry: Set<WakeSubscription>,
): Promise<WakeSubscription> {
  let client: PgPoolClient | undefined;
  let stopped = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let backoffMs = 100;

  const drop = (error?: Error): void => {
    const current = client;
    client = undefined;
    // Destroyed, not pooled: it still has listeners and a LISTEN registered.
    current?.release(error ?? true);
  };

  const connect = async (): Promise<void> => {
    const fresh = await pool.connect();
    fresh.on('notification', (message) => {
      if (message.channel === channel) onWake(partitionsOf(message.payload));
    });
    fresh.on('error', (error) => {
      if (client !== fresh) return;
      drop(error);
      schedule();
    });
    try {
      await fresh.query(`LISTEN "${channel}"`);
    } catch (error) {
      fresh.release(error as Error);
      throw error;
    }
    if (stopped) {
      fresh.release(true);
      return;
    }
    client = fresh;
    backoffMs = 100;
  };

  const schedule = (): void => {
    if (stopped) return;
    retryTimer = setTimeout(() => {
      connect().then(
        () => {
          if (!stopped) onWake();
        },
        () => {
          backoffMs = Math.min(backoffMs * 2, 5000);
          schedule();
        },
      );
    }, backoffMs);
    retryTimer.unref();
  };

  await guarded('postgres', 'listen', connect);
  const subscription: WakeSubscription = {
    close: async () => {
      if (stopped) return;
      stopped = true;
      if (retryTimer) clearTimeout(retryTimer);
      registry.delete(subscription);
      drop();
    },
  };
  registry.add(subscription);
  return subscription;
}

/** The partitions a wake-up names (`3,7`), or undefined when it names none. */
function partitionsOf(payload: string | undefined): number[] | undefined {
  if (payload === undefined || payload === '') return undefined;
  const partitions = payload.split(',').map(Number);
  return partitions.every((partition) => Number.isInteger(partition) && partition >= 0)
    ? partitions
    : undefined;
}
