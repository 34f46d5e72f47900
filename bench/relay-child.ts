// One relay process for the benchmarks: relays OUTBOX_TABLE to Kafka or, with
// TRANSPORT=delayed, to an in-process memory transport that confirms each publish batch after
// DELAY_MS (as a broker across a network would). Says `ready` once started, then answers one
// line per line on stdin:
//   cpu   -> {"cpu": µs of process CPU, "system": µs of it in the kernel, "at": ms,
//             "published": n, "partitions": n held}
//   wake  -> {"woken": true} after waking the relay
//   ids   -> the ids of every message published so far, one entry per publish (JSON array)
//   stop  -> stops the relay and exits
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { createLogger, HEADER, type Transport } from '../src/index.js';
import { kafka } from '../src/transports/kafka/index.js';
import { createMemoryBroker, memory } from '../src/transports/memory/index.js';
import { postgresOutbox } from './common.js';
import { sleep } from './harness.js';

const pool = new pg.Pool({ connectionString: process.env.FERRY_PG_URL, max: 10 });
const outbox = postgresOutbox({
  pool,
  table: process.env.OUTBOX_TABLE ?? '',
  notify: process.env.NOTIFY === '1',
});
const published: string[] = [];

/** A transport that confirms each publish batch after a fixed delay, as a remote broker. */
function delayed(inner: Transport, delayMs: number): Transport {
  return {
    ...inner,
    name: `${inner.name}+${delayMs}ms`,
    async publish(messages) {
      await sleep(delayMs);
      await inner.publish(messages);
      for (const message of messages) published.push(message.headers[HEADER.id] ?? '');
    },
  };
}

const transport =
  process.env.TRANSPORT === 'delayed'
    ? delayed(memory({ broker: createMemoryBroker() }), Number(process.env.DELAY_MS ?? 5))
    : kafka({ brokers: process.env.FERRY_KAFKA_BROKERS ?? '', partitions: 8 });
const relay = outbox.relay({
  transport,
  ...(process.env.OWNER ? { owner: process.env.OWNER } : {}),
  ...(process.env.LEASE_MS ? { leaseMs: Number(process.env.LEASE_MS) } : {}),
  ...(process.env.GATHER_MS ? { gatherMs: Number(process.env.GATHER_MS) } : {}),
  retention: 'keep',
  logger: createLogger({ level: 'silent' }),
});
await relay.start();
process.stdout.write('ready\n');
const say = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'cpu') {
    const { user, system } = process.cpuUsage();
    const stats = relay.stats();
    say({
      cpu: user + system,
      system,
      at: performance.now(),
      published: stats.published,
      partitions: stats.partitions.length,
    });
  } else if (line === 'wake') {
    relay.wake();
    say({ woken: true });
  } else if (line === 'ids') say(published);
  else if (line === 'stop') break;
}
await relay.stop();
await outbox.store.close();
await transport.close();
await pool.end();
process.exit(0);
