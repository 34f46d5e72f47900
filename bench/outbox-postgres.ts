// The PostgreSQL outbox, measured against what it is made of: the relay to Kafka and to
// RabbitMQ against its ceiling, its CPU at a light load, the writers' cost of enqueueing, scale-out to a
// remote-like broker, commit → handler latency, and the inbox consumer.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { Admin } from '@platformatic/kafka';
import amqp from 'amqplib';
import pg from 'pg';
import {
  createBus,
  defineTopic,
  HEADER,
  newMessageId,
  type Bus,
  type Logger,
  type OutgoingMessage,
  type Relay,
  type Subscription,
  type Transport,
} from '../src/index.js';
import {
  audited,
  buildOutgoing,
  chunks,
  partitionFor,
  silent,
  size,
  until,
  postgresInbox,
  postgresOutbox,
  type PostgresOutbox,
} from './common.js';
import { kafka } from '../src/transports/kafka/index.js';
import { createMemoryBroker, memory } from '../src/transports/memory/index.js';
import { rabbitmq } from '../src/transports/rabbitmq/amqp/index.js';
import {
  brokers,
  KAFKA_PARTITIONS,
  kafkaResources,
  rawProducer,
  type RawProducer,
} from './kafka.js';
import { rawPublish } from './rabbitmq.js';
import {
  median,
  percentile,
  sleep,
  type BenchCase,
  type BenchGroup,
  type RoundResult,
} from './harness.js';

const PARTITIONS = 16;
const BATCH = 500;
const KEYS = 200;
interface Order {
  orderId: string;
  amount: number;
  note: string;
}
const Orders = (name: string) => defineTopic<Order>(name);
const payload = (i: number): Order => ({
  orderId: `o-${i}`,
  amount: i % 997,
  note: 'x'.repeat(100),
});
const items = (count: number) =>
  Array.from({ length: count }, (_, i) => ({ key: `customer-${i % KEYS}`, payload: payload(i) }));
