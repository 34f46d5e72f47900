// The relay's wake-ups and idle waits. Wake-ups are gathered until the loop takes them, so
// those that come while a round runs make one next round, not one round each; a wake-up
// that names a partition asks for that partition alone.

/** Wake-ups gathered since the loop last took them. */
export type WokenPartitions = 'all' | ReadonlySet<number>;

/** The idle waits of a relay's loop and the wake-ups that end them. */
export interface Waker {
  /** Waits up to `ms`; a wake-up ends it, and it does not wait when one is gathered already. */
  readonly pause: (ms: number) => Promise<void>;
  /** Waits up to `ms` whatever wake-ups come (they are kept for later). */
  readonly sleep: (ms: number) => Promise<void>;
  /** Asks for a round now: of `partition` alone, or of every held partition without one. */
  readonly wake: (partition?: number) => void;
  /** Takes the gathered wake-ups: `'all'`, or the partitions named (empty when none came). */
  readonly take: () => WokenPartitions;
  /** When a wake-up last named a partition (epoch ms; 0 for never). */
  readonly namedAt: () => number;
}

/** A {@link Waker}; every wait ends at once when `running()` is false. */
export function waker(running: () => boolean): Waker {
  let all = false;
  let named = new Set<number>();
  let namedAt = 0;
  let waiting: { readonly end: () => void; readonly byWakeUp: boolean } | undefined;

  const wait = (ms: number, byWakeUp: boolean): Promise<void> =>
    new Promise((resolve) => {
      if (!running() || (byWakeUp && (all || named.size > 0))) {
        resolve();
        return;
      }
      const timer = setTimeout(end, ms);
      function end(): void {
        clearTimeout(timer);
        waiting = undefined;
        resolve();
      }
      waiting = { end, byWakeUp };
    });

  return {
    pause: (ms) => wait(ms, true),
    sleep: (ms) => wait(ms, false),
    wake(partition) {
      if (partition === undefined) all = true;
      else {
        named.add(partition);
        namedAt = Date.now();
      }
      if (waiting !== undefined && (waiting.byWakeUp || !running())) waiting.end();
    },
    take() {
      if (all) {
        all = false;
        named.clear();
        return 'all';
      }
      const taken = named;
      named = new Set();
      return taken;
    },
    namedAt: () => namedAt,
  };
}
