// Outbox → broker relay on PostgreSQL, side by side:
//   npx tsx bench/outbox-sql.ts        (FERRY_PG_URL, FERRY_REDIS_URL; ROUNDS=3, MESSAGES=20000)
// - relay throughput with 1, 2 and 4 relay processes vs its ceilings: the database
//   claim+mark loop alone (a transport that confirms at once) and raw publishing alone;
// - the seed's per-message Redis-lock relay (bench/seed-relay.ts), 4 processes, same
//   workload and transport: throughput and duplicate publishes;
// - commit → consume latency, polling only vs LISTEN/NOTIFY;
// - what the outbox row (and NOTIFY) costs the writers' commit rate.
// The transport is a PostgreSQL "sink" table (test/fixtures/pg-sink.ts) that records each
// confirmed publish, so duplicates and order are counted exactly.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createBus } from '../src/bus.js';
import { createLogger } from '../src/log.js';
import { buildOutgoing, newMessageId, partitionFor, type OutgoingMessage } from '../src/message.js';
import { postgresOutbox } from '../src/stores/postgres.js';
import { defineTopic } from '../src/topic.js';
import { memory } from '../src/transports/memory.js';
import { createSinkTable, inspectSink, sinkTransport } from '../test/fixtures/pg-sink.js';
import { uniqueName } from '../test/helpers/wait.js';

const url = process.env.FERRY_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const N = Number(process.env.MESSAGES ?? 20_000);
/** The seed's relay makes two commits per message: it gets a smaller backlog, and so does ours beside it. */
const N_SEED = Number(process.env.SEED_MESSAGES ?? 2_000);
const KEYS = 200;
const PARTITIONS = 16;
const Topic = defineTopic<{ n: number; pad: string }>('bench.outbox');
const PAD = 'x'.repeat(100);
const silent = createLogger({ level: 'silent' });

const pool = new pg.Pool({ connectionString: url, max: 16 });
const created: string[] = [];

interface Tables {
  readonly outbox: string;
  readonly sink: string;
}

async function fresh(): Promise<Tables> {
  const outbox = uniqueName('bench');
  const sink = `${outbox}_sink`;
  created.push(outbox, `${outbox}_lease`, `${outbox}_relay`, sink);
  await postgresOutbox({ pool, table: outbox, partitions: PARTITIONS }).migrate();
  await createSinkTable(pool, sink);
  return { outbox, sink };
}

async function dropAll(): Promise<void> {
  for (const table of created.splice(0)) await pool.query(`DROP TABLE IF EXISTS "${table}"`);
}

/** N messages over KEYS keys, `n` increasing per key, committed in one transaction. */
async function backlog(table: string, n: number): Promise<void> {
  const outbox = postgresOutbox({ pool, table, notify: true });
  const items = Array.from({ length: n }, (_, i) => ({
    key: `key-${i % KEYS}`,
    payload: { n: Math.floor(i / KEYS), pad: PAD },
  }));
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await outbox.enqueueMany(client, Topic, items);
    await client.query('COMMIT');
  } finally {
    client.release();
  }
}

/** Waits until `count` relays hold all partitions between them (leases balanced). */
async function settled(table: string, count: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const { rows } = await pool.query<{ owners: number; held: number; max: number }>(
      `SELECT count(DISTINCT owner)::int AS owners, count(owner)::int AS held,
              coalesce(max(n), 0)::int AS max
       FROM "${table}_lease" l
       LEFT JOIN (SELECT owner AS o, count(*) AS n FROM "${table}_lease" GROUP BY owner) c ON c.o = l.owner
       WHERE owner IS NOT NULL AND expires_at > now()`,
    );
    const row = rows[0];
    if (
      row &&
      row.owners === count &&
      row.held === PARTITIONS &&
      row.max <= Math.ceil(PARTITIONS / count)
    )
      return;
    await sleep(50);
  }
  throw new Error('relays did not balance their leases');
}

interface Proc {
  readonly child: ChildProcess;
  readonly exited: Promise<unknown>;
  ready(): Promise<void>;
}

