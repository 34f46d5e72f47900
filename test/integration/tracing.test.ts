import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { context, propagation, trace, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBus, defineTopic, type Transport } from '../../src/index.js';
import { postgresOutbox } from '../../src/postgres.js';
import { kafka } from '../../src/transports/kafka/index.js';
import { memory } from '../../src/transports/memory/index.js';
import { rabbitmq } from '../../src/transports/rabbitmq/amqp/index.js';
import { redisPubSub, redisStreams } from '../../src/transports/redis/index.js';
import { sqlite } from '../../src/transports/sqlite/index.js';
import { stomp } from '../../src/transports/rabbitmq/stomp/index.js';
import { deleteByPrefix } from '../helpers/rabbitmq.js';
import { deleteKeys } from '../helpers/redis.js';
import { serviceUrl } from '../helpers/services.js';
import { inPgTransaction } from '../helpers/sql.js';
import { uniqueName, waitFor } from '../helpers/wait.js';

// The application's side: an SDK with an in-memory exporter, registered through the ESM
// copy of the api (ferry loads its own copy lazily; both must meet on the api's global).
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
trace.setGlobalTracerProvider(provider);
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
const tracer = trace.getTracer('test-app');

const pgUrl = serviceUrl('FERRY_PG_URL');
const kafkaBrokers = serviceUrl('FERRY_KAFKA_BROKERS');
const amqpUrl = serviceUrl('FERRY_AMQP_URL');
const stompUrl = serviceUrl('FERRY_STOMP_URL');
const redisUrl = serviceUrl('FERRY_REDIS_URL');
const prefix = `t-${randomBytes(4).toString('hex')}.`;
const dir = mkdtempSync(join(tmpdir(), 'ferry-tracing-'));

interface Case {
  readonly name: string;
  /** `messaging.system` the spans must carry. */
  readonly system: string;
  readonly create: (() => Transport | Promise<Transport>) | undefined;
}

const cases: Case[] = [
  { name: 'memory', system: 'memory', create: () => memory() },
  {
    name: 'sqlite',
    system: 'sqlite',
    create: () => sqlite({ path: join(dir, 'log.db'), partitions: 2, sessionTimeoutMs: 1500 }),
  },
  {
    name: 'kafka',
    system: 'kafka',
    create:
      kafkaBrokers === undefined
        ? undefined
        : () =>
            kafka({
              brokers: kafkaBrokers,
              partitions: 1,
              sessionTimeoutMs: 6000,
              heartbeatIntervalMs: 200,
              rebalanceTimeoutMs: 10_000,
              maxWaitMs: 200,
            }),
  },
  {
    name: 'rabbitmq',
    system: 'rabbitmq',
    create:
      amqpUrl === undefined
        ? undefined
        : () => rabbitmq({ url: amqpUrl, prefix, queueArguments: { 'x-expires': 600_000 } }),
  },
  {
    name: 'stomp',
    system: 'rabbitmq',
    create:
      stompUrl === undefined
        ? undefined
        : () =>
            stomp({
              url: stompUrl,
              ...(amqpUrl === undefined ? {} : { amqpUrl }),
              prefix,
              queueArguments: { 'x-expires': 600_000 },
            }),
  },
  {
    name: 'redis (Pub/Sub)',
    system: 'redis',
    create: redisUrl === undefined ? undefined : () => redisPubSub({ url: redisUrl, prefix }),
  },
  {
    name: 'redis-streams',
    system: 'redis',
    create:
      redisUrl === undefined
        ? undefined
        : () => redisStreams({ url: redisUrl, prefix, blockMs: 500, redeliveryDelayMs: 20 }),
  },
];

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  if (amqpUrl !== undefined) await deleteByPrefix(amqpUrl, prefix);
  if (redisUrl !== undefined) await deleteKeys(redisUrl, prefix);
});

const spansOf = (traceId: string): ReadableSpan[] =>
  exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId);
const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId;
const one = (spans: ReadableSpan[], what: string, test: (span: ReadableSpan) => boolean) => {
  const found = spans.filter(test);
  expect(found, what).toHaveLength(1);
  return found[0] as ReadableSpan;
};

