import mysql from 'mysql2/promise';
import { afterAll, describe, expect, it } from 'vitest';
import { createBus, createLogger, defineTopic } from '../../src/index.js';
import { mysqlOutbox } from '../../src/mysql.js';
import { createMemoryBroker, memory } from '../../src/transports/memory/index.js';
import { serviceUrl } from '../helpers/services.js';
import { uniqueName, waitFor } from '../helpers/wait.js';
import { inMysqlTransaction } from '../helpers/sql.js';

const url = serviceUrl('FERRY_MYSQL_URL');

const RELAYS = 4;
const KEYS = 100;
const PER_KEY = 50;
const TOTAL = KEYS * PER_KEY;
const Topic = defineTopic<{ n: number }>('mysql.scale');

// Four relays, each with its own store and connection pool (as separate processes would
// have), share one MariaDB/MySQL outbox while four writers commit.
describe.skipIf(url === undefined)('relays sharing one MySQL/MariaDB outbox', () => {
  const pool = mysql.createPool({ uri: url as string, connectionLimit: 8 });
  const table = uniqueName('myscale');

  afterAll(async () => {
    for (const t of [table, `${table}_lease`, `${table}_relay`]) {
      await pool.query(`DROP TABLE IF EXISTS \`${t}\``);
    }
    await pool.end();
  });

  it('publishes every message once, in order per key', async () => {
    const outbox = mysqlOutbox({ pool, table, partitions: 16 });
    await outbox.migrate();

    const broker = createMemoryBroker({ partitions: 16 });
    const consumer = createBus({ transport: memory({ broker }) });
    const seen: Array<{ id: string; key: string; n: number }> = [];
    await consumer.subscribe(Topic, { group: 'check', from: 'earliest' }, async (message) => {
      seen.push({ id: message.id, key: message.key ?? '', n: message.payload.n });
    });

    const logger = createLogger({ level: 'silent' });
    const relayOutboxes = Array.from({ length: RELAYS }, () =>
      mysqlOutbox({ url: url as string, table, poolSize: 4 }),
    );
    const running = relayOutboxes.map((relayOutbox) =>
      relayOutbox.relay({
        transport: memory({ broker }),
        logger,
        leaseMs: 3000,
        pollMaxMs: 100,
        retention: 'keep',
      }),
    );
    await Promise.all(running.map((relay) => relay.start()));

    const perWriter = KEYS / 4;
    await Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        const keys = Array.from({ length: perWriter }, (_, k) => `key-${w * perWriter + k}`);
        for (let n = 0; n < PER_KEY; n++) {
          await inMysqlTransaction(pool, (conn) =>
            outbox.enqueueMany(
              conn,
              Topic,
              keys.map((key) => ({ key, payload: { n } })),
            ),
          );
        }
      }),
    );
    await waitFor('every message consumed', () => seen.length >= TOTAL, 40_000);
    await Promise.all(running.map((relay) => relay.stop()));
    const stats = running.map((relay) => relay.stats());
    await consumer.close();
    await Promise.all(relayOutboxes.map((relayOutbox) => relayOutbox.store.close()));
    await outbox.store.close();

    const ids = new Set(seen.map((s) => s.id));
    expect(ids.size).toBe(TOTAL);
    expect(seen.length).toBe(TOTAL);
    const last = new Map<string, number>();
    let violations = 0;
    for (const { key, n } of seen) {
      if ((last.get(key) ?? -1) >= n) violations++;
      last.set(key, n);
    }
    expect(violations).toBe(0);
    expect(stats.filter((s) => s.published > 0).length).toBeGreaterThan(1);
    expect(stats.reduce((sum, s) => sum + s.published, 0)).toBe(TOTAL);
  });
});