async function spawnRelays(
  script: string,
  count: number,
  tables: Tables,
  env: Record<string, string> = {},
): Promise<Proc[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const child = spawn(process.execPath, ['--import', 'tsx', script], {
        env: {
          ...process.env,
          FERRY_PG_URL: url,
          OUTBOX_TABLE: tables.outbox,
          SINK_TABLE: tables.sink,
          RELAY_NAME: `relay-${i}`,
          WAIT_FOR_GO: '1',
          LEASE_MS: '3000',
          NOTIFY: '1',
          FERRY_LOG_LEVEL: 'silent',
          ...env,
        },
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      const exited = once(child, 'exit');
      let output = '';
      const said = (word: string): Promise<void> =>
        new Promise<void>((resolve, reject) => {
          const check = (): void => {
            if (output.includes(word)) resolve();
          };
          child.stdout?.on('data', (chunk: Buffer) => {
            output += chunk.toString();
            check();
          });
          check();
          void exited.then(() => reject(new Error(`${script} exited early`)));
        });
      await said('loaded');
      return { child, exited, ready: () => said('ready') };
    }),
  );
}

async function pending(table: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(
    `SELECT count(*) AS n FROM "${table}" WHERE status = 'pending'`,
  );
  return Number(rows[0]?.n);
}

interface RelayRun {
  readonly rate: number;
  readonly duplicates: number;
  readonly orderViolations: number;
}

/**
 * Starts `count` relay processes of `script` on an empty outbox, lets them balance, then
 * commits N messages in one transaction and times commit → everything published.
 */
async function relayRun(
  script: string,
  count: number,
  env: Record<string, string> = {},
  n = N,
): Promise<RelayRun> {
  const tables = await fresh();
  const procs = await spawnRelays(script, count, tables, env);
  for (const proc of procs) proc.child.stdin?.write('go\n');
  await Promise.all(procs.map((proc) => proc.ready()));
  if (script.endsWith('pg-relay.ts')) await settled(tables.outbox, count);
  else await sleep(300);
  await backlog(tables.outbox, n);
  const started = performance.now();
  while ((await pending(tables.outbox)) > 0) await sleep(20);
  const elapsed = performance.now() - started;
  for (const proc of procs) proc.child.kill('SIGTERM');
  await Promise.all(procs.map((proc) => proc.exited));
  const report =
    env.TRANSPORT === 'noop'
      ? { duplicates: 0, orderViolations: 0 }
      : await inspectSink(pool, tables.sink, n);
  await dropAll();
  return {
    rate: n / (elapsed / 1000),
    duplicates: report.duplicates,
    orderViolations: report.orderViolations,
  };
}

/** Publishing alone: the same messages straight into the sink, 500 a batch, 16 batches at once. */
async function rawPublish(): Promise<number> {
  const tables = await fresh();
  const transport = sinkTransport(pool, tables.sink, 'raw');
  const byPartition: OutgoingMessage[][] = Array.from({ length: PARTITIONS }, () => []);
  for (let i = 0; i < N; i++) {
    const key = `key-${i % KEYS}`;
    byPartition[partitionFor(key, PARTITIONS)]?.push(
      buildOutgoing({
        id: newMessageId(),
        topic: Topic.name,
        key,
        body: Topic.codec.encode({ n: Math.floor(i / KEYS), pad: PAD }),
        contentType: Topic.codec.contentType,
        createdAt: new Date(),
      }),
    );
  }
  const started = performance.now();
  await Promise.all(
    byPartition.map(async (messages) => {
      for (let i = 0; i < messages.length; i += 500) {
        await transport.publish(messages.slice(i, i + 500));
      }
    }),
  );
  const elapsed = performance.now() - started;
  await dropAll();
  return N / (elapsed / 1000);
}

