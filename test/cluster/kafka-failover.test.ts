// A three-broker Kafka cluster (scripts/kafka/cluster.sh) with replication 3 and
// min.insync.replicas 2: the relay publishes an outbox on PostgreSQL with acks=all while a
// consumer group reads, the leader of a partition is SIGKILLed mid-stream and restarted.
// Nothing may be lost, each key's messages must arrive in order (redeliveries allowed and
// counted), and the group must go on. Run by `npm run test:cluster`, not by `npm test`.
import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Admin } from '@platformatic/kafka';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, defineTopic, type Delivery, type Subscription } from '../../src/index.js';
import { postgresOutbox } from '../../src/postgres.js';
import { kafka, type KafkaTransportOptions } from '../../src/transports/kafka/index.js';
import { requiredProgram } from '../helpers/processes.js';
import { serviceUrl } from '../helpers/services.js';
import { delay, uniqueName, waitFor } from '../helpers/wait.js';

const pgUrl = serviceUrl('FERRY_PG_URL');
const java = requiredProgram('java');
const script = fileURLToPath(new URL('../../scripts/kafka/cluster.sh', import.meta.url));
const silent = createLogger({ level: 'silent' });

/** Runs scripts/kafka/cluster.sh; rejects with its stderr. */
function cluster(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', [script, ...args], { timeout: 240_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`cluster.sh ${args.join(' ')}: ${stderr}`, { cause: error }));
      else resolve(stdout);
    });
  });
}

const KEYS = 12;
const TOTAL = 3000;
const PARTITIONS = 3;

interface Event {
  readonly key: string;
  readonly seq: number;
}