describe.skipIf(pgUrl === undefined)('traces through the PostgreSQL outbox and relay', () => {
  const pool = new pg.Pool({ connectionString: pgUrl, max: 4 });
  const tables: string[] = [];
  beforeAll(() => exporter.reset());
  afterAll(async () => {
    for (const table of tables) {
      for (const t of [table, `${table}_lease`, `${table}_relay`])
        await pool.query(`DROP TABLE IF EXISTS "${t}"`);
    }
    await pool.end();
  });

  for (const { name, system, create } of cases) {
    it.skipIf(create === undefined)(`${name}: enqueue → relay → consume is one trace`, async () => {
      const transport = await (create as () => Transport | Promise<Transport>)();
      const table = uniqueName('trace');
      tables.push(table);
      const outbox = postgresOutbox({ pool, table, partitions: 2 });
      await outbox.migrate();
      const topic = defineTopic<{ n: number }>(uniqueName('traced'));
      const bus = createBus({
        transport,
        retry: { maxAttempts: 2, initialDelayMs: 5, maxDelayMs: 10 },
      });
      const group = transport.capabilities.groups ? uniqueName('billing') : undefined;
      const tries = new Map<number, number>();
      const outcomes: number[] = [];
      const subscription = await bus.subscribe(
        topic,
        { ...(group === undefined ? {} : { group }) },
        async (message) => {
          const n = message.payload.n;
          const attempt = (tries.get(n) ?? 0) + 1;
          tries.set(n, attempt);
          tracer.startActiveSpan('charge card', (span) => span.end());
          if (n === 2) throw new Error('card declined');
          if (n === 3 && attempt === 1) throw new Error('gateway timeout');
          outcomes.push(n);
        },
      );
      const relay = outbox.relay({ transport, pollMaxMs: 50, retention: 'keep' });
      await relay.start();
      try {
        const { root, ids } = await tracer.startActiveSpan('POST /orders', async (span) => {
          const receipts = await inPgTransaction(pool, async (tx) => [
            await outbox.enqueue(tx, topic, { n: 1 }, { key: 'order-1' }),
            await outbox.enqueue(tx, topic, { n: 2 }, { key: 'order-1' }),
            await outbox.enqueue(tx, topic, { n: 3 }, { key: 'order-1' }),
          ]);
          span.end();
          return { root: span.spanContext(), ids: receipts.map((receipt) => receipt.id) };
        });
        const processSpans = (): ReadableSpan[] =>
          spansOf(root.traceId).filter((span) => span.name === `process ${topic.name}`);
        await waitFor('three deliveries processed', () => processSpans().length === 3, 40_000);

        const spans = spansOf(root.traceId);
        for (const [index, id] of ids.entries()) {
          const n = index + 1;
          const create = one(
            spans,
            `create span of ${n}`,
            (span) =>
              span.name === `create ${topic.name}` &&
              span.attributes['messaging.message.id'] === id,
          );
          expect(create.kind).toBe(SpanKind.PRODUCER);
          expect(parentOf(create)).toBe(root.spanId);
          expect(create.attributes['messaging.operation.type']).toBe('create');
          expect(create.attributes['messaging.destination.name']).toBe(topic.name);

          const send = one(
            spans,
            `relay send span of ${n}`,
            (span) =>
              span.name === `send ${topic.name}` && span.attributes['messaging.message.id'] === id,
          );
          expect(send.kind).toBe(SpanKind.PRODUCER);
          expect(parentOf(send)).toBe(create.spanContext().spanId);
          expect(send.attributes['messaging.system']).toBe(system);
          expect(send.attributes['messaging.operation.type']).toBe('send');

          const process = one(
            spans,
            `process span of ${n}`,
            (span) =>
              span.name === `process ${topic.name}` &&
              span.attributes['messaging.message.id'] === id,
          );
          expect(process.kind).toBe(SpanKind.CONSUMER);
          expect(parentOf(process)).toBe(create.spanContext().spanId);
          expect(process.links.map((link) => link.context.spanId)).toEqual([
            create.spanContext().spanId,
          ]);
          expect(process.attributes).toMatchObject({
            'messaging.system': system,
            'messaging.operation.type': 'process',
            'messaging.operation.name': 'process',
            'messaging.destination.name': topic.name,
          });
          if (group !== undefined)
            expect(process.attributes['messaging.consumer.group.name']).toBe(group);
          if (system === 'kafka')
            expect(process.attributes['messaging.kafka.message.key']).toBe('order-1');

          const handlerSpans = spans.filter(
            (span) =>
              span.name === 'charge card' && parentOf(span) === process.spanContext().spanId,
          );
          const events = process.events.map((event) => event.name);
          if (n === 1) {
            expect(handlerSpans).toHaveLength(1);
            expect(events).toEqual([]);
            expect(process.attributes['ferry.outcome']).toBe('ok');
            expect(process.status.code).not.toBe(SpanStatusCode.ERROR);
          } else if (n === 2) {
            expect(handlerSpans).toHaveLength(2);
            expect(events).toEqual(['retry', 'dead_letter', 'exception']);
            expect(process.attributes['ferry.outcome']).toBe('dead-lettered');
            expect(process.attributes['ferry.attempts']).toBe(2);
            expect(process.status.code).toBe(SpanStatusCode.ERROR);
            expect(process.status.message).toBe('card declined');
          } else {
            expect(handlerSpans).toHaveLength(2);
            expect(events).toEqual(['retry']);
            expect(process.events[0]?.attributes?.['exception.message']).toBe('gateway timeout');
            expect(process.attributes['ferry.outcome']).toBe('ok');
            expect(process.attributes['ferry.attempts']).toBe(2);
          }
        }
        expect(outcomes.sort()).toEqual([1, 3]);
      } finally {
        await relay.stop({ timeoutMs: 2000 });
        await subscription.close({ timeoutMs: 2000 });
        await bus.close({ timeoutMs: 2000 });
        await outbox.store.close();
      }
    });
  }
});