/** Commit → consume latency with one in-process relay on the memory transport. */
async function latency(notify: boolean, messages = 150, perSecond = 25): Promise<number[]> {
  const tables = await fresh();
  const outbox = postgresOutbox({ pool, table: tables.outbox, notify });
  await outbox.migrate();
  const transport = memory();
  const bus = createBus({ transport, logger: silent });
  const committed = new Map<string, number>();
  const received = new Map<string, number>();
  await bus.subscribe(Topic, { group: 'latency', from: 'earliest' }, async (message) => {
    if (!received.has(message.id)) received.set(message.id, performance.now());
  });
  const relay = outbox.relay({ transport, logger: silent, retention: 'keep' });
  await relay.start();
  await sleep(200);
  for (let i = 0; i < messages; i++) {
    const client = await pool.connect();
    await client.query('BEGIN');
    const { id } = await outbox.enqueue(client, Topic, { n: i, pad: PAD }, { key: `k${i % 10}` });
    await client.query('COMMIT');
    committed.set(id, performance.now());
    client.release();
    await sleep(1000 / perSecond);
  }
  const deadline = Date.now() + 10_000;
  while (received.size < messages && Date.now() < deadline) await sleep(20);
  await relay.stop();
  await bus.close();
  await outbox.store.close();
  await dropAll();
  // A message can reach the consumer before the writer's COMMIT reply is processed: 0 ms.
  return [...committed].map(([id, at]) => Math.max(0, (received.get(id) ?? Infinity) - at));
}

type WriteMode = 'business row' | 'business + outbox' | 'business + outbox + NOTIFY';

/** Commits per second of `clients` writers, each committing one order (and its message). */
async function writeRate(mode: WriteMode, clients = 8, durationMs = 3000): Promise<number> {
  const tables = await fresh();
  const orders = `${tables.outbox}_orders`;
  created.push(orders);
  await pool.query(`CREATE TABLE "${orders}" (id text PRIMARY KEY, total integer, body text)`);
  const outbox = postgresOutbox({
    pool,
    table: tables.outbox,
    notify: mode === 'business + outbox + NOTIFY',
  });
  await outbox.migrate();
  let commits = 0;
  const end = performance.now() + durationMs;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const client = await pool.connect();
      try {
        while (performance.now() < end) {
          const id = newMessageId();
          await client.query('BEGIN');
          await client.query(`INSERT INTO "${orders}" VALUES ($1, $2, $3)`, [id, 42, PAD]);
          if (mode !== 'business row') {
            await outbox.enqueue(client, Topic, { n: 0, pad: PAD }, { key: id });
          }
          await client.query('COMMIT');
          commits++;
        }
      } finally {
        client.release();
      }
    }),
  );
  await dropAll();
  return commits / (durationMs / 1000);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
};
const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const ratio = (n: number, base: number): string => `${(n / base).toFixed(2)}×`;

async function rounds<T>(label: string, run: () => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    results.push(await run());
    process.stderr.write(`  ${label}: round ${r + 1}/${ROUNDS}\n`);
  }
  return results;
}