const pgUrl = (): string => process.env.FERRY_PG_URL ?? '';
const unique = (prefix: string): string =>
  `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;

/** An outbox and its table's name. */
type TableOutbox = PostgresOutbox & { readonly table: string };

/** Tables and topics one group made, dropped by its teardown. */
function resources() {
  const tables: string[] = [];
  const topics: string[] = [];
  let pool: pg.Pool | undefined;
  return {
    pool(): pg.Pool {
      pool ??= new pg.Pool({ connectionString: pgUrl(), max: 32 });
      return pool;
    },
    async outbox(options: { notify?: boolean } = {}): Promise<TableOutbox> {
      const table = unique('bench_outbox');
      tables.push(table, `${table}_lease`, `${table}_relay`);
      const outbox = postgresOutbox({
        pool: this.pool(),
        table,
        partitions: PARTITIONS,
        notify: options.notify ?? false,
      });
      await outbox.migrate();
      return { ...outbox, table };
    },
    table(prefix: string): string {
      const table = unique(prefix);
      tables.push(table);
      return table;
    },
    topic(prefix: string): string {
      const topic = `bench.${unique(prefix)}`;
      topics.push(topic);
      return topic;
    },
    async dropTables(): Promise<void> {
      if (!pool) return;
      for (const table of tables.splice(0)) await pool.query(`DROP TABLE IF EXISTS "${table}"`);
    },
    async close(): Promise<void> {
      await this.dropTables();
      if (topics.length > 0 && process.env.FERRY_KAFKA_BROKERS) {
        const admin = new Admin({ clientId: 'bench-admin', bootstrapBrokers: brokers() });
        await admin.deleteTopics({ topics: topics.splice(0) }).catch(() => undefined);
        await admin.close();
      }
      await pool?.end();
      pool = undefined;
    },
  };
}

async function enqueueAll(
  pool: pg.Pool,
  outbox: PostgresOutbox,
  topic: string,
  count: number,
): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await outbox.enqueueMany(client, Orders(topic), items(count));
    await client.query('COMMIT');
  } finally {
    client.release();
  }
}

/**
 * `writers` connections commit message i at `started + i / rate`, for `seconds`; returns
 * when the last commit returned, with each commit's time by message id.
 */
/** One transaction that enqueues order `i` (keyed by customer) to `topic`; its id. */
async function commitOrder(
  client: pg.PoolClient,
  outbox: PostgresOutbox,
  topic: string,
  i: number,
): Promise<string> {
  await client.query('BEGIN');
  const { id } = await outbox.enqueue(client, Orders(topic), payload(i), {
    key: `customer-${Math.abs(i) % KEYS}`,
  });
  await client.query('COMMIT');
  return id;
}

async function steadyWrites(
  pool: pg.Pool,
  rate: number,
  seconds: number,
  writers: number,
  commit: (client: pg.PoolClient, i: number) => Promise<string>,
): Promise<{ committed: Map<string, number>; seconds: number }> {
  const total = rate * seconds;
  const committed = new Map<string, number>();
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      const client = await pool.connect();
      try {
        for (let i = next++; i < total; i = next++) {
          const wait = started + (i * 1000) / rate - performance.now();
          if (wait > 1) await sleep(wait);
          const id = await commit(client, i);
          committed.set(id, performance.now());
        }
      } finally {
        client.release();
      }
    }),
  );
  return { committed, seconds: (performance.now() - started) / 1000 };
}

/** One broker the relay ceiling group is measured on. */
interface RelayBroker {
  readonly title: string;
  readonly note: string;
  readonly requires: string;
  /** Makes a topic; returns it and the transport the relay publishes with. */
  open(): Promise<{ topic: string; transport: Transport }>;
  /** The broker alone: the raw client sending the relay's messages (grouped per partition). */
  readonly alone: {
    readonly name: string;
    send(topic: string, byPartition: OutgoingMessage[][]): Promise<void>;
  };
  /** Untimed, after each case's round (e.g. empty a queue). */
  after?(): Promise<void>;
  close(): Promise<void>;
}

/** Relay PostgreSQL → broker against min(the database work alone, the broker alone). */
function relayCeilingGroup(broker: RelayBroker): BenchGroup {
  const rows = size('BENCH_RELAY_ROWS', 20_000);
  const r = resources();
  let topic = '';
  let transport: Transport | undefined;

  // The database side alone: what the relay asks of PostgreSQL, in raw SQL on the same
  // tables: take the 16 leases, then per partition (all at once) read 500 pending rows
  // and mark them published under the lease, until none is left.
  let table = '';
  const databaseAlone: BenchCase = {
    name: 'ceiling 1: raw pg, 16 lease claims, reads of 500 and fenced marks',
    async setup() {
      const outbox = await r.outbox();
      table = outbox.table;
      await enqueueAll(r.pool(), outbox, topic, rows);
    },
    async round() {
      const pool = r.pool();
      const T = `"${table}"`;
      const L = `"${table}_lease"`;
      const owner = `raw-${process.pid}`;
      const leases = await pool.query<{ partition: number; fence: string }>(
        `UPDATE ${L} SET owner = $1, fence = fence + 1, expires_at = now() + interval '30 seconds'
         WHERE partition IN (SELECT partition FROM ${L} WHERE owner IS NULL OR expires_at <= now()
                             ORDER BY partition LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING partition, fence::text AS fence`,
        [owner, PARTITIONS],
      );
      let done = 0;
      await Promise.all(
        leases.rows.map(async ({ partition, fence }) => {
          for (;;) {
            const read = await pool.query<{ id: string; ready: boolean }>(
              `SELECT id, seq::text AS seq_text, topic, key, partition, payload, headers, created_at,
                      attempts, available_at, available_at <= now() AS ready
               FROM ${T} WHERE status = 'pending' AND partition = $1 ORDER BY seq LIMIT $2`,
              [partition, BATCH],
            );
            if (read.rows.length === 0) return;
            const marked = await pool.query(
              `UPDATE ${T} SET status = 'published', published_at = now()
               WHERE id = ANY($4::text[]) AND partition = $1 AND status = 'pending'
                 AND EXISTS (SELECT 1 FROM ${L} WHERE partition = $1 AND owner = $2 AND fence = $3
                             AND expires_at > now() FOR SHARE)`,
              [partition, owner, fence, read.rows.map((row) => row.id)],
            );
            done += marked.rowCount ?? 0;
          }
        }),
      );
      return done;
    },
    teardown: () => r.dropTables(),
  };

  // The broker side alone: the same messages, grouped by outbox partition, sent by the raw
  // client with the same settings.
  let byPartition: OutgoingMessage[][] = [];
  const brokerAlone: BenchCase = {
    name: `ceiling 2: ${broker.alone.name}`,
    async setup() {
      byPartition = Array.from({ length: PARTITIONS }, () => []);
      for (const [i, item] of items(rows).entries()) {
        byPartition[partitionFor(item.key, PARTITIONS)]?.push(
          buildOutgoing({
            id: newMessageId(),
            topic,
            key: item.key,
            body: Buffer.from(JSON.stringify(payload(i))),
            contentType: 'application/json',
            createdAt: new Date(),
          }),
        );
      }
    },
    async round() {
      await broker.alone.send(topic, byPartition);
      return rows;
    },
    teardown: async () => broker.after?.(),
  };

  // Both at once: the two ceilings measure each side with the whole machine to itself, while
  // a relay needs both at the same time. This is what this machine gives the two together,
  // perfectly overlapped.
  const bothAtOnce: BenchCase = {
    name: 'ceilings 1 and 2 run at once, sharing the machine (reference)',
    async setup() {
      await databaseAlone.setup?.();
      await brokerAlone.setup?.();
    },
    async round() {
      await Promise.all([databaseAlone.round(), brokerAlone.round()]);
      return rows;
    },
    async teardown() {
      await databaseAlone.teardown?.();
      await brokerAlone.teardown?.();
    },
  };

  const relayCase = (label: string, logger: () => Logger, audit: boolean): BenchCase => {
    let outbox: PostgresOutbox | undefined;
    let relay: Relay | undefined;
    return {
      name: `ferry relay, 1 relay, 16 partitions, ${label}`,
      async setup() {
        outbox = await r.outbox();
        relay = outbox.relay({
          transport: transport as Transport,
          logger: logger(),
          audit,
          retention: 'keep',
        });
        await relay.start();
      },
      async round() {
        await enqueueAll(r.pool(), outbox as PostgresOutbox, topic, rows);
        const started = performance.now();
        relay?.wake();
        await until(() => (relay?.stats().published ?? 0) >= rows);
        return { operations: rows, seconds: (performance.now() - started) / 1000 };
      },
      async teardown() {
        await relay?.stop();
        await r.dropTables();
        await broker.after?.();
      },
    };
  };

  return {
    title: `Relay PostgreSQL → ${broker.title} vs its ceiling (${rows.toLocaleString('en')} rows per round)`,
    note: `The ceiling is the slower of the database work alone and the broker alone (both measured in this group), each with the machine to itself; the reference row runs both at once, as a relay must, on the same cores. The relay is started (leases taken) before the round and stopped after it; the round commits the rows in one transaction (untimed), wakes the relay and is timed until every row is published and marked. ${broker.note}`,
    requires: ['FERRY_PG_URL', broker.requires],
    ceiling: [0, 1],
    async setup() {
      ({ topic, transport } = await broker.open());
    },
    cases: [
      databaseAlone,
      brokerAlone,
      bothAtOnce,
      relayCase('audit trail off', silent, false),
      relayCase('audit trail on (info → /dev/null)', audited, true),
    ],
    async teardown() {
      await transport?.close();
      await broker.close();
      await r.close();
    },
  };
}

/** Kafka: 8 partitions, the raw producer idempotent with acks=all, like the transport. */
function kafkaBroker(): RelayBroker {
  const k = kafkaResources();
  let producer: RawProducer | undefined;
  return {
    title: 'Kafka',
    note: `Kafka: ${KAFKA_PARTITIONS} partitions, idempotent, acks=all.`,
    requires: 'FERRY_KAFKA_BROKERS',
    async open() {
      producer = rawProducer();
      return {
        topic: await k.topic('relay'),
        transport: kafka({ brokers: brokers(), partitions: KAFKA_PARTITIONS }),
      };
    },
    alone: {
      name: 'raw @platformatic/kafka producer, the same messages, ≤ 1 MB per request',
      async send(topic, byPartition) {
        // An idempotent producer keeps one request in flight (as the transport does): the
        // partitions' batches go out together, one request of at most 1 MB after another.
        const batches = byPartition.map((list) => chunks(list));
        let request: OutgoingMessage[] = [];
        let bytes = 0;
        const flush = async (): Promise<void> => {
          if (request.length === 0) return;
          await producer?.send({
            messages: request.map((m) => ({
              topic,
              key: m.key as string,
              value: m.body,
              headers: m.headers,
            })),
          });
          request = [];
          bytes = 0;
        };
        const rounds = Math.max(...batches.map((list) => list.length));
        for (let i = 0; i < rounds; i++) {
          for (const list of batches) {
            for (const message of list[i] ?? []) {
              const length = message.body.length + 200;
              if (bytes + length > 1_000_000) await flush();
              request.push(message);
              bytes += length;
            }
          }
        }
        await flush();
      },
    },
    async close() {
      await producer?.close();
      producer = undefined;
      await k.close();
    },
  };
}

/** RabbitMQ: a durable exchange and one bound durable queue; publisher confirms on both sides. */
function rabbitmqBroker(): RelayBroker {
  const url = process.env.FERRY_AMQP_URL ?? '';
  const prefix = `bench-${randomBytes(3).toString('hex')}.`;
  const window = 1000;
  let connection: amqp.ChannelModel | undefined;
  let exchange = '';
  let queue = '';
  const channel = async (): Promise<amqp.Channel> =>
    (connection ??= await amqp.connect(url)).createChannel();
  return {
    title: 'RabbitMQ',
    note: `RabbitMQ: persistent messages into a durable exchange with one bound durable queue (emptied after each round), publisher confirms with ${window} in flight on both sides.`,
    requires: 'FERRY_AMQP_URL',
    async open() {
      const topic = `relay-${randomBytes(4).toString('hex')}`;
      exchange = `${prefix}${topic}`;
      queue = `${exchange}:g`;
      const declare = await channel();
      await declare.assertExchange(exchange, 'topic', { durable: true });
      await declare.assertQueue(queue, { durable: true });
      await declare.bindQueue(queue, exchange, '#');
      await declare.close();
      return { topic, transport: rabbitmq({ url, prefix, maxInFlight: window }) };
    },
    alone: {
      name: `raw amqplib, confirms, window ${window}, the same messages`,
      async send(_topic, byPartition) {
        await rawPublish(connection as amqp.ChannelModel, exchange, byPartition.flat(), true);
      },
    },
    async after() {
      const purge = await channel();
      await purge.purgeQueue(queue);
      await purge.close();
    },
    async close() {
      if (!connection) return;
      const drop = await channel();
      await drop.deleteQueue(queue);
      await drop.deleteExchange(exchange);
      await drop.close();
      await connection.close();
      connection = undefined;
    },
  };
}

interface RelayProcess {
  /** Sends one command line and reads the one-line JSON answer (see bench/relay-child.ts). */
  ask<T>(command: string): Promise<T>;
  stop(): Promise<void>;
}
interface CpuReport {
  readonly cpu: number;
  readonly system: number;
  readonly at: number;
  readonly published: number;
  readonly partitions: number;
}

/** Starts bench/relay-child.ts on `table` and resolves once its relay has started. */
async function relayProcess(table: string, env: Record<string, string>): Promise<RelayProcess> {
  // BENCH_RELAY_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", profiles the relays.
  const nodeArgs = (process.env.BENCH_RELAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'bench/relay-child.ts'], {
    env: { ...process.env, OUTBOX_TABLE: table, ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  let waiting: (() => void) | undefined;
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    waiting?.();
  });
  child.on('exit', () => waiting?.());
  const next = async (): Promise<string> => {
    while (lines.length === 0) {
      if (child.exitCode !== null) throw new Error('relay process ended');
      await new Promise<void>((resolve) => (waiting = resolve));
    }
    return lines.shift() as string;
  };
  if ((await next()) !== 'ready') throw new Error('relay process did not start');
  return {
    async ask<T>(command: string): Promise<T> {
      child.stdin.write(`${command}\n`);
      return JSON.parse(await next()) as T;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.stdin.end('stop\n');
      await exited;
    },
  };
}

/** A relay process's CPU while writers commit 200 messages a second. */
function relayCpuGroup(): BenchGroup {
  const rate = size('BENCH_CPU_RATE', 200);
  const seconds = size('BENCH_CPU_SECONDS', 5);
  const warmSeconds = size('BENCH_CPU_WARM_SECONDS', 3);
  const r = resources();
  let topic = '';

  const relayCase = (label: string, notify: boolean, gatherMs = 0): BenchCase => {
    let outbox: TableOutbox | undefined;
    let relay: RelayProcess | undefined;
    const cpu = (): Promise<CpuReport> => (relay as RelayProcess).ask<CpuReport>('cpu');
    const commitOne = (client: pg.PoolClient, i: number): Promise<string> =>
      commitOrder(client, outbox as TableOutbox, topic, i);
    return {
      name: label,
      async setup() {
        outbox = await r.outbox({ notify });
        relay = await relayProcess(outbox.table, {
          NOTIFY: notify ? '1' : '0',
          GATHER_MS: String(gatherMs),
        });
        // Warm: a relay is a daemon, so the window measures one that has been running at this
        // load for a while (its code compiled), not one just started.
        const warm = await steadyWrites(r.pool(), rate, warmSeconds, 4, (client, i) =>
          commitOne(client, -1 - i),
        );
        while ((await cpu()).published < warm.committed.size) await sleep(50);
      },
      async round() {
        const before = await cpu();
        const written = await steadyWrites(r.pool(), rate, seconds, 4, commitOne);
        // The window ends when the relay has published everything written in it.
        let after = await cpu();
        while (after.published - before.published < written.committed.size) {
          await sleep(20);
          after = await cpu();
        }

        return {
          operations: after.published - before.published,
          seconds: (after.at - before.at) / 1000,
          metrics: {
            'relay CPU, % of a core':
              ((after.cpu - before.cpu) / 1000 / (after.at - before.at)) * 100,
            'of which in the kernel':
              ((after.system - before.system) / 1000 / (after.at - before.at)) * 100,
          },
        };
      },
      async teardown() {
        await relay?.stop();
        await r.dropTables();
      },
    };
  };

  return {
    title: `Relay CPU at a light load (${rate} msg/s for ${seconds} s, PostgreSQL → Kafka)`,
    note: "Four writers commit one message per transaction on a steady schedule; the relay runs in its own process and reports process.cpuUsage() over the window, from before the first commit to the last message published. Each round starts a relay process and runs it at the same load for a few seconds (untimed) before the window opens, so the figure is a running relay's, not one still compiling its code.",
    requires: ['FERRY_PG_URL', 'FERRY_KAFKA_BROKERS'],
    ratio: false,
    metrics: { 'relay CPU, % of a core': 'median', 'of which in the kernel': 'median' },
    async setup() {
      topic = r.topic('cpu');
    },
    cases: [
      relayCase('ferry relay, LISTEN/NOTIFY wake-ups', true),
      relayCase('ferry relay, polling (10 ms … 1 s)', false),
      relayCase('ferry relay, LISTEN/NOTIFY wake-ups, gatherMs 5', true, 5),
      relayCase('ferry relay, LISTEN/NOTIFY wake-ups, gatherMs 25', true, 25),
    ],
    teardown: () => r.close(),
  };
}

/** What enqueueing costs a writer, against the same transaction with a plain insert. */
function enqueueCostGroup(clients: number): BenchGroup {
  const durationMs = size('BENCH_WRITE_MS', 2000);
  const r = resources();
  let orders = '';
  let plain = '';
  const topic = Orders('bench.enqueue');
  const body = Buffer.from(JSON.stringify(payload(1)));
  const headers = JSON.stringify({ [HEADER.contentType]: 'application/json' });

  const writers = async (
    work: (client: pg.PoolClient, id: string, i: number) => Promise<void>,
  ): Promise<RoundResult> => {
    let commits = 0;
    const started = performance.now();
    const end = started + durationMs;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        const client = await r.pool().connect();
        try {
          while (performance.now() < end) {
            const id = newMessageId();
            await client.query('BEGIN');
            await client.query(`INSERT INTO "${orders}" VALUES ($1, $2, $3)`, [id, 42, 'order']);
            await work(client, id, commits);
            await client.query('COMMIT');
            commits++;
          }
        } finally {
          client.release();
        }
      }),
    );
    return { operations: commits, seconds: (performance.now() - started) / 1000 };
  };
  const fresh = async (): Promise<void> => {
    await r.pool().query(`TRUNCATE "${orders}", "${plain}"`);
  };

  // The reference writer: the same bytes as an outbox row, in a plain one-index table.
  // The outbox row's bytes, by a plain one-row INSERT into `table`.
  const insertRow = (client: pg.PoolClient, table: string, id: string) =>
    client.query(
      `INSERT INTO "${table}" (id, topic, key, partition, payload, headers, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [newMessageId(), topic.name, id, partitionFor(id, PARTITIONS), body, headers, new Date()],
    );
  const plainInsert = (label: string, notify: boolean): BenchCase => ({
    name: label,
    setup: fresh,
    round: () =>
      writers(async (client, id) => {
        await insertRow(client, plain, id);
        if (notify) await client.query(`SELECT pg_notify($1, '')`, [`${plain}_wake`]);
      }),
  });
  // `byHand`: the same row written into the same outbox table by a plain INSERT, so that what
  // the table's schema costs (its indexes, the seq) shows apart from what enqueue's code costs.
  const withOutbox = (label: string, notify: boolean, byHand = false): BenchCase => {
    let outbox: TableOutbox | undefined;
    return {
      name: label,
      async setup() {
        await fresh();
        outbox = await r.outbox({ notify });
      },
      round: () =>
        writers(async (client, id) => {
          if (byHand) await insertRow(client, (outbox as TableOutbox).table, id);
          else await outbox?.enqueue(client, topic, payload(1), { key: id });
        }),
      async teardown() {
        await r
          .pool()
          .query(
            `DROP TABLE IF EXISTS "${outbox?.table ?? ''}", "${outbox?.table ?? ''}_lease", "${outbox?.table ?? ''}_relay"`,
          );
      },
    };
  };

  return {
    title: `Enqueue cost, ${clients} client${clients === 1 ? '' : 's'} (PostgreSQL)`,
    note: `Each transaction is BEGIN; INSERT an order; (the case's insert); COMMIT, for ${durationMs / 1000} s. The baseline inserts the same bytes (id, topic, key, partition, payload, headers, created_at) with a plain one-row INSERT … VALUES into a table with one index.`,
    requires: 'FERRY_PG_URL',
    async setup() {
      orders = r.table('bench_orders');
      plain = r.table('bench_plain');
      await r
        .pool()
        .query(`CREATE TABLE "${orders}" (id text PRIMARY KEY, total integer, body text)`);
      await r.pool().query(
        `CREATE TABLE "${plain}" (id text PRIMARY KEY, topic text NOT NULL, key text, partition integer NOT NULL,
           payload bytea NOT NULL, headers jsonb NOT NULL, created_at timestamptz NOT NULL)`,
      );
    },
    cases: [
      plainInsert('business tx + plain one-row INSERT (baseline)', false),
      withOutbox('business tx + outbox.enqueue', false),
      withOutbox('business tx + outbox.enqueue, NOTIFY on', true),
      withOutbox(
        'business tx + the same row by a plain INSERT into an outbox table (reference: what the table costs)',
        false,
        true,
      ),
      plainInsert(
        'business tx + plain one-row INSERT + pg_notify (what NOTIFY alone costs; reference)',
        true,
      ),
      { name: 'business tx alone (reference)', setup: fresh, round: () => writers(async () => {}) },
    ],
    teardown: () => r.close(),
  };
}

