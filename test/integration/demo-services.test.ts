import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { serviceUrl } from '../helpers/services.js';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

const pg = serviceUrl('FERRY_PG_URL');
const mysql = serviceUrl('FERRY_MYSQL_URL');
const kafka = serviceUrl('FERRY_KAFKA_BROKERS');
const amqp = serviceUrl('FERRY_AMQP_URL');
const redis = serviceUrl('FERRY_REDIS_URL');

interface Summary {
  ok: boolean;
  orders: number;
  effects: Record<string, number>;
  delivered: Record<string, number>;
  appliedTwice: number;
  lost: number;
  orderViolations: number;
  chaos: string[];
}

async function demo(...args: string[]): Promise<{ summary: Summary; stderr: string }> {
  const { stdout, stderr } = await run(process.execPath, [cli, 'demo', '--json', ...args], {
    env: { ...process.env, FERRY_LOG_LEVEL: 'warn' },
    timeout: 170_000,
  }).catch((error: { stdout?: string; stderr?: string }) => ({
    // A demo that lost something exits non-zero but still prints its summary.
    stdout: error.stdout ?? '',
    stderr: error.stderr ?? '',
  }));
  return { summary: JSON.parse(stdout) as Summary, stderr };
}

function expectNothingLost(summary: Summary, orders: number): void {
  expect(summary).toMatchObject({
    ok: true,
    orders,
    effects: { billing: orders, shipping: orders, notification: orders },
    appliedTwice: 0,
    lost: 0,
    orderViolations: 0,
  });
}

const orders = 300;

describe('ferry demo on real databases and brokers, with relays and a consumer SIGKILLed', () => {
  it.skipIf(!pg)('PostgreSQL outbox, 4 relays', { timeout: 180_000 }, async () => {
    const { summary } = await demo(
      '--db',
      pg ?? '',
      '--relays',
      '4',
      '--chaos',
      '--orders',
      String(orders),
    );
    expectNothingLost(summary, orders);
    expect(summary.chaos).toHaveLength(2);
  });

  it.skipIf(!mysql)('MariaDB outbox, 4 relays', { timeout: 180_000 }, async () => {
    const { summary } = await demo(
      '--db',
      mysql ?? '',
      '--relays',
      '4',
      '--chaos',
      '--orders',
      String(orders),
    );
    expectNothingLost(summary, orders);
  });

  it.skipIf(!kafka || !pg)('Kafka transport, PostgreSQL outbox', { timeout: 180_000 }, async () => {
    const { summary } = await demo(
      '--transport',
      `kafka://${kafka ?? ''}`,
      '--db',
      pg ?? '',
      '--relays',
      '2',
      '--chaos',
      '--orders',
      String(orders),
    );
    expectNothingLost(summary, orders);
  });

  it.skipIf(!amqp || !pg)(
    'RabbitMQ transport, PostgreSQL outbox',
    { timeout: 180_000 },
    async () => {
      const { summary } = await demo(
        '--transport',
        amqp ?? '',
        '--db',
        pg ?? '',
        '--chaos',
        '--orders',
        String(orders),
      );
      expectNothingLost(summary, orders);
    },
  );

  it.skipIf(!redis)('Redis Streams transport', { timeout: 180_000 }, async () => {
    const url = (redis ?? '').replace(/^redis:/, 'redis-streams:');
    const { summary } = await demo('--transport', url, '--chaos', '--orders', String(orders));
    expectNothingLost(summary, orders);
  });

  it.skipIf(!redis)(
    'Redis Pub/Sub says it is at-most-once and never applies twice',
    { timeout: 180_000 },
    async () => {
      const { summary, stderr } = await demo(
        '--transport',
        redis ?? '',
        '--orders',
        String(orders),
      );
      expect(stderr).toMatch(/at most once/);
      expect(summary.appliedTwice).toBe(0);
      expect(summary.orderViolations).toBe(0);
      for (const group of ['billing', 'shipping', 'notification']) {
        expect(summary.lost).toBeGreaterThanOrEqual(orders - (summary.delivered[group] ?? 0));
      }
    },
  );
});
