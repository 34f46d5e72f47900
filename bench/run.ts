// npm run bench [-- --rounds 5 --only <word>]: side-by-side benchmarks, written to docs/benchmarks.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { formatTable, runGroup, type BenchGroup, type GroupResult } from './harness.js';
import { outboxGroups } from './outbox.js';
import { outboxKafkaGroups } from './outbox-kafka.js';
import { kafkaGroups } from './kafka.js';
import { rabbitmqGroups } from './rabbitmq.js';
import { redisGroups } from './redis.js';
import { sqliteGroups } from './sqlite.js';
import { tracingGroups } from './tracing.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    only: { type: 'string' },
    out: { type: 'string', default: 'docs/benchmarks.md' },
  },
});
const rounds = Number(values.rounds);
process.env.FERRY_LOG_LEVEL ??= 'silent';

const groups: BenchGroup[] = [
  ...sqliteGroups(),
  ...outboxGroups(),
  ...outboxKafkaGroups(),
  ...kafkaGroups(),
  ...rabbitmqGroups(),
  ...redisGroups(),
  ...tracingGroups(),
];
const selected = groups.filter(
  (group) => !values.only || group.title.toLowerCase().includes(values.only.toLowerCase()),
);

const results: GroupResult[] = [];
for (const group of selected) {
  process.stderr.write(`running: ${group.title}\n`);
  results.push(await runGroup(group, rounds));
}
const table = formatTable(results);
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
process.stdout.write(`${table}\n`);
mkdirSync('docs', { recursive: true });
writeFileSync(
  values.out,
  `# Benchmarks\n\nMeasured by \`npm run bench\` on ${machine}, ${new Date().toISOString().slice(0, 10)}. Median of ${rounds} interleaved rounds after one warm-up; ratios are against the first case of each group, measured in the same run.\n\n${table}`,
);
