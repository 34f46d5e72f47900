import { mkdir, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

/** What one round did, when a case times itself or reports more than a rate. */
export interface RoundResult {
  /** Operations (messages) completed. */
  readonly operations: number;
  /** The timed part, when the case times it itself (e.g. leaving out a start and a stop). */
  readonly seconds?: number;
  /** Further figures of the round, by name (see {@link BenchGroup.metrics}). */
  readonly metrics?: Readonly<Record<string, number>>;
}

/** One way of doing the work a group measures. */
export interface BenchCase {
  readonly name: string;
  /** Untimed, before each round: a fresh topic, a filled queue, a connected client. */
  setup?(): Promise<void>;
  /** Runs one round and returns how many operations (messages) it completed. */
  round(): Promise<number | RoundResult>;
  /** Untimed, after each round: drop what `setup` and the round made. */
  teardown?(): Promise<void>;
}

/** How a metric's per-round values become one figure. */
export type Aggregate = 'median' | 'sum' | 'max';

/**
 * Cases that do the same work, measured side by side in one process: rounds interleave
 * (A, B, A, B, ...) so that machine noise hits every case alike. Ratios are against the
 * first case, or against the slowest of the `ceiling` cases.
 */
export interface BenchGroup {
  readonly title: string;
  /** What the ratio means, for the reader of the table. */
  readonly note?: string;
  /** Environment variable naming the service the group needs; the group is skipped without it. */
  readonly requires?: string | readonly string[];
  /** Indexes of the cases whose slowest median is the baseline (default: the first case). */
  readonly ceiling?: readonly number[];
  /** Columns after the rate, by metric name, and how rounds combine (default median). */
  readonly metrics?: Readonly<Record<string, Aggregate>>;
  /** False where the rate is set by the load, not measured (the ratio column is left out). */
  readonly ratio?: boolean;
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
  readonly metrics: Readonly<Record<string, number>>;
}

export interface GroupResult {
  readonly title: string;
  readonly note: string | undefined;
  readonly skipped?: string;
  readonly metrics?: Readonly<Record<string, Aggregate>>;
  readonly ratio?: boolean;
  readonly ceiling?: number;
  readonly results: readonly CaseResult[];
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/** The value below which `p` percent of `values` lie (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

interface Measured {
  readonly perSecond: number;
  readonly metrics: Readonly<Record<string, number>>;
}

const profileDir = process.env.BENCH_PROFILE;
let profiled = 0;
const slug = (text: string, length: number): string =>
  text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, length);

/**
 * With BENCH_PROFILE=<dir>, `round` runs under the V8 CPU profiler of this process and the
 * profile is written to <dir> (one .cpuprofile per round: open it in Chrome's DevTools, or
 * summarize it with `npx tsx bench/profile-summary.ts <files>`). Warm-up rounds are not
 * profiled, nor is work done in other processes (relay processes, brokers). The profiler
 * slows the rounds it watches: take figures from a run without it.
 */
async function profiling<T>(
  label: readonly [group: string, benchCase: string] | undefined,
  round: () => Promise<T>,
): Promise<T> {
  if (!profileDir || label === undefined) return round();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await round();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    await mkdir(profileDir, { recursive: true });
    profiled++;
    await writeFile(
      join(
        profileDir,
        `${String(profiled).padStart(3, '0')}-${slug(label[0], 30)}--${slug(label[1], 60)}.cpuprofile`,
      ),
      JSON.stringify(profile),
    );
  }
}

/** Operations per second of one round; `setup` and `teardown` are not timed. */
async function measure(
  benchCase: BenchCase,
  label?: readonly [group: string, benchCase: string],
): Promise<Measured> {
  await benchCase.setup?.();
  try {
    const started = performance.now();
    const result = await profiling(label, () => benchCase.round());
    const elapsed = (performance.now() - started) / 1000;
    if (typeof result === 'number') return { perSecond: result / elapsed, metrics: {} };
    return {
      perSecond: result.operations / (result.seconds ?? elapsed),
      metrics: result.metrics ?? {},
    };
  } finally {
    await benchCase.teardown?.();
  }
}

const combine: Record<Aggregate, (values: readonly number[]) => number> = {
  median,
  sum: (values) => values.reduce((a, b) => a + b, 0),
  max: (values) => Math.max(...values),
};

export async function runGroup(
  group: BenchGroup,
  rounds: number,
  progress: (line: string) => void = () => {},
): Promise<GroupResult> {
  const base = {
    title: group.title,
    note: group.note,
    ...(group.metrics ? { metrics: group.metrics } : {}),
    ...(group.ratio === undefined ? {} : { ratio: group.ratio }),
  };
  const missing = [group.requires ?? []].flat().filter((variable) => !process.env[variable]);
  if (missing.length > 0) return { ...base, skipped: `${missing.join(', ')} not set`, results: [] };
  try {
    await group.setup?.();
    // One warm-up round each, not counted.
    for (const benchCase of group.cases) await measure(benchCase);
    const measured = group.cases.map(() => [] as Measured[]);
    for (let round = 0; round < rounds; round++) {
      for (const [index, benchCase] of group.cases.entries()) {
        measured[index]?.push(await measure(benchCase, [group.title, benchCase.name]));
      }
      progress(`  round ${round + 1}/${rounds}`);
    }
    const perSecond = measured.map((runs) => median(runs.map((run) => run.perSecond)));
    const ceiling = Math.min(...(group.ceiling ?? [0]).map((index) => perSecond[index] ?? 0));
    return {
      ...base,
      ...(group.ceiling ? { ceiling } : {}),
      results: group.cases.map((benchCase, index) => {
        const runs = measured[index] ?? [];
        const metrics: Record<string, number> = {};
        for (const [name, aggregate] of Object.entries(group.metrics ?? {})) {
          const values = runs.flatMap((run) => run.metrics[name] ?? []);
          if (values.length > 0) metrics[name] = combine[aggregate](values);
        }
        return {
          name: benchCase.name,
          perSecond: perSecond[index] ?? 0,
          ratio: (perSecond[index] ?? 0) / (ceiling || 1),
          metrics,
        };
      }),
    };
  } finally {
    await group.teardown?.();
  }
}

const figure = (value: number): string =>
  Number.isInteger(value) || Math.abs(value) >= 100
    ? Math.round(value).toLocaleString('en')
    : value.toFixed(value < 10 ? 2 : 1);

export function formatTable(results: readonly GroupResult[]): string {
  const lines: string[] = [];
  for (const group of results) {
    lines.push(`### ${group.title}`, '');
    if (group.note) lines.push(group.note, '');
    if (group.skipped) {
      lines.push(`_skipped: ${group.skipped}_`, '');
      continue;
    }
    const metrics = Object.entries(group.metrics ?? {});
    const withRatio = group.ratio !== false;
    const head = [
      'case',
      'msg/s (median)',
      ...(withRatio ? [group.ceiling === undefined ? 'ratio' : 'vs ceiling'] : []),
      ...metrics.map(([name, aggregate]) =>
        aggregate === 'median' ? name : `${name} (${aggregate})`,
      ),
    ];
    lines.push(
      `| ${head.join(' | ')} |`,
      `|---|${head
        .slice(1)
        .map(() => '---:')
        .join('|')}|`,
    );
    for (const result of group.results) {
      const cells = [
        result.name,
        Math.round(result.perSecond).toLocaleString('en'),
        ...(withRatio ? [`${result.ratio.toFixed(2)}×`] : []),
        ...metrics.map(([name]) => {
          const value = result.metrics[name];
          return value === undefined ? '—' : figure(value);
        }),
      ];
      lines.push(`| ${cells.join(' | ')} |`);
    }
    if (group.ceiling !== undefined) {
      lines.push('', `Ceiling: ${Math.round(group.ceiling).toLocaleString('en')} msg/s.`);
    }
    lines.push('');
  }
  return lines.join('\n');
}
