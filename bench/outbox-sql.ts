// Outbox → broker relay on PostgreSQL across processes, in the interleaved run (`npm run
// bench -- --only "relay processes"`; ROUNDS, MESSAGES, SEED_MESSAGES size it):
// - relay throughput with 1, 2 and 4 relay processes vs its ceilings: the database
//   claim+mark loop alone (a transport that confirms at once) and raw publishing alone;
// - the seed's per-message Redis-lock relay (bench/seed-relay.ts), 4 processes, same
//   workload and transport: throughput and duplicate publishes.
// The transport is a PostgreSQL "sink" table (test/fixtures/pg-sink.ts) that records each
// confirmed publish, so duplicates and order are counted exactly. Relays start, take their
// leases and balance before the timed part, which runs from the commit of the backlog to the
// last row published.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { defineTopic, newMessageId, type OutgoingMessage } from '../src/index.js';
import { buildOutgoing, partitionFor, postgresOutbox } from './common.js';
import { createSinkTable, inspectSink, sinkTransport } from '../test/fixtures/pg-sink.js';
import { uniqueName } from '../test/helpers/wait.js';
import type { BenchCase, BenchGroup, RoundResult } from './harness.js';

const url = process.env.FERRY_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const N = Number(process.env.MESSAGES ?? 20_000);
/** The seed's relay makes two commits per message: it gets a smaller backlog, and so does ours beside it. */
const N_SEED = Number(process.env.SEED_MESSAGES ?? 2_000);
const KEYS = 200;
const PARTITIONS = 16;
const Topic = defineTopic<{ n: number; pad: string }>('bench.outbox');
const PAD = 'x'.repeat(100);

let pool: pg.Pool;
const created: string[] = [];

interface Tables {
  readonly outbox: string;
  readonly sink: string;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

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

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const asRound = (run: RelayRun, n: number): RoundResult => ({
  operations: n,
  seconds: n / run.rate,
  metrics: { 'duplicate publishes': run.duplicates, 'order violations': run.orderViolations },
});

export function outboxSqlGroups(): BenchGroup[] {
  const ours = 'test/fixtures/pg-relay.ts';
  const seed = 'bench/seed-relay.ts';
  const relayCase = (count: number): BenchCase => ({
    name: `ferry relay → sink, ${count} relay process${count === 1 ? '' : 'es'}`,
    round: async () => asRound(await relayRun(ours, count), N),
  });
  const lifecycle = {
    requires: 'FERRY_PG_URL',
    metrics: { 'duplicate publishes': 'sum', 'order violations': 'sum' },
    async setup() {
      pool = new pg.Pool({ connectionString: url, max: 16 });
    },
    async teardown() {
      await dropAll();
      await pool.end();
    },
  } as const;
  return [
    {
      ...lifecycle,
      title: `Relay processes, PostgreSQL outbox → sink table (${fmt(N)} messages over ${KEYS} keys, ${PARTITIONS} partitions)`,
      note: 'The sink is a PostgreSQL table that records every confirmed publish. Ceiling: the slower of publishing to the sink alone (16 partitions at once, 500 a batch) and the claim+mark loop with a transport that confirms at once (1 relay).',
      ceiling: [0, 1],
      cases: [
        {
          name: 'ceiling 1: raw publish to the sink (no outbox)',
          round: async () => ({ operations: N, seconds: N / (await rawPublish()) }),
        },
        {
          name: 'ceiling 2: claim+mark loop, no-op transport, 1 relay',
          round: async () => asRound(await relayRun(ours, 1, { TRANSPORT: 'noop' }), N),
        },
        relayCase(1),
        relayCase(2),
        relayCase(4),
      ],
    },
    {
      ...lifecycle,
      title: `Relay processes: a naive lock-per-message relay vs ferry's (4 processes each, ${fmt(N_SEED)} messages, same sink)`,
      note: "The seed's relay takes a Redis SET NX lock per message and makes two commits per message.",
      requires: ['FERRY_PG_URL', 'FERRY_REDIS_URL'],
      cases: [
        {
          name: 'ferry: partition leases, batched, fenced mark',
          round: async () => asRound(await relayRun(ours, 4, {}, N_SEED), N_SEED),
        },
        {
          name: 'seed: Redis SET NX lock per message',
          round: async () => asRound(await relayRun(seed, 4, {}, N_SEED), N_SEED),
        },
      ],
    },
  ];
}
