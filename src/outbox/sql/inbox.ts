import type { Inbox } from '../../core/bus.js';
import { FerryError } from '../../core/errors.js';
import type { PoolOptions } from './drivers/pool.js';
import { checkLimit, storeError } from './shared.js';

/**
 * What one SQL database supplies to the inbox: its statements and its transaction handling.
 * Errors a dialect throws are database errors; the inbox turns them into FerryErrors.
 */
export interface InboxDialect<Tx> {
  /** The dialect's name in error messages (`postgres`, `mysql`, `sqlite`). */
  readonly name: string;
  /** Creates or upgrades the inbox table (idempotent, safe from many processes). */
  migrate(): Promise<void>;
  /** Refuses a group or message id the table cannot keep exactly. */
  check?(group: string, messageId: string): void;
  /** Runs `work` in one transaction: commits when it resolves, rolls back when it throws. */
  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T>;
  /** Inserts `(group, messageId)` unless present; resolves true when it inserted. */
  insert(tx: Tx, group: string, messageId: string): Promise<boolean>;
  /** Deletes up to `limit` rows processed before `before`; resolves how many. */
  purge(before: Date, limit: number): Promise<number>;
  /** Releases what the dialect opened itself. */
  close(): Promise<void>;
}

/** The inbox every SQL dialect shares: {@link Inbox} plus its table's upkeep. */
export interface SqlInbox<Tx> extends Inbox<Tx> {
  /** Creates the inbox table if missing (idempotent, safe from many processes). */
  migrate(): Promise<void>;
  /** Deletes up to `limit` inbox rows processed before `before`; returns how many. */
  purge(before: Date, limit: number): Promise<number>;
  /** Ends the pool ferry opened from `url` (never yours). */
  close(): Promise<void>;
}

/** Options of a pooled SQL inbox: the pool or `url`, and the table. */
export interface SqlInboxOptions<P> extends PoolOptions<P> {
  /** Inbox table; default `ferry_inbox`. */
  readonly table?: string;
}

/**
 * Effectively-once consumption: `process` begins a transaction, inserts `(group, messageId)`
 * and, unless that row already existed (a duplicate: nothing runs), calls `work` with the
 * transaction and commits. If `work` throws, everything rolls back and its error propagates
 * unchanged, so the message is handed out again; database errors become FerryErrors.
 */
export function createSqlInbox<Tx>(dialect: InboxDialect<Tx>): SqlInbox<Tx> {
  let closed = false;
  const open = (): void => {
    if (closed) throw new FerryError('CLOSED', `The ${dialect.name} inbox is closed`);
  };
  const guard = async <T>(operation: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (cause) {
      throw storeError(dialect.name, operation, cause);
    }
  };
  return {
    migrate: () =>
      guard('inbox migrate', async () => {
        open();
        await dialect.migrate();
      }),

    process: async (group, messageId, work) => {
      dialect.check?.(group, messageId);
      open();
      let failed: { readonly error: unknown } | undefined;
      try {
        return await dialect.transaction(async (tx) => {
          if (!(await dialect.insert(tx, group, messageId))) return { duplicate: true };
          try {
            await work(tx);
          } catch (error) {
            failed = { error };
            throw error;
          }
          return { duplicate: false };
        });
      } catch (error) {
        // The handler's own error propagates unchanged: the runtime decides on retries.
        if (failed !== undefined && failed.error === error) throw error;
        throw storeError(dialect.name, 'inbox', error);
      }
    },

    purge: (before, limit) => {
      const checked = checkLimit(limit, 'limit');
      return guard('inbox purge', async () => {
        open();
        return dialect.purge(before, checked);
      });
    },

    close: async () => {
      if (closed) return;
      closed = true;
      await dialect.close();
    },
  };
}
