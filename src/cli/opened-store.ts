import type { Inbox } from '../core/bus.js';
import type { Outbox } from '../outbox/outbox.js';
import type { OutboxStore } from '../outbox/store.js';

/**
 * A database opened from a URL, in one shape for every dialect, for the CLI (`ferry relay`,
 * `ferry migrate`, `ferry outbox`) and the demo. `Tx` is the dialect's transaction handle.
 */
export interface OpenedStore<Tx = unknown> {
  readonly dialect: string;
  readonly store: OutboxStore<Tx>;
  readonly outbox: Outbox<Tx>;
  readonly inbox: Inbox<Tx>;
  /** The outbox and inbox table names (the lease and relay tables add `_lease`, `_relay`). */
  readonly tables: { readonly outbox: string; readonly inbox: string };
  /** Creates the outbox and inbox tables if missing (idempotent). */
  migrate(): Promise<void>;
  /** Runs `work` in one transaction of a connection of this store: commits when it resolves, rolls back when it throws. */
  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T>;
  /**
   * Runs one statement with `?` placeholders, inside `tx` or on its own (autocommit);
   * resolves with the rows it returns (lower-case column names), `[]` for other statements.
   */
  query(
    tx: Tx | undefined,
    sql: string,
    params?: readonly unknown[],
  ): Promise<Array<Record<string, unknown>>>;
  /** Closes the connections it opened. */
  close(): Promise<void>;
}

/**
 * An outbox and an inbox opened on one pool or file, with what only the dialect knows:
 * `migrate` creates both tables, `close` closes both and then `release` (the pool or file).
 */
export function openedStore<Tx>(
  parts: Omit<OpenedStore<Tx>, 'store' | 'inbox' | 'migrate' | 'close'> & {
    readonly inbox: Inbox<Tx> & { migrate(): Promise<void>; close(): Promise<void> };
    /** Ends the pool or closes the file, after the outbox and inbox are closed. */
    readonly release: () => Promise<void>;
  },
): OpenedStore<Tx> {
  const { release, ...rest } = parts;
  return {
    ...rest,
    store: parts.outbox.store,
    migrate: async () => {
      await parts.outbox.migrate();
      await parts.inbox.migrate();
    },
    close: async () => {
      await parts.outbox.store.close();
      await parts.inbox.close();
      await release();
    },
  };
}