describe.skipIf(pgUrl === undefined || java === undefined)('kafka three-broker cluster', () => {
  let brokers: string[] = [];
  let admin: Admin | undefined;
  const cleanup: Array<() => unknown> = [];

  /** Cluster metadata, fresh from a broker (the client's cache would hide a failover). */
  const metadata = (topics: string[]) => (admin as Admin).metadata({ topics, forceUpdate: true });

  beforeAll(async () => {
    await cluster('start');
    brokers = (await cluster('brokers')).trim().split(',');
    admin = new Admin({
      clientId: 'ferry-failover-test',
      bootstrapBrokers: brokers,
      timeout: 5000,
      connectTimeout: 2000,
      retries: 0,
    });
    await waitFor(
      'three brokers in the cluster metadata',
      async () => (await metadata([]).catch(() => undefined))?.brokers.size === 3,
      120_000,
    );
  }, 300_000);

  // Whatever happened above, every JVM the script started is stopped: by the last hook to
  // run (its own timeout, so a hanging client cannot keep it from running), and should the
  // worker exit before that, on the way out.
  const stopCluster = (): void => {
    spawnSync('bash', [script, 'stop'], { stdio: 'ignore', timeout: 60_000 });
  };
  process.once('exit', stopCluster);
  afterAll(async () => {
    await cluster('stop');
    process.off('exit', stopCluster);
  }, 120_000);

  afterAll(async () => {
    for (const step of cleanup.splice(0).reverse()) {
      // A client stuck on a dead broker must not hold up the others.
      await Promise.race([Promise.resolve().then(step), delay(10_000)]).catch(() => undefined);
    }
    await admin?.close().catch(() => undefined);
  }, 120_000);

  it('loses nothing and keeps per-key order when a partition leader is killed and restarted', async () => {
    const started = Date.now();
    const topicName = uniqueName('failover');
    const Topic = defineTopic<Event>(topicName);
    const group = uniqueName('g');

    await (admin as Admin).createTopics({
      topics: [topicName],
      partitions: PARTITIONS,
      replicas: 3,
      configs: [{ name: 'min.insync.replicas', value: '2' }],
    });
    const fullyReplicated = async (): Promise<boolean> => {
      const partitions = (await metadata([topicName]).catch(() => undefined))?.topics.get(
        topicName,
      )?.partitions;
      return (
        partitions?.length === PARTITIONS &&
        partitions.every((p) => p.leader >= 0 && p.isr.length === 3)
      );
    };
    await waitFor('every partition led, three replicas in sync', fullyReplicated, 60_000);

    // Errors the clients recovered from by themselves: shown if the test fails.
    const recovered: string[] = [];
    const options: KafkaTransportOptions = {
      onError: (error) => recovered.push(`${error.code}: ${error.message}`),
      brokers,
      partitions: PARTITIONS,
      replicationFactor: 3,
      sessionTimeoutMs: 6000,
      heartbeatIntervalMs: 500,
      rebalanceTimeoutMs: 15_000,
      maxWaitMs: 200,
    };

    const pool = new pg.Pool({ connectionString: pgUrl, max: 4 });
    pool.on('error', () => undefined);
    cleanup.push(() => pool.end());
    const table = uniqueName('outbox_failover');
    const outbox = postgresOutbox({ pool, table, partitions: 4 });
    await outbox.migrate();
    cleanup.push(() =>
      pool.query(`DROP TABLE IF EXISTS "${table}", "${table}_lease", "${table}_relay" CASCADE`),
    );

    // Consumers: two members of one group, each on its own transport (its own connections).
    const deliveries: Array<Event & { readonly member: number; readonly at: number }> = [];
    const subscribeMember = async (member: number): Promise<Subscription> => {
      const transport = kafka({ ...options, clientId: `ferry-failover-c${member}` });
      cleanup.push(() => transport.close({ timeoutMs: 2000 }));
      const subscription = await transport.subscribe(
        { topic: topicName, group, concurrency: 8 },
        async (delivery: Delivery) => {
          const event = JSON.parse(delivery.body.toString()) as Event;
          deliveries.push({ ...event, member, at: Date.now() });
        },
      );
      cleanup.push(() => subscription.close({ timeoutMs: 2000 }));
      return subscription;
    };
    await subscribeMember(1);
    await subscribeMember(2);

    const producer = kafka({ ...options, clientId: 'ferry-failover-relay' });
    cleanup.push(() => producer.close({ timeoutMs: 2000 }));
    const relay = outbox.relay({
      transport: producer,
      leaseMs: 5000,
      pollMaxMs: 50,
      retention: 'keep',
      backoff: { initialDelayMs: 200, maxDelayMs: 2000 },
      logger: silent,
    });
    await relay.start();
    cleanup.push(() => relay.stop({ timeoutMs: 5000 }));

    // Writers: small transactions, each key's sequence numbers in commit order.
    const next = new Map<string, number>();
    let enqueued = 0;
    const write = async (count: number): Promise<void> => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        for (let i = 0; i < count; i++) {
          const key = `k${(enqueued + i) % KEYS}`;
          const seq = next.get(key) ?? 0;
          next.set(key, seq + 1);
          await outbox.enqueue(client, Topic, { key, seq }, { key });
        }
        await client.query('COMMIT');
        enqueued += count;
      } finally {
        client.release();
      }
    };
    // About 150 messages a second: the stream runs through the kill and the failover.
    let stopWriting = false;
    const writer = (async () => {
      while (enqueued < TOTAL && !stopWriting) {
        await write(Math.min(10, TOTAL - enqueued));
        await delay(50);
      }
    })();
    // On failure the writer stops before the outbox tables are dropped.
    cleanup.push(() => {
      stopWriting = true;
      return writer.catch(() => undefined);
    });

    // Mid-stream: kill the broker leading partition 0 (SIGKILL, no clean shutdown).
    await waitFor(
      'the first third of the messages at the consumers',
      () => deliveries.length >= TOTAL / 3,
      180_000,
    );
    const before = (await metadata([topicName])).topics.get(topicName)?.partitions[0];
    const victim = before?.leader ?? -1;
    expect(victim).toBeGreaterThan(0);
    const killedAt = Date.now();
    const deliveredAtKill = deliveries.length;
    await cluster('kill', String(victim));

    await waitFor(
      `a new leader for partition 0 (was broker ${victim})`,
      async () => {
        const now = (await metadata([topicName]).catch(() => undefined))?.topics.get(topicName)
          ?.partitions[0];
        return now !== undefined && now.leader >= 0 && now.leader !== victim;
      },
      60_000,
    );
    const failoverMs = Date.now() - killedAt;
    await waitFor(
      'messages delivered after the kill',
      () => deliveries.length > deliveredAtKill + 100,
      60_000,
    );

    await cluster('start-node', String(victim));
    await waitFor(`broker ${victim} back in sync on every partition`, fullyReplicated, 120_000);

    await writer;
    expect(enqueued).toBe(TOTAL);
    const unique = (): number => new Set(deliveries.map((d) => `${d.key}:${d.seq}`)).size;
    await waitFor('every message at the consumers', () => unique() === TOTAL, 120_000).catch(
      async (error: unknown) => {
        const seen = new Set(deliveries.map((d) => `${d.key}:${d.seq}`));
        const missing: string[] = [];
        for (const [key, count] of next) {
          for (let seq = 0; seq < count; seq++)
            if (!seen.has(`${key}:${seq}`)) missing.push(`${key}:${seq}`);
        }
        const lag = await producer.lag?.(topicName, group).catch(String);
        throw new Error(
          `${String(error)}: ${missing.length} missing, first ${missing.slice(0, 10).join(' ')}; ` +
            `relay ${JSON.stringify(relay.stats())}; lag ${JSON.stringify(lag)}; ` +
            `errors ${recovered.length}, last ${recovered.slice(-5).join(' | ')}`,
          { cause: error },
        );
      },
    );
    await waitFor(
      'the relay to mark every row published',
      () => relay.stats().published >= TOTAL,
      60_000,
    );

    // Per key: a sequence number seen for the first time is the next one; anything else must
    // be a redelivery of one already seen.
    const highest = new Map<string, number>();
    const disorder: string[] = [];
    let duplicates = 0;
    for (const d of deliveries) {
      const top = highest.get(d.key) ?? -1;
      if (d.seq === top + 1) highest.set(d.key, d.seq);
      else if (d.seq <= top) duplicates++;
      else disorder.push(`${d.key}: ${d.seq} after ${top}`);
    }
    const lost = TOTAL - unique();
    const afterKill = deliveries.slice(deliveredAtKill);
    console.info(
      `kafka failover: ${TOTAL} messages, ${deliveries.length} deliveries, ${duplicates} duplicates, ${lost} lost; ` +
        `broker ${victim} killed, new leader after ${failoverMs} ms; ` +
        `relay ${JSON.stringify({ ...relay.stats(), partitions: undefined })}; took ${Date.now() - started} ms`,
    );
    expect(disorder).toEqual([]);
    expect(lost).toBe(0);
    // The group went on after the kill, both members included once it had settled.
    expect(new Set(afterKill.map((d) => d.member))).toEqual(new Set([1, 2]));
    await waitFor(
      'the group to commit up to the end of every partition',
      async () => (await producer.lag?.(topicName, group))?.every((p) => p.lag === 0) ?? false,
      30_000,
    );
  }, 600_000);
});
