import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRelay, serveMetrics, type MetricsServer, type Relay } from '../../src/index.js';
import { openSqliteDatabase, sqliteOutboxStore } from '../../src/sqlite.js';
import { redisStreams } from '../../src/transports/redis/index.js';
import { freePort, requiredProgram, startRedisServer, stopProcess } from '../helpers/processes.js';
import { uniqueName, waitFor } from '../helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-ready-'));
const redisServer = requiredProgram('redis-server');
if (redisServer === undefined && process.env.FERRY_REQUIRE_SERVICES === '1')
  throw new Error('redis-server is not installed but FERRY_REQUIRE_SERVICES=1');

interface Ready {
  readonly status: number;
  readonly body: { ready: boolean; checks: Record<string, { ok: boolean; detail?: string }> };
}
async function readyz(server: MetricsServer): Promise<Ready> {
  const response = await fetch(`${server.url}/readyz`);
  return { status: response.status, body: (await response.json()) as Ready['body'] };
}

describe.skipIf(redisServer === undefined)('/readyz follows the broker', () => {
  let broker: ChildProcess | undefined;
  afterAll(async () => {
    await stopProcess(broker);
    rmSync(dir, { recursive: true, force: true });
  });

  it('is not ready while the broker is stopped and ready again once it returns', async () => {
    const port = await freePort();
    broker = await startRedisServer(port);
    const db = await openSqliteDatabase(join(dir, 'app.db'));
    const store = sqliteOutboxStore({ database: db, table: uniqueName('outbox'), partitions: 2 });
    await store.migrate();
    const transport = redisStreams({ url: `redis://127.0.0.1:${port}`, onError: () => undefined });
    const relay: Relay = createRelay(store, { transport, leaseMs: 1500, pollMaxMs: 100 });
    await relay.start();
    const server = await serveMetrics({ port: 0, outbox: store, relays: [relay], transport });
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      await waitFor('ready with the broker up', async () => (await readyz(server)).status === 200);
      const up = await readyz(server);
      expect(up.body.ready).toBe(true);
      expect(up.body.checks.store?.ok).toBe(true);
      expect(up.body.checks.transport?.ok).toBe(true);
      expect(up.body.checks[`relay ${relay.owner}`]?.ok).toBe(true);
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);

      await stopProcess(broker);
      await waitFor('not ready with the broker stopped', async () => {
        const state = await readyz(server);
        return state.status === 503;
      });
      const down = await readyz(server);
      expect(down.body.ready).toBe(false);
      expect(down.body.checks.transport?.ok).toBe(false);
      expect(down.body.checks.store?.ok).toBe(true);
      // The process itself is alive all along.
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);

      broker = await startRedisServer(port);
      await waitFor(
        'ready again once the broker returns',
        async () => (await readyz(server)).status === 200,
        30_000,
      );
      expect((await readyz(server)).body.checks.transport?.ok).toBe(true);
    } finally {
      await server.close();
      await relay.stop({ timeoutMs: 1000 });
      await transport.close({ timeoutMs: 1000 });
      await store.close();
      db.close();
    }
  });
});