/**
 * Relay processes (as they are deployed) on one outbox, publishing to a transport that
 * confirms each batch after a fixed delay, as a broker across a network would.
 */
function scaleOutGroup(): BenchGroup {
  const rows = size('BENCH_SCALE_ROWS', 20_000);
  const delayMs = size('BENCH_DELAY_MS', 5);
  const r = resources();
  const scaleCase = (count: number): BenchCase => {
    let outbox: TableOutbox | undefined;
    let relays: RelayProcess[] = [];
    const reports = (): Promise<CpuReport[]> =>
      Promise.all(relays.map((relay) => relay.ask<CpuReport>('cpu')));
    return {
      name: `${count} relay process${count === 1 ? '' : 'es'}`,
      async setup() {
        outbox = await r.outbox();
        const table = outbox.table;
        relays = await Promise.all(
          Array.from({ length: count }, (_, i) =>
            relayProcess(table, {
              TRANSPORT: 'delayed',
              DELAY_MS: String(delayMs),
              OWNER: `scale-${i}-${randomBytes(2).toString('hex')}`,
              LEASE_MS: '3000',
            }),
          ),
        );
        // Balanced: every partition held, none by more than its share.
        const share = Math.ceil(PARTITIONS / count);
        const deadline = Date.now() + 60_000;
        for (;;) {
          const held = (await reports()).map((report) => report.partitions);
          if (held.reduce((a, b) => a + b, 0) === PARTITIONS && held.every((n) => n <= share)) {
            break;
          }
          if (Date.now() > deadline) throw new Error('relays did not balance their leases');
          await sleep(50);
        }
      },
      async round() {
        await enqueueAll(r.pool(), outbox as PostgresOutbox, 'bench.scale', rows);
        const cpuBefore = await reports();
        const started = performance.now();
        await Promise.all(relays.map((relay) => relay.ask('wake')));
        const published = async (): Promise<number> =>
          (await reports()).reduce((sum, report) => sum + report.published, 0);
        const deadline = Date.now() + 120_000;
        while ((await published()) < rows) {
          if (Date.now() > deadline) throw new Error('benchmark stalled');
          await sleep(2);
        }
        const seconds = (performance.now() - started) / 1000;
        const cpuAfter = await reports();
        const cpuMs =
          cpuAfter.reduce((sum, report) => sum + report.cpu, 0) / 1000 -
          cpuBefore.reduce((sum, report) => sum + report.cpu, 0) / 1000;
        // Untimed: every publish of every process, by message id.
        const seen = new Map<string, number>();
        for (const relay of relays) {
          for (const id of await relay.ask<string[]>('ids')) seen.set(id, (seen.get(id) ?? 0) + 1);
        }
        let duplicates = 0;
        for (const times of seen.values()) duplicates += times - 1;
        return {
          operations: rows,
          seconds,
          metrics: {
            'relay CPU, % of a core': (cpuMs / 1000 / seconds) * 100,
            'duplicate publishes': duplicates,
          },
        };
      },
      async teardown() {
        await Promise.all(relays.map((relay) => relay.stop()));
        relays = [];
        await r.dropTables();
      },
    };
  };
  return {
    title: `Relay scale-out to a remote-like broker (${delayMs} ms per publish batch, ${rows.toLocaleString('en')} rows)`,
    note: `1, 2 and 4 relay processes share one PostgreSQL outbox of ${PARTITIONS} partitions; each publishes to a transport (memory) wrapped to confirm each batch after ${delayMs} ms, as a broker across a network would. The processes start, take their leases and balance before the round; the round commits the rows (untimed), wakes the relays and is timed until all are published and marked. Duplicate publishes are counted by message id across processes, over all rounds.`,
    requires: 'FERRY_PG_URL',
    metrics: { 'relay CPU, % of a core': 'median', 'duplicate publishes': 'sum' },
    cases: [scaleCase(1), scaleCase(2), scaleCase(4)],
    teardown: () => r.close(),
  };
}

