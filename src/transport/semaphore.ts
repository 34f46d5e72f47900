/**
 * A counting semaphore with first-come-first-served waiters: the one bound on work at once
 * in every transport (handlers running across the partitions of a subscription, publishes
 * in a window).
 *
 * A permit is handed straight from `release` to the next waiter, so a waiter never loses
 * its turn to a caller that arrives later. After `close()` no permit is given: waiters and
 * later `acquire` calls get `false`, while holders still `release` theirs.
 */
export class Semaphore {
  private used = 0;
  private readonly waiters: Array<(granted: boolean) => void> = [];
  private closed = false;

  /** @param size Permits; a whole number >= 1. */
  constructor(private readonly size: number) {}

  /** Permits held now. */
  get held(): number {
    return this.used;
  }

  /** Takes a permit now if one is free and nobody waits; true when taken. Never waits. */
  tryAcquire(): boolean {
    if (this.closed || this.used >= this.size || this.waiters.length > 0) return false;
    this.used++;
    return true;
  }

  /** Resolves true holding a permit (first come, first served), or false once closed. */
  acquire(): Promise<boolean> {
    if (this.tryAcquire()) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Gives a permit back: to the longest waiter, else to the pool. */
  release(): void {
    const next = this.closed ? undefined : this.waiters.shift();
    if (next) next(true);
    else this.used = Math.max(0, this.used - 1);
  }

  /** Grants no more permits: every waiter gets false now, later `acquire` calls too. */
  close(): void {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter(false);
  }
}
