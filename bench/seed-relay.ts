// The multi-relay scheme of the source requirements, as a reference to measure ours against:
// every relay polls the unpublished rows, takes a Redis lock per message
// (`SET outbox-lock:<id> NX PX 10000`), publishes it, marks it published and deletes the lock.
// Its race: relays A and B read the same list; A locks, publishes, marks and unlocks message
// m; B then locks m too and publishes it again. Run as a process, like
// test/fixtures/pg-relay.ts (same environment variables, same sink transport).
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import pg from 'pg';
import { HEADER, type Headers } from '../src/index.js';
import { buildOutgoing } from './common.js';
import { sinkTransport } from '../test/fixtures/pg-sink.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is required`);
  return value;
};

const name = env('RELAY_NAME');
const table = env('OUTBOX_TABLE');
const pool = new pg.Pool({ connectionString: env('FERRY_PG_URL'), max: 4 });
const redis = new Redis(process.env.FERRY_REDIS_URL ?? 'redis://127.0.0.1:6379');
const transport = sinkTransport(pool, env('SINK_TABLE'), `${name}:${process.pid}`);
const pollMs = Number(process.env.POLL_MAX_MS ?? 100);
let running = true;

interface Row {
  id: string;
  topic: string;
  key: string | null;
  payload: Buffer;
  headers: Headers;
  created_at: Date;
}

async function relayOnce(): Promise<number> {
  const { rows } = await pool.query<Row>(
    `SELECT id, topic, key, payload, headers, created_at FROM "${table}"
     WHERE status = 'pending' ORDER BY seq LIMIT 100`,
  );
  for (const row of rows) {
    if (!running) break;
    const lock = `outbox-lock:${row.id}`;
    if ((await redis.set(lock, name, 'PX', 10_000, 'NX')) !== 'OK') continue;
    try {
      await transport.publish([
        buildOutgoing({
          id: row.id,
          topic: row.topic,
          key: row.key ?? undefined,
          body: row.payload,
          contentType: row.headers[HEADER.contentType] ?? 'application/json',
          createdAt: row.created_at,
          headers: row.headers,
        }),
      ]);
      await pool.query(
        `UPDATE "${table}" SET status = 'published', published_at = now() WHERE id = $1`,
        [row.id],
      );
    } finally {
      await redis.del(lock);
    }
  }
  return rows.length;
}

if (process.env.WAIT_FOR_GO === '1') {
  await pool.query('SELECT 1');
  await redis.ping();
  process.stdout.write('loaded\n');
  const lines = createInterface({ input: process.stdin });
  await new Promise<void>((resolve) => lines.on('line', (line) => line === 'go' && resolve()));
}
process.stdout.write('ready\n');

process.on('SIGTERM', () => (running = false));
while (running) {
  const found = await relayOnce();
  if (found === 0) await new Promise((resolve) => setTimeout(resolve, pollMs));
}
await pool.end();
redis.disconnect();
process.exit(0);