/** Commit → handler latency at a steady rate, PostgreSQL outbox → Kafka → bus consumer. */
function latencyGroup(rate: number): BenchGroup {
  const seconds = size('BENCH_LATENCY_SECONDS', 3);
  const warmSeconds = size('BENCH_LATENCY_WARM_SECONDS', 2);
  // Enough writers that the offered rate is reached when one commit takes up to ~25 ms.
  const writerCount = Math.max(8, Math.ceil(rate / 40));
  const r = resources();
  let relayTransport: Transport | undefined;

  const latencyCase = (label: string, notify: boolean): BenchCase => {
    let outbox: PostgresOutbox | undefined;
    let relay: Relay | undefined;
    let bus: Bus | undefined;
    let subscription: Subscription | undefined;
    let topic = '';
    const received = new Map<string, number>();
    const published = new Map<string, number>();
    const commit = (client: pg.PoolClient, i: number): Promise<string> =>
      commitOrder(client, outbox as PostgresOutbox, topic, i);
    return {
      name: label,
      async setup() {
        received.clear();
        published.clear();
        topic = r.topic('latency');
        outbox = await r.outbox({ notify });
        relay = outbox.relay({
          transport: relayTransport as Transport,
          logger: silent(),
          retention: 'keep',
          hooks: {
            afterPublish(_partition, ids) {
              const now = performance.now();
              for (const id of ids) published.set(id, now);
            },
          },
        });
        await relay.start();
        bus = createBus({
          transport: kafka({ brokers: brokers(), partitions: KAFKA_PARTITIONS, maxWaitMs: 500 }),
          logger: silent(),
        });
        subscription = await bus.subscribe(
          Orders(topic),
          { group: unique('latency'), from: 'earliest' },
          async (message) => {
            if (!received.has(message.id)) received.set(message.id, performance.now());
          },
        );
        // Warm: the path has carried this load for a while (its code compiled, the consumer
        // fetching) before the window opens, as a running service's would have.
        const warm = await steadyWrites(r.pool(), rate, warmSeconds, writerCount, (client, i) =>
          commit(client, -1 - i),
        );
        await until(() => [...warm.committed.keys()].every((id) => received.has(id)), 60_000);
      },
      async round() {
        const total = rate * seconds;
        const { committed, seconds: window } = await steadyWrites(
          r.pool(),
          rate,
          seconds,
          writerCount,
          commit,
        );
        await until(() => [...committed.keys()].every((id) => received.has(id)), 30_000);
        // A message can reach the handler before the writer has read COMMIT's reply: 0 ms.
        const latencies = [...committed].map(([id, at]) =>
          Math.max(0, (received.get(id) ?? 0) - at),
        );
        // Where the time goes: commit → the broker's confirm (the relay), and the rest.
        const relayed = [...committed].map(([id, at]) =>
          Math.max(0, (published.get(id) ?? 0) - at),
        );
        return {
          operations: total,
          seconds: window,
          metrics: {
            'p50 ms': median(latencies),
            'p99 ms': percentile(latencies, 99),
            'p99 ms, commit → confirmed': percentile(relayed, 99),
          },
        };
      },
      async teardown() {
        await subscription?.close();
        await bus?.close();
        await relay?.stop();
        await r.dropTables();
      },
    };
  };
  return {
    title: `Commit → handler latency at ${rate} msg/s (PostgreSQL outbox → Kafka → bus)`,
    note: `${writerCount} writers commit one message per transaction on a steady schedule for ${seconds} s, after ${warmSeconds} s of the same load (untimed) through a relay and a consumer just started; one relay and a bus consumer (group) on Kafka, which records when each message reaches its handler, in the writers' process. msg/s is the offered rate achieved.`,
    requires: ['FERRY_PG_URL', 'FERRY_KAFKA_BROKERS'],
    ratio: false,
    metrics: { 'p50 ms': 'median', 'p99 ms': 'median', 'p99 ms, commit → confirmed': 'median' },
    async setup() {
      relayTransport = kafka({ brokers: brokers(), partitions: KAFKA_PARTITIONS });
    },
    cases: [
      latencyCase('relay polling (10 ms … 1 s)', false),
      latencyCase('relay with LISTEN/NOTIFY', true),
    ],
    async teardown() {
      await relayTransport?.close();
      await r.close();
    },
  };
}

