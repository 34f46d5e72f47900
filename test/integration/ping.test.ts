import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readiness, type Transport } from '../../src/index.js';
import { kafka } from '../../src/transports/kafka/index.js';
import { memory } from '../../src/transports/memory/index.js';
import { rabbitmq } from '../../src/transports/rabbitmq/amqp/index.js';
import { redisPubSub, redisStreams } from '../../src/transports/redis/index.js';
import { sqlite } from '../../src/transports/sqlite/index.js';
import { stomp } from '../../src/transports/rabbitmq/stomp/index.js';
import { freePort } from '../helpers/processes.js';
import { serviceUrl } from '../helpers/services.js';

// Readiness asks each transport for one round trip to its broker (`ping`): it answers on a
// live broker and not on an address where no broker listens.
const kafkaBrokers = serviceUrl('FERRY_KAFKA_BROKERS');
const amqpUrl = serviceUrl('FERRY_AMQP_URL');
const stompUrl = serviceUrl('FERRY_STOMP_URL');
const redisUrl = serviceUrl('FERRY_REDIS_URL');
const dir = mkdtempSync(join(tmpdir(), 'ferry-ping-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Case {
  readonly name: string;
  readonly live: (() => Transport | Promise<Transport>) | undefined;
  /** The same transport aimed at a loopback port nothing listens on. */
  readonly dead?: (port: number) => Transport;
}

const quiet = { onError: () => undefined };
const cases: Case[] = [
  { name: 'memory', live: () => memory() },
  { name: 'sqlite', live: () => sqlite({ path: join(dir, 'log.db') }) },
  {
    name: 'kafka',
    live: kafkaBrokers === undefined ? undefined : () => kafka({ brokers: kafkaBrokers }),
    dead: (port) => kafka({ brokers: `127.0.0.1:${port}` }),
  },
  {
    name: 'rabbitmq',
    live: amqpUrl === undefined ? undefined : () => rabbitmq({ url: amqpUrl }),
    dead: (port) => rabbitmq({ url: `amqp://guest:guest@127.0.0.1:${port}` }),
  },
  {
    name: 'stomp',
    live: stompUrl === undefined ? undefined : () => stomp({ url: stompUrl }),
    dead: (port) => stomp({ url: `stomp://guest:guest@127.0.0.1:${port}`, amqpUrl: false }),
  },
  {
    name: 'redis (Pub/Sub)',
    live: redisUrl === undefined ? undefined : () => redisPubSub({ url: redisUrl, ...quiet }),
    dead: (port) => redisPubSub({ url: `redis://127.0.0.1:${port}`, ...quiet }),
  },
  {
    name: 'redis-streams',
    live: redisUrl === undefined ? undefined : () => redisStreams({ url: redisUrl, ...quiet }),
    dead: (port) => redisStreams({ url: `redis://127.0.0.1:${port}`, ...quiet }),
  },
];

describe('transport ping for /readyz', () => {
  for (const { name, live, dead } of cases) {
    it.skipIf(live === undefined)(`${name}: ready against its broker`, async () => {
      const transport = await (live as () => Transport | Promise<Transport>)();
      try {
        expect(typeof transport.ping).toBe('function');
        await expect(transport.ping?.()).resolves.toBeUndefined();
        const state = await readiness({ transport });
        expect(state).toEqual({ ready: true, checks: { transport: { ok: true } } });
      } finally {
        await transport.close({ timeoutMs: 1000 });
      }
      await expect(transport.ping?.()).rejects.toMatchObject({ code: 'CLOSED' });
    });
    if (dead) {
      it(`${name}: not ready where no broker listens`, async () => {
        const transport = dead(await freePort());
        try {
          const state = await readiness({ transport });
          expect(state.ready).toBe(false);
          expect(state.checks.transport?.ok).toBe(false);
          expect(state.checks.transport?.detail).toBeTruthy();
        } finally {
          await transport.close({ timeoutMs: 1000 });
        }
      });
    }
  }
});
