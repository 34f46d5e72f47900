import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createBus, createLogger, defineTopic, type Transport } from '../src/index.js';
import { postgresOutbox, type PostgresOutbox } from '../src/stores/postgres.js';
import { kafka } from '../src/transports/kafka/transport.js';
import type { BenchCase, BenchGroup } from './harness.js';

const MESSAGES = 5000;
const BATCH = 500;

/**
 * Relay PostgreSQL → Kafka: ferry's relay draining an outbox of 5,000 rows (filled before
 * each round, untimed) against its ceiling, the Kafka transport publishing the same messages
 * in batches of 500 with the same producer settings (idempotent, acks=all).
 */
export function outboxKafkaGroups(): BenchGroup[] {
  const silent = createLogger({ level: 'silent' });
  const run = randomBytes(3).toString('hex');
  const topic = defineTopic<{ orderId: string; amount: number }>(`bench.relay.${run}`);
  const items = Array.from({ length: MESSAGES }, (_, i) => ({
    key: `customer-${i % 200}`,
    payload: { orderId: `o-${i}`, amount: i % 997 },
  }));
  let pool: pg.Pool;
  let transport: Transport;
  let outbox: PostgresOutbox;
  let round = 0;
  const tables: string[] = [];

  const ceiling: BenchCase = {
    name: 'ceiling: kafka transport alone, batches of 500',
    async round() {
      const bus = createBus({ transport, logger: silent });
      for (let i = 0; i < MESSAGES; i += BATCH)
        await bus.publishMany(topic, items.slice(i, i + BATCH));
      return MESSAGES;
    },
  };

  const relay: BenchCase = {
    name: 'ferry relay, PostgreSQL outbox → Kafka (1 relay, 16 partitions)',
    async setup() {
      const table = `bench_relay_${run}_${round++}`;
      tables.push(table);
      outbox = postgresOutbox({ pool, table, partitions: 16 });
      await outbox.migrate();
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await outbox.enqueueMany(client, topic, items);
        await client.query('COMMIT');
      } finally {
        client.release();
      }
    },
    async round() {
      const running = outbox.relay({
        transport,
        logger: silent,
        pollMinMs: 1,
        pollMaxMs: 5,
        retention: 'keep',
      });
      await running.start();
      while (running.stats().published < MESSAGES)
        await new Promise((resolve) => setTimeout(resolve, 1));
      await running.stop();
      return running.stats().published;
    },
  };

  return [
    {
      title: `Outbox relay, PostgreSQL outbox → Kafka (${MESSAGES.toLocaleString('en')} messages)`,
      note: "Ratio against the transport publishing the same messages alone: what the relay's reads, leases and fenced marks cost.",
      requires: ['FERRY_PG_URL', 'FERRY_KAFKA_BROKERS'],
      async setup() {
        pool = new pg.Pool({ connectionString: process.env.FERRY_PG_URL, max: 8 });
        transport = kafka({ brokers: process.env.FERRY_KAFKA_BROKERS ?? '', partitions: 8 });
      },
      cases: [ceiling, relay],
      async teardown() {
        await transport.close();
        for (const table of tables) {
          await pool.query(
            `DROP TABLE IF EXISTS ${table}, ${table}_lease, ${table}_relay, ${table}_schema`,
          );
        }
        await pool.end();
      },
    },
  ];
}
