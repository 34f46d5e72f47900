import type { Histogram } from 'prom-client';

/** Observations of one label set not yet handed to Prometheus, per bucket. */
export interface PendingObservations {
  readonly labels: Readonly<Record<string, string>>;
  /** Per upper bound, in order; values above the last bound only count in `count` and `sum`. */
  readonly buckets: number[];
  count: number;
  sum: number;
  /** Per bucket, the sum of its pending values (for the fallback of {@link mergeObservations}). */
  readonly sums: number[];
}

/** prom-client's state of one label set of a histogram (15.x). */
interface PromHistogramEntry {
  readonly labels: Readonly<Record<string, string>>;
  readonly bucketValues: Record<string, number>;
  sum: number;
  count: number;
}

/**
 * Adds `pending` to the histogram's state of its label set. prom-client has no call that
 * adds many observations at once, so this writes its per-label-set entry (bucket counts, sum,
 * count) directly; should that entry not be where 15.x keeps it, each bucket's observations
 * are replayed through `observe` at their mean, which keeps buckets and count exact.
 */
export function mergeObservations(
  prom: Histogram,
  labelNames: readonly string[],
  upperBounds: readonly number[],
  pending: PendingObservations,
): void {
  const entryOf = (): PromHistogramEntry | undefined => {
    const map = (prom as unknown as { hashMap?: Record<string, PromHistogramEntry> }).hashMap;
    if (typeof map !== 'object' || map === null) return undefined;
    for (const entry of Object.values(map)) {
      if (labelNames.every((name) => entry.labels[name] === pending.labels[name])) return entry;
    }
    return undefined;
  };
  let entry = entryOf();
  if (!entry) {
    prom.zero(pending.labels);
    entry = entryOf();
  }
  const shaped = (found: PromHistogramEntry): boolean =>
    typeof found.sum === 'number' &&
    typeof found.count === 'number' &&
    typeof found.bucketValues === 'object' &&
    upperBounds.every((bound) => typeof found.bucketValues[bound] === 'number');
  if (entry && shaped(entry)) {
    const { bucketValues } = entry;
    upperBounds.forEach((bound, i) => {
      bucketValues[bound] = (bucketValues[bound] ?? 0) + (pending.buckets[i] ?? 0);
    });
    entry.sum += pending.sum;
    entry.count += pending.count;
  } else {
    for (let i = 0; i < pending.buckets.length; i++) {
      const count = pending.buckets[i]!;
      const bound = upperBounds[i] ?? Infinity;
      const value = Math.min(pending.sums[i]! / count, bound);
      for (let n = 0; n < count; n++) prom.observe(pending.labels, value);
    }
  }
  pending.buckets.fill(0);
  pending.sums.fill(0);
  pending.count = 0;
  pending.sum = 0;
}
