import { FerryError } from '../core/errors.js';

/** Where a transport (or anything closable) is in its life. */
export type LifecycleState = 'open' | 'closing' | 'closed';

/**
 * Open, closing, closed: the one idempotent close. `close(work)` runs `work` once, on the
 * first call; every call (also those made while it runs) returns the same promise, so a
 * second `close()` waits for the close already under way instead of returning early.
 * `assertOpen()` throws `CLOSED` from the moment closing starts.
 */
export class Lifecycle {
  private current: LifecycleState = 'open';
  private done: Promise<void> | undefined;

  /** @param what Named in the `CLOSED` error: `kafka transport`, ... */
  constructor(private readonly what: string) {}

  get state(): LifecycleState {
    return this.current;
  }

  get open(): boolean {
    return this.current === 'open';
  }

  /** Throws `FerryError('CLOSED')` unless open. */
  assertOpen(): void {
    if (this.current !== 'open') throw this.closedError();
  }

  /** The error an operation on a closing or closed thing fails with. */
  closedError(): FerryError {
    return new FerryError('CLOSED', `${this.what} is closed`);
  }

  /**
   * Runs `work` once (state `closing` while it runs, `closed` after it settles, even if it
   * failed); every call returns that same promise.
   */
  close(work: () => Promise<void>): Promise<void> {
    if (this.done) return this.done;
    this.current = 'closing';
    this.done = (async () => {
      try {
        await work();
      } finally {
        this.current = 'closed';
      }
    })();
    return this.done;
  }
}

/**
 * Waits for `work` up to `timeoutMs`: true when it settled in time, false when the time ran
 * out first (the work goes on; the caller abandons it). How every close bounds its wait for
 * handlers in flight.
 */
export async function within(work: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      timedOut,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
