// One relay process for the CPU benchmark: relays OUTBOX_TABLE to Kafka topic TOPIC and,
// for each line `cpu` on stdin, prints its process CPU time (µs) and wall clock (ms).
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { createLogger } from '../src/index.js';
import { postgresOutbox } from './common.js';
import { kafka } from '../src/transports/kafka/index.js';

const pool = new pg.Pool({ connectionString: process.env.FERRY_PG_URL, max: 10 });
const outbox = postgresOutbox({
  pool,
  table: process.env.OUTBOX_TABLE ?? '',
  notify: process.env.NOTIFY === '1',
});
const transport = kafka({ brokers: process.env.FERRY_KAFKA_BROKERS ?? '', partitions: 8 });
const relay = outbox.relay({
  transport,
  retention: 'keep',
  logger: createLogger({ level: 'silent' }),
});
await relay.start();
process.stdout.write('ready\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'cpu') {
    const { user, system } = process.cpuUsage();
    process.stdout.write(
      `${JSON.stringify({ cpu: user + system, at: performance.now(), published: relay.stats().published })}\n`,
    );
  } else if (line === 'stop') break;
}
await relay.stop();
await outbox.store.close();
await transport.close();
await pool.end();
process.exit(0);