/** The inbox consumer against a plain consumer making the same two inserts in one tx. */
function inboxGroup(): BenchGroup {
  const messages = size('BENCH_INBOX_MESSAGES', 5000);
  const r = resources();
  const broker = createMemoryBroker();
  let bus: Bus | undefined;
  let effects = '';
  let processed = '';
  const topic = Orders('bench.inbox');

  const timed = async (
    subscribe: (seen: () => void) => Promise<Subscription | undefined>,
  ): Promise<RoundResult> => {
    let count = 0;
    let first = 0;
    let finish!: (result: RoundResult) => void;
    const done = new Promise<RoundResult>((resolve) => (finish = resolve));
    const subscription = await subscribe(() => {
      if (count === 0) first = performance.now();
      if (++count === messages) {
        finish({ operations: messages - 1, seconds: (performance.now() - first) / 1000 });
      }
    });
    const result = await done;
    await subscription?.close();
    return result;
  };
  const truncate = async (): Promise<void> => {
    await r.pool().query(`TRUNCATE "${effects}", "${processed}"`);
  };
  const effect = (message: { id: string; payload: Order }) => [
    message.id,
    message.payload.orderId,
    message.payload.amount,
  ];

  return {
    title: `Inbox consumer vs a plain consumer (${messages.toLocaleString('en')} messages, PostgreSQL)`,
    note: 'Messages come from the memory transport (a new group per round, from the earliest); each handler writes one effect row. The plain consumer inserts the effect and a (group, message id) row into a table shaped like the inbox, in one transaction of its own.',
    requires: 'FERRY_PG_URL',
    async setup() {
      effects = r.table('bench_effects');
      processed = r.table('bench_processed');
      await r
        .pool()
        .query(`CREATE TABLE "${effects}" (id text PRIMARY KEY, order_id text, amount integer)`);
      await r.pool().query(
        `CREATE TABLE "${processed}" (consumer_group text NOT NULL, message_id text NOT NULL,
           processed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer_group, message_id));
         CREATE INDEX ON "${processed}" (processed_at)`,
      );
      bus = createBus({ transport: memory({ broker }), logger: silent() });
      await bus.publishMany(topic, items(messages));
    },
    cases: [
      {
        name: 'plain consumer: BEGIN; INSERT effect; INSERT processed; COMMIT',
        setup: truncate,
        round: () =>
          timed(async (seen) => {
            const group = unique('plain');
            return bus?.subscribe(topic, { group, from: 'earliest' }, async (message) => {
              const client = await r.pool().connect();
              try {
                await client.query('BEGIN');
                await client.query(`INSERT INTO "${effects}" VALUES ($1, $2, $3)`, effect(message));
                await client.query(
                  `INSERT INTO "${processed}" (consumer_group, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
                  [group, message.id],
                );
                await client.query('COMMIT');
              } finally {
                client.release();
              }
              seen();
            });
          }),
      },
      {
        name: 'ferry inbox consumer (postgresInbox), effect through its tx',
        setup: truncate,
        round: () =>
          timed(async (seen) => {
            const inbox = postgresInbox({ pool: r.pool(), table: processed });
            return bus?.subscribe(
              topic,
              { group: unique('inbox'), from: 'earliest', inbox },
              async (message, { tx }) => {
                await tx.query(`INSERT INTO "${effects}" VALUES ($1, $2, $3)`, effect(message));
                seen();
              },
            );
          }),
      },
    ],
    async teardown() {
      await bus?.close();
      await r.close();
    },
  };
}

export function outboxPostgresGroups(): BenchGroup[] {
  return [
    relayCeilingGroup(kafkaBroker()),
    relayCeilingGroup(rabbitmqBroker()),
    relayCpuGroup(),
    enqueueCostGroup(1),
    enqueueCostGroup(16),
    scaleOutGroup(),
    latencyGroup(200),
    latencyGroup(1000),
    inboxGroup(),
  ];
}
