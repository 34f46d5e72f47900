import { performance } from 'node:perf_hooks';

/** One way of doing the work a group measures. */
export interface BenchCase {
  readonly name: string;
  /** Untimed, before each round: a fresh topic, a filled queue, a connected client. */
  setup?(): Promise<void>;
  /** Runs one round and returns how many operations (messages) it completed. */
  round(): Promise<number>;
  /** Untimed, after each round: drop what `setup` and the round made. */
  teardown?(): Promise<void>;
}

/**
 * Cases that do the same work, measured side by side in one process: rounds interleave
 * (A, B, A, B, ...) so that machine noise hits every case alike. The first case is the
 * baseline the others are compared to.
 */
export interface BenchGroup {
  readonly title: string;
  /** What the ratio means, for the reader of the table. */
  readonly note?: string;
  /** Environment variable naming the service the group needs; the group is skipped without it. */
  readonly requires?: string | readonly string[];
  setup?(): Promise<void>;
  readonly cases: readonly BenchCase[];
  teardown?(): Promise<void>;
}

export interface CaseResult {
  readonly name: string;
  /** Median messages per second over the rounds. */
  readonly perSecond: number;
  /** perSecond / baseline perSecond. */
  readonly ratio: number;
}

export interface GroupResult {
  readonly title: string;
  readonly note: string | undefined;
  readonly skipped?: string;
  readonly results: readonly CaseResult[];
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/** Operations per second of one round; `setup` and `teardown` are not timed. */
async function measure(benchCase: BenchCase): Promise<number> {
  await benchCase.setup?.();
  try {
    const started = performance.now();
    const operations = await benchCase.round();
    return operations / ((performance.now() - started) / 1000);
  } finally {
    await benchCase.teardown?.();
  }
}

export async function runGroup(group: BenchGroup, rounds: number): Promise<GroupResult> {
  const missing = [group.requires ?? []].flat().filter((variable) => !process.env[variable]);
  if (missing.length > 0) {
    return {
      title: group.title,
      note: group.note,
      skipped: `${missing.join(', ')} not set`,
      results: [],
    };
  }
  try {
    await group.setup?.();
    // One warm-up round each, not counted.
    for (const benchCase of group.cases) await measure(benchCase);
    const rates = group.cases.map(() => [] as number[]);
    for (let round = 0; round < rounds; round++) {
      for (const [index, benchCase] of group.cases.entries()) {
        rates[index]?.push(await measure(benchCase));
      }
    }
    const perSecond = rates.map(median);
    const baseline = perSecond[0] ?? 1;
    return {
      title: group.title,
      note: group.note,
      results: group.cases.map((benchCase, index) => ({
        name: benchCase.name,
        perSecond: perSecond[index] ?? 0,
        ratio: (perSecond[index] ?? 0) / baseline,
      })),
    };
  } finally {
    await group.teardown?.();
  }
}

export function formatTable(results: readonly GroupResult[]): string {
  const lines: string[] = [];
  for (const group of results) {
    lines.push(`### ${group.title}`, '');
    if (group.note) lines.push(group.note, '');
    if (group.skipped) {
      lines.push(`_skipped: ${group.skipped}_`, '');
      continue;
    }
    lines.push('| case | msg/s (median) | ratio |', '|---|---:|---:|');
    for (const result of group.results) {
      lines.push(
        `| ${result.name} | ${Math.round(result.perSecond).toLocaleString('en')} | ${result.ratio.toFixed(2)}× |`,
      );
    }
    lines.push('');
  }
  return lines.join('\n');
}
