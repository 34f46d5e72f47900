import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { defineTopic } from '../../src/index.js';
import { postgresOutbox } from '../../src/postgres.js';
import { createSinkTable, inspectSink } from '../fixtures/pg-sink.js';
import { serviceUrl } from '../helpers/services.js';
import { delay, uniqueName, waitFor } from '../helpers/wait.js';
import { inPgTransaction } from '../helpers/sql.js';

const url = serviceUrl('FERRY_PG_URL');

const RELAYS = 4;
const KEYS = 200;
const PER_KEY = 100;
const PRODUCERS = 4;
const TOTAL = KEYS * PER_KEY;
const Topic = defineTopic<{ n: number }>('scale.events');

interface RelayProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<unknown>;
}

describe.skipIf(url === undefined)('relay scale-out: 4 relay processes on PostgreSQL', () => {
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  const drops: string[] = [];
  const running = new Set<RelayProcess>();

  afterAll(async () => {
    for (const relay of running) relay.child.kill('SIGKILL');
    for (const table of drops) await pool.query(`DROP TABLE IF EXISTS "${table}"`);
    await pool.end();
  });

  async function setUp(): Promise<{ outboxTable: string; sinkTable: string }> {
    const outboxTable = uniqueName('scale');
    const sinkTable = `${outboxTable}_sink`;
    drops.push(
      outboxTable,
      `${outboxTable}_lease`,
      `${outboxTable}_relay`,
      `${outboxTable}_schema`,
      sinkTable,
    );
    await postgresOutbox({ pool, table: outboxTable, partitions: 16 }).migrate();
    await createSinkTable(pool, sinkTable);
    return { outboxTable, sinkTable };
  }

  async function startRelay(
    name: string,
    tables: { outboxTable: string; sinkTable: string },
  ): Promise<RelayProcess> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/pg-relay.ts'], {
      env: {
        ...process.env,
        FERRY_PG_URL: url,
        OUTBOX_TABLE: tables.outboxTable,
        SINK_TABLE: tables.sinkTable,
        RELAY_NAME: name,
        LEASE_MS: '1500',
        NOTIFY: '1',
        FERRY_LOG_LEVEL: 'silent',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const relay: RelayProcess = { name, child, exited: once(child, 'exit') };
    running.add(relay);
    void relay.exited.then(() => running.delete(relay));
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitFor(`relay ${name} to start`, () => output.includes('ready'), 20_000);
    return relay;
  }

  /** PRODUCERS writers, each owning KEYS / PRODUCERS keys, committing one message per key per round. */
  async function produce(outboxTable: string): Promise<void> {
    const outbox = postgresOutbox({ pool, table: outboxTable, notify: true });
    await outbox.migrate();
    const perProducer = KEYS / PRODUCERS;
    await Promise.all(
      Array.from({ length: PRODUCERS }, async (_, p) => {
        const keys = Array.from({ length: perProducer }, (_, k) => `key-${p * perProducer + k}`);
        for (let n = 0; n < PER_KEY; n++) {
          await inPgTransaction(pool, (client) =>
            outbox.enqueueMany(
              client,
              Topic,
              keys.map((key) => ({ key, payload: { n } })),
            ),
          );
        }
      }),
    );
    await outbox.store.close();
  }

  const delivered = async (sinkTable: string): Promise<number> =>
    Number(
      (await pool.query<{ n: string }>(`SELECT count(DISTINCT id) AS n FROM "${sinkTable}"`))
        .rows[0]?.n,
    );

  const pendingIn = async (outboxTable: string): Promise<number> =>
    Number(
      (
        await pool.query<{ n: string }>(
          `SELECT count(*) AS n FROM "${outboxTable}" WHERE status <> 'published'`,
        )
      ).rows[0]?.n,
    );

  async function stopAll(): Promise<void> {
    const relays = [...running];
    for (const relay of relays) relay.child.kill('SIGTERM');
    await Promise.all(relays.map((relay) => relay.exited));
  }

  it('publishes 20,000 messages over 200 keys once each, in order per key', async () => {
    const tables = await setUp();
    await Promise.all(Array.from({ length: RELAYS }, (_, i) => startRelay(`relay-${i}`, tables)));
    await produce(tables.outboxTable);
    await waitFor(
      'every message delivered',
      async () => (await delivered(tables.sinkTable)) >= TOTAL,
      40_000,
    );
    await stopAll();

    const report = await inspectSink(pool, tables.sinkTable, TOTAL);
    expect(report).toMatchObject({ lost: 0, duplicates: 0, orderViolations: 0 });
    expect(report.rows).toBe(TOTAL);
    // The work was shared: more than one relay process published.
    expect(Object.keys(report.byRelay).length).toBeGreaterThan(1);
    expect(await pendingIn(tables.outboxTable)).toBe(0);
    console.info('steady state', JSON.stringify(report));
  });

  it('loses nothing and keeps per-key order while relays are SIGKILLed and restarted', async () => {
    const tables = await setUp();
    const relays = await Promise.all(
      Array.from({ length: RELAYS }, (_, i) => startRelay(`relay-${i}`, tables)),
    );
    let producing = true;
    let kills = 0;
    const chaos = (async () => {
      while (producing || kills < 4) {
        await delay(400 + Math.random() * 600);
        const index = Math.floor(Math.random() * relays.length);
        const victim = relays[index] as RelayProcess;
        victim.child.kill('SIGKILL');
        await victim.exited;
        kills++;
        await delay(100 + Math.random() * 300);
        relays[index] = await startRelay(victim.name, tables);
      }
    })();
    await produce(tables.outboxTable);
    producing = false;
    await chaos;
    await waitFor(
      'every message delivered',
      async () => (await delivered(tables.sinkTable)) >= TOTAL,
      40_000,
    );
    await stopAll();

    const report = await inspectSink(pool, tables.sinkTable, TOTAL);
    expect(kills).toBeGreaterThanOrEqual(4);
    expect(report).toMatchObject({ lost: 0, orderViolations: 0 });
    expect(await pendingIn(tables.outboxTable)).toBe(0);
    console.info('with kills', JSON.stringify({ kills, ...report }));
  });
});