async function main(): Promise<void> {
  const ours = 'test/fixtures/pg-relay.ts';
  const seed = 'bench/seed-relay.ts';
  const out: string[] = [];
  const print = (line = ''): void => {
    out.push(line);
  };

  process.stderr.write(`outbox-sql bench: ${N} messages, ${KEYS} keys, ${ROUNDS} rounds\n`);
  const raw = median(await rounds('raw publish', rawPublish));
  const noop: Record<number, number> = {};
  const sink: Record<number, RelayRun[]> = {};
  for (const count of [1, 2, 4]) {
    noop[count] = median(
      (
        await rounds(`claim+mark ×${count}`, () => relayRun(ours, count, { TRANSPORT: 'noop' }))
      ).map((r) => r.rate),
    );
    sink[count] = await rounds(`relay ×${count}`, () => relayRun(ours, count));
  }
  const seedRuns = await rounds('seed relay ×4', () => relayRun(seed, 4, {}, N_SEED));
  const oursSmall = await rounds('relay ×4, seed workload', () => relayRun(ours, 4, {}, N_SEED));

  print(
    `### Relay throughput (PostgreSQL, ${fmt(N)} messages over ${KEYS} keys, ${PARTITIONS} partitions; median of ${ROUNDS})`,
  );
  print();
  print('| case | msg/s | vs ceiling | duplicate publishes | order violations |');
  print('|---|---:|---:|---:|---:|');
  print(`| raw publish to the sink (no outbox) | ${fmt(raw)} | — | — | — |`);
  for (const count of [1, 2, 4]) {
    print(
      `| claim+mark loop, no-op transport, ${count} relay(s) | ${fmt(noop[count] ?? 0)} | — | — | — |`,
    );
  }
  for (const count of [1, 2, 4]) {
    const runs = sink[count] ?? [];
    const rate = median(runs.map((r) => r.rate));
    const ceiling = Math.min(raw, noop[count] ?? Infinity);
    print(
      `| ferry relay → sink, ${count} relay(s) | ${fmt(rate)} | ${ratio(rate, ceiling)} | ${runs.map((r) => r.duplicates).join(' / ')} | ${runs.map((r) => r.orderViolations).join(' / ')} |`,
    );
  }
  const ours4 = median((sink[4] ?? []).map((r) => r.rate));
  print();
  print(
    `Scaling: 2 relays ${ratio(median((sink[2] ?? []).map((r) => r.rate)), median((sink[1] ?? []).map((r) => r.rate)))}, 4 relays ${ratio(ours4, median((sink[1] ?? []).map((r) => r.rate)))} of 1 relay.`,
  );
  print();
  print(
    `### The seed's relay vs ours (4 relay processes each, ${fmt(N_SEED)} messages over ${KEYS} keys, same sink; median of ${ROUNDS})`,
  );
  print();
  print('| relay | msg/s | vs ferry | duplicate publishes (per round) | order violations |');
  print('|---|---:|---:|---:|---:|');
  const oursSmallRate = median(oursSmall.map((r) => r.rate));
  const seedRate = median(seedRuns.map((r) => r.rate));
  print(
    `| ferry: partition leases, batched, fenced mark | ${fmt(oursSmallRate)} | 1.00× | ${oursSmall.map((r) => r.duplicates).join(' / ')} | ${oursSmall.map((r) => r.orderViolations).join(' / ')} |`,
  );
  print(
    `| seed: Redis SET NX lock per message | ${fmt(seedRate)} | ${ratio(seedRate, oursSmallRate)} | ${seedRuns.map((r) => r.duplicates).join(' / ')} | ${seedRuns.map((r) => r.orderViolations).join(' / ')} |`,
  );
  print();

  process.stderr.write('  latency: polling\n');
  const polled = await latency(false);
  process.stderr.write('  latency: NOTIFY\n');
  const notified = await latency(true);
  print('### Commit → consume latency (one relay, 25 commits/s, memory transport)');
  print();
  print('| wake-up | samples | p50 ms | p99 ms | max ms |');
  print('|---|---:|---:|---:|---:|');
  for (const [label, samples] of [
    ['adaptive polling (10 ms … 1 s)', polled],
    ['LISTEN/NOTIFY', notified],
  ] as const) {
    print(
      `| ${label} | ${samples.length} | ${percentile(samples, 50).toFixed(1)} | ${percentile(samples, 99).toFixed(1)} | ${Math.max(...samples).toFixed(1)} |`,
    );
  }
  print();

  const modes: WriteMode[] = ['business row', 'business + outbox', 'business + outbox + NOTIFY'];
  const writes: Record<string, number> = {};
  for (const mode of modes)
    writes[mode] = median(await rounds(`write: ${mode}`, () => writeRate(mode)));
  print('### Writer cost (8 clients, one order per transaction, 3 s; median)');
  print();
  print('| transaction | commits/s | vs business row alone |');
  print('|---|---:|---:|');
  for (const mode of modes) {
    print(
      `| ${mode} | ${fmt(writes[mode] ?? 0)} | ${ratio(writes[mode] ?? 0, writes['business row'] ?? 1)} |`,
    );
  }
  console.log(out.join('\n'));
}

try {
  await main();
} finally {
  await dropAll();
  await pool.end();
}
