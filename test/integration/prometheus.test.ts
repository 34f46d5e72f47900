import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { defineTopic } from '../../src/index.js';
import { postgresOutbox } from '../../src/postgres.js';
import { freePort, requiredProgram, startRedisServer, stopProcess } from '../helpers/processes.js';
import { serviceUrl } from '../helpers/services.js';
import { inPgTransaction } from '../helpers/sql.js';
import { uniqueName, waitFor } from '../helpers/wait.js';

// A real Prometheus server scrapes `ferry relay --metrics`; the test reads the values back
// through Prometheus's HTTP API, as a dashboard would.
const pgUrl = serviceUrl('FERRY_PG_URL');
const prometheus = requiredProgram('prometheus');
const redisServer = requiredProgram('redis-server');
if (
  (prometheus === undefined || redisServer === undefined) &&
  process.env.FERRY_REQUIRE_SERVICES === '1'
)
  throw new Error('prometheus and redis-server must be installed when FERRY_REQUIRE_SERVICES=1');
const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ferry-prom-'));

async function query(base: string, promql: string): Promise<number | undefined> {
  const response = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await response.json()) as {
    status: string;
    data?: { result: Array<{ value: [number, string] }> };
  };
  if (body.status !== 'success') throw new Error(`query failed: ${JSON.stringify(body)}`);
  const sample = body.data?.result[0];
  return sample === undefined ? undefined : Number(sample.value[1]);
}

describe.skipIf(pgUrl === undefined || prometheus === undefined || redisServer === undefined)(
  'Prometheus scrapes ferry relay --metrics',
  () => {
    const pool = new pg.Pool({ connectionString: pgUrl, max: 2 });
    const table = uniqueName('prom');
    const children: Array<ChildProcess | undefined> = [];
    afterAll(async () => {
      for (const child of children.reverse()) await stopProcess(child);
      for (const t of [table, `${table}_lease`, `${table}_relay`])
        await pool.query(`DROP TABLE IF EXISTS "${t}"`);
      await pool.end();
      rmSync(dir, { recursive: true, force: true });
    });

    it('reports the pending gauge and the sent counter that match the rows written', async () => {
      const outbox = postgresOutbox({ pool, table, partitions: 4 });
      await outbox.migrate();
      const topic = defineTopic<{ n: number }>(uniqueName('prom.orders'));
      const enqueue = (from: number, count: number): Promise<unknown> =>
        inPgTransaction(pool, (tx) =>
          outbox.enqueueMany(
            tx,
            topic,
            Array.from({ length: count }, (_, i) => ({ payload: { n: from + i }, key: `k${i}` })),
          ),
        );

      const redisPort = await freePort();
      let broker = await startRedisServer(redisPort);
      children.push(broker);

      const dbUrl = new URL(pgUrl as string);
      dbUrl.searchParams.set('table', table);
      dbUrl.searchParams.set('partitions', '4');
      const relay = spawn(
        process.execPath,
        [
          cli,
          'relay',
          '--db',
          dbUrl.href,
          '--transport',
          `redis-streams://127.0.0.1:${redisPort}`,
          '--metrics',
          '127.0.0.1:0',
          '--stats',
          '0',
          '--lease-ms',
          '3000',
        ],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
          env: { ...process.env, FERRY_LOG_LEVEL: 'silent' },
        },
      );
      children.push(relay);
      const metricsUrl = await new Promise<string>((resolve, reject) => {
        relay.once('exit', (code) => reject(new Error(`ferry relay exited with ${code}`)));
        createInterface({ input: relay.stdout }).on('line', (line) => {
          const event = JSON.parse(line) as { event: string; url?: string };
          if (event.event === 'metrics' && event.url) resolve(event.url);
        });
      });

      const promPort = await freePort();
      const config = join(dir, 'prometheus.yml');
      writeFileSync(
        config,
        [
          'global:',
          '  scrape_interval: 1s',
          '  evaluation_interval: 1s',
          'scrape_configs:',
          '  - job_name: ferry',
          '    static_configs:',
          `      - targets: ['${new URL(metricsUrl).host}']`,
          '',
        ].join('\n'),
      );
      const server = spawn(
        prometheus as string,
        [
          `--config.file=${config}`,
          `--storage.tsdb.path=${join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${promPort}`,
        ],
        { stdio: 'ignore' },
      );
      children.push(server);
      const api = `http://127.0.0.1:${promPort}`;
      await waitFor(
        'Prometheus scraping ferry',
        async () => (await query(api, 'up{job="ferry"}').catch(() => undefined)) === 1,
        30_000,
      );

      const sent = `sum(messaging_client_sent_messages_total{messaging_destination_name="${topic.name}",error_type=""})`;
      const pending = 'sum(ferry_outbox_pending_rows)';

      // Seven rows, published while the broker is up: sent 7, nothing pending.
      await enqueue(0, 7);
      await waitFor('sent = 7 in Prometheus', async () => (await query(api, sent)) === 7, 30_000);
      expect(await query(api, pending)).toBe(0);

      // Broker stopped: five more rows stay pending, and the sent counter does not move.
      await stopProcess(broker);
      await enqueue(7, 5);
      await waitFor(
        'pending = 5 in Prometheus',
        async () => (await query(api, pending)) === 5,
        30_000,
      );
      expect(await query(api, sent)).toBe(7);
      expect(await query(api, 'ferry_relays_live')).toBe(1);

      // Broker back: the five go out.
      broker = await startRedisServer(redisPort);
      children.push(broker);
      await waitFor('sent = 12 in Prometheus', async () => (await query(api, sent)) === 12, 60_000);
      await waitFor(
        'pending = 0 in Prometheus',
        async () => (await query(api, pending)) === 0,
        30_000,
      );
      const rows = await pool.query<{ count: string }>(
        `SELECT count(*) AS count FROM "${table}" WHERE status = 'published'`,
      );
      expect(Number(rows.rows[0]?.count)).toBe(12);
    });
  },
);
