// Summarizes V8 .cpuprofile files (BENCH_PROFILE=<dir> writes one per round; node --cpu-prof
// writes one per process): where the busy time went, by package and by function (self time).
//
//   npx tsx bench/profile-summary.ts [--top 25] <file.cpuprofile>...
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}
interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}
interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' } },
});
const top = Number(values.top);

/** node_modules package, node: builtin, ferry's own file, or V8's bucket (GC, program). */
function origin({ url, functionName }: CallFrame): string {
  if (!url) return `(${functionName.replace(/[()]/g, '') || 'native'})`;
  const dependency = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (dependency) return dependency[1] as string;
  if (url.startsWith('node:')) return url;
  const own = /\/(?:src|dist|bench)\/(.*)$/.exec(url);
  return own ? `ferry ${own[1] as string}` : url;
}

const byOrigin = new Map<string, number>();
const byFunction = new Map<string, number>();
let busy = 0;
let idle = 0;
const add = (map: Map<string, number>, key: string, us: number): void => {
  map.set(key, (map.get(key) ?? 0) + us);
};

for (const file of positionals) {
  const profile = JSON.parse(await readFile(file, 'utf8')) as Profile;
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parents.set(child, node.id);
  // The profiler's own work (stopping it, from BENCH_PROFILE's session) is left out.
  const profiler = new Map<number, boolean>();
  const inProfiler = (id: number): boolean => {
    let known = profiler.get(id);
    if (known === undefined) {
      const parent = parents.get(id);
      known =
        frames.get(id)?.url === 'node:inspector' || (parent !== undefined && inProfiler(parent));
      profiler.set(id, known);
    }
    return known;
  };
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const frame = frames.get(id);
    if (frame === undefined || inProfiler(id)) return;
    if (frame.functionName === '(idle)') {
      idle += us;
      return;
    }
    busy += us;
    const from = origin(frame);
    add(byOrigin, from, us);
    add(byFunction, `${frame.functionName || '(anonymous)'}  ${from}:${frame.lineNumber + 1}`, us);
  });
}

const share = (us: number): string => `${((us / busy) * 100).toFixed(1).padStart(5)}%`;
const list = (title: string, map: Map<string, number>): void => {
  console.log(`\n${title}`);
  for (const [key, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${share(us)}  ${key}`);
  }
};
console.log(
  `${positionals.length} profile(s): busy ${(busy / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms ` +
    `(busy ${((busy / (busy + idle || 1)) * 100).toFixed(0)}% of the thread)`,
);
list('busy time by origin (self)', byOrigin);
list('busy time by function (self)', byFunction);
