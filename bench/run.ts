// npm run bench [-- --rounds 5 --only <word>[,<word>...] --out <file>]: side-by-side
// benchmarks. ROUNDS and BENCH_ONLY set the same from the environment (quick mode:
// ROUNDS=1 BENCH_ONLY=sqlite). A full run replaces the generated part of docs/benchmarks.md;
// a filtered one prints only, unless --out names a file.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { busGroups } from './bus.js';
import { formatTable, runGroup, type BenchGroup, type GroupResult } from './harness.js';
import { kafkaGroups } from './kafka.js';
import { outboxGroups } from './outbox.js';
import { outboxPostgresGroups } from './outbox-postgres.js';
import { outboxSqlGroups } from './outbox-sql.js';
import { rabbitmqGroups } from './rabbitmq.js';
import { redisGroups } from './redis.js';
import { tracingGroups } from './tracing.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: process.env.ROUNDS ?? '5' },
    only: { type: 'string', default: process.env.BENCH_ONLY ?? '' },
    out: { type: 'string' },
  },
});
const rounds = Number(values.rounds);
const words = (values.only ?? '')
  .toLowerCase()
  .split(',')
  .map((word) => word.trim())
  .filter(Boolean);
process.env.FERRY_LOG_LEVEL ??= 'silent';

const groups: BenchGroup[] = [
  ...busGroups(),
  ...outboxPostgresGroups(),
  ...outboxSqlGroups(),
  ...outboxGroups(),
  ...kafkaGroups(),
  ...rabbitmqGroups(),
  ...redisGroups(),
  ...tracingGroups(),
];
const selected = groups.filter(
  (group) => words.length === 0 || words.some((word) => group.title.toLowerCase().includes(word)),
);

const load = (): string =>
  loadavg()
    .map((value) => value.toFixed(1))
    .join(' / ');
const loadBefore = load();
const started = Date.now();
const results: GroupResult[] = [];
for (const group of selected) {
  process.stderr.write(`running: ${group.title} (load ${load()})\n`);
  const result = await runGroup(group, rounds, (line) => process.stderr.write(`${line}\n`));
  results.push(result);
  // Each group's table as soon as it is measured, so a long or interrupted run still says
  // what it found; the full report follows on stdout at the end.
  process.stderr.write(`${formatTable([result])}\n`);
}
const table = formatTable(results);
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
const header = `Measured by \`npm run bench\` on ${machine}, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, in ${Math.round((Date.now() - started) / 60_000)} min; load average (1 / 5 / 15 min) ${loadBefore} at the start and ${load()} at the end (the machine is shared). Median of ${rounds} interleaved rounds after one warm-up; ratios are against the first case of each group, or against its ceiling where the group names one, measured in the same run.`;
process.stdout.write(`${header}\n\n${table}\n`);

const START = '<!-- bench:start -->';
const END = '<!-- bench:end -->';
const target = values.out ?? (words.length === 0 ? 'docs/benchmarks.md' : undefined);
if (target) {
  const generated = `${START}\n${header}\n\n${table}\n${END}`;
  const before = existsSync(target) ? readFileSync(target, 'utf8') : '';
  const at = before.indexOf(START);
  const end = before.indexOf(END);
  writeFileSync(
    target,
    at >= 0 && end > at
      ? `${before.slice(0, at)}${generated}${before.slice(end + END.length)}`
      : `# Benchmarks\n\n${generated}\n`,
  );
}
