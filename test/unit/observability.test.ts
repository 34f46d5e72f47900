import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { context, metrics, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  createBus,
  createLogger,
  defineTopic,
  newMessageId,
  observe,
  PermanentError,
  renderMetrics,
  traceIdOf,
} from '../../src/index.js';
import { infoLines } from '../../src/core/log.js';
import { buildOutgoing } from '../../src/core/message.js';
import { metrics as instruments } from '../../src/observability/metrics.js';
import { parseListen } from '../../src/observability/server.js';
import {
  openSqliteDatabase,
  sqliteInbox,
  sqliteOutbox,
  sqliteTransaction,
} from '../../src/sqlite.js';
import { memory } from '../../src/transports/memory/index.js';
import { uniqueName, waitFor } from '../helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-observe-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The sum of the Prometheus samples of `name` whose labels include all of `labels`. */
async function sample(name: string, labels: Record<string, string>): Promise<number | undefined> {
  const text = await renderMetrics();
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const body = line.slice(name.length + 1, line.lastIndexOf('}'));
    if (Object.entries(labels).every(([k, v]) => body.includes(`${k}="${v}"`)))
      sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** A logger whose JSON lines land in `lines`. */
function capture(level: string): {
  lines: Array<Record<string, unknown>>;
  logger: ReturnType<typeof createLogger>;
} {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString().split('\n'))
        if (text) lines.push(JSON.parse(text) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger({ level, destination }) };
}

afterEach(() => {
  trace.disable();
  context.disable();
  propagation.disable();
  metrics.disable();
});

describe('metrics', () => {
  it('counts sends, deliveries, retries, dead letters and inbox duplicates per topic and group', async () => {
    const transport = memory();
    const bus = createBus({
      transport,
      retry: { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 2 },
    });
    const topic = defineTopic<{ n: number }>(uniqueName('metrics'));
    const db = await openSqliteDatabase(join(dir, 'inbox.db'));
    const inbox = sqliteInbox({ database: db, table: uniqueName('inbox') });
    await inbox.migrate();
    const handled: number[] = [];
    await bus.subscribe(topic, { group: 'billing', inbox }, async (message) => {
      if (message.payload.n === 2) throw new Error('declined');
      if (message.payload.n === 3) throw new PermanentError('no such customer');
      handled.push(message.payload.n);
    });
    await bus.publish(topic, { n: 1 });
    await bus.publish(topic, { n: 2 });
    await bus.publish(topic, { n: 3 });
    // The same message twice, as a relay that crashed before marking would send it.
    const again = buildOutgoing({
      id: newMessageId(),
      topic: topic.name,
      key: undefined,
      body: Buffer.from('{"n":4}'),
      contentType: 'application/json',
      createdAt: new Date(),
    });
    await transport.publish([again]);
    await transport.publish([again]);
    const group = {
      messaging_destination_name: topic.name,
      messaging_consumer_group_name: 'billing',
    };
    await waitFor(
      'five deliveries settled',
      async () => (await sample('messaging_process_duration_seconds_count', group)) === 5,
    );

    expect(
      await sample('messaging_client_sent_messages_total', {
        messaging_system: 'memory',
        messaging_destination_name: topic.name,
        messaging_operation_name: 'send',
      }),
    ).toBe(3);
    expect(await sample('messaging_client_consumed_messages_total', group)).toBe(5);
    expect(await sample('ferry_consumer_retries_total', group)).toBe(1);
    expect(await sample('ferry_dead_letters_total', { ...group, reason: 'failed' })).toBe(1);
    expect(await sample('ferry_dead_letters_total', { ...group, reason: 'permanent' })).toBe(1);
    expect(await sample('ferry_inbox_duplicates_total', group)).toBe(1);
    expect(handled.sort()).toEqual([1, 4]);
    await bus.close();
    db.close();
  });

  it('records the conventions’ metrics to an OpenTelemetry meter provider when one is registered', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const provider = new MeterProvider({ readers: [reader] });
    metrics.setGlobalMeterProvider(provider);
    const bus = createBus({ transport: memory() });
    const topic = defineTopic<{ n: number }>(uniqueName('otelmetrics'));
    let seen = 0;
    await bus.subscribe(topic, { group: 'g' }, async () => {
      seen++;
    });
    await bus.publishMany(topic, [{ payload: { n: 1 } }, { payload: { n: 2 } }]);
    await waitFor('two consumed', () => seen === 2);
    await waitFor('process durations recorded', async () => {
      const { resourceMetrics } = await reader.collect();
      const names = resourceMetrics.scopeMetrics.flatMap((s) =>
        s.metrics.map((m) => m.descriptor.name),
      );
      return names.includes('messaging.process.duration');
    });
    const { resourceMetrics } = await reader.collect();
    const all = resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics);
    const sent = all.find((m) => m.descriptor.name === 'messaging.client.sent.messages');
    const point = sent?.dataPoints.find(
      (p) => p.attributes['messaging.destination.name'] === topic.name,
    );
    expect(point?.value).toBe(2);
    expect(point?.attributes['messaging.system']).toBe('memory');
    expect(all.map((m) => m.descriptor.name)).toEqual(
      expect.arrayContaining([
        'messaging.client.consumed.messages',
        'messaging.client.operation.duration',
        'messaging.process.duration',
      ]),
    );
    await bus.close();
    await provider.shutdown();
  });

  it('a bound histogram reaches Prometheus with the same buckets, sum and count as recording one by one', async () => {
    const labels = {
      messaging_system: 'memory',
      messaging_destination_name: uniqueName('bound'),
      messaging_consumer_group_name: 'g',
      error_type: '',
    };
    const bucket = (le: string): Promise<number | undefined> =>
      sample('messaging_process_duration_seconds_bucket', { ...labels, le });
    const bound = instruments.processDuration.bind(labels);
    for (const value of [0.001, 0.02, 0.02, 20]) bound.record(value);
    // The same label set recorded without the handle, from an equal but distinct object.
    instruments.processDuration.record({ ...labels }, 0.3);
    expect(await bucket('0.005')).toBe(1);
    expect(await bucket('0.025')).toBe(3);
    expect(await bucket('0.5')).toBe(4);
    expect(await bucket('10')).toBe(4);
    expect(await bucket('+Inf')).toBe(5);
    expect(await sample('messaging_process_duration_seconds_count', labels)).toBe(5);
    expect(await sample('messaging_process_duration_seconds_sum', labels)).toBeCloseTo(20.341, 9);
    // Read again: nothing counted twice; later observations add to what was there.
    expect(await sample('messaging_process_duration_seconds_count', labels)).toBe(5);
    instruments.processDuration.bind({ ...labels }).record(0.004);
    expect(await bucket('0.005')).toBe(2);
    expect(await sample('messaging_process_duration_seconds_count', labels)).toBe(6);
  });
});

describe('outbox gauges', () => {
  it('reads the backlog when scraped, for Prometheus and for an OpenTelemetry meter provider', async () => {
    const reader = new PeriodicExportingMetricReader({
      exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
      exportIntervalMillis: 60_000,
    });
    const provider = new MeterProvider({ readers: [reader] });
    metrics.setGlobalMeterProvider(provider);
    const db = await openSqliteDatabase(join(dir, 'outbox.db'));
    const outbox = sqliteOutbox({ database: db, table: uniqueName('outbox'), partitions: 4 });
    await outbox.migrate();
    const topic = defineTopic<{ n: number }>(uniqueName('backlog'));
    await sqliteTransaction(db, (tx) =>
      outbox.enqueueMany(
        tx,
        topic,
        [1, 2, 3].map((n) => ({ payload: { n }, key: `k${n}` })),
      ),
    );
    const forget = observe({ outbox: outbox.store });
    try {
      expect(await sample('ferry_outbox_pending_rows', {})).toBe(3);
      expect(await sample('ferry_outbox_dead_rows', {})).toBe(0);
      const { resourceMetrics } = await reader.collect();
      const pending = resourceMetrics.scopeMetrics
        .flatMap((scope) => scope.metrics)
        .find((metric) => metric.descriptor.name === 'ferry.outbox.pending_rows');
      const total = (pending?.dataPoints ?? []).reduce(
        (sum, point) => sum + Number(point.value),
        0,
      );
      expect(total).toBe(3);
      expect(pending?.dataPoints).toHaveLength(4);
    } finally {
      forget();
      await provider.shutdown();
      db.close();
    }
    expect(await sample('ferry_outbox_pending_rows', {})).toBeUndefined();
  });
});

describe('logs', () => {
  it('are quiet by default: a retried message logs a warning, a good one nothing', async () => {
    const { lines, logger } = capture('info');
    const bus = createBus({
      transport: memory(),
      logger,
      retry: { maxAttempts: 2, initialDelayMs: 1 },
    });
    const topic = defineTopic<{ n: number }>(uniqueName('quiet'));
    const done: number[] = [];
    let failed = false;
    await bus.subscribe(topic, { group: 'g' }, async (message) => {
      if (message.payload.n === 2 && !failed) {
        failed = true;
        throw new Error('try again');
      }
      done.push(message.payload.n);
    });
    await bus.publish(topic, { n: 1 });
    await bus.publish(topic, { n: 2 });
    await waitFor('both handled', () => done.length === 2);
    await bus.close();
    expect(lines.map((line) => line.result)).toEqual(['retry']);
    expect(lines[0]?.level).toBe('warn');
  });

  it('with audit, every publish and consume line carries the message id and the trace id', async () => {
    const provider = new BasicTracerProvider();
    trace.setGlobalTracerProvider(provider);
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const { lines, logger } = capture('info');
    const bus = createBus({ transport: memory(), logger, audit: true });
    const topic = defineTopic<{ n: number }>(uniqueName('audit'));
    let seen = 0;
    await bus.subscribe(topic, { group: 'g' }, async () => {
      seen++;
    });
    const { traceId, id } = await trace
      .getTracer('app')
      .startActiveSpan('request', async (span) => {
        const receipt = await bus.publish(topic, { n: 1 });
        span.end();
        return { traceId: span.spanContext().traceId, id: receipt.id };
      });
    await waitFor('consumed', () => seen === 1);
    await bus.close();
    const audit = lines.filter((line) => line.event === 'publish' || line.event === 'consume');
    expect(audit.map((line) => [line.event, line.result])).toEqual([
      ['publish', 'ok'],
      ['consume', 'ok'],
    ]);
    for (const line of audit) {
      expect(line.id).toBe(id);
      expect(line.traceId).toBe(traceId);
    }
  });

  it('with audit, the relay writes one line per relayed row, with the row, its relay and the outcome', async () => {
    const { lines, logger } = capture('info');
    const db = await openSqliteDatabase(join(dir, `${uniqueName('relay-audit')}.db`));
    const outbox = sqliteOutbox({ database: db, table: uniqueName('outbox'), partitions: 2 });
    await outbox.migrate();
    const topic = defineTopic<{ n: number }>(uniqueName('relayed'));
    const receipts = await sqliteTransaction(db, (tx) =>
      outbox.enqueueMany(
        tx,
        topic,
        [1, 2, 3].map((n) => ({ payload: { n }, key: `k${n}` })),
      ),
    );
    const transport = memory();
    const relay = outbox.relay({ transport, logger, audit: true, owner: 'relay-1' });
    await relay.start();
    try {
      await waitFor('every row relayed', () => relay.stats().published === 3);
    } finally {
      await relay.stop();
      await transport.close();
      db.close();
    }
    const relayed = lines.filter((line) => line.event === 'relay-publish');
    expect(relayed.map((line) => line.id).sort()).toEqual(receipts.map((r) => r.id).sort());
    for (const line of relayed) {
      expect(line).toMatchObject({
        level: 'info',
        relay: 'relay-1',
        topic: topic.name,
        attempt: 1,
        result: 'ok',
        msg: 'relayed',
      });
      expect(typeof line.time).toBe('number');
      expect(line.key).toMatch(/^k[123]$/);
      expect(line.partition).toBeTypeOf('number');
    }
  });

  it('writes the info lines of its own loggers as pino writes them, and leaves other loggers theirs', () => {
    const written: string[] = [];
    const logger = createLogger({
      level: 'info',
      destination: { write: (line: string) => void written.push(line) },
    });
    const bindings = { event: 'consume', topic: 'orders', group: undefined };
    const fields = {
      id: 'an "id" with \\ and \n and \u0001',
      traceId: undefined,
      key: 'clé 🙂',
      partition: 3,
      offset: '42',
      attempt: 1,
      durationMs: 0.25,
      long: 'x'.repeat(90),
      odd: Number.NaN,
      result: 'ok',
    };
    infoLines(logger, bindings).info(fields, 'consumed "now"');
    logger.child(bindings).info(fields, 'consumed "now"');
    const [fast, slow] = written.map((line) => line.replace(/"time":\d+/, '"time":0'));
    expect(fast).toBe(slow);
    expect(JSON.parse(fast as string)).toMatchObject({
      level: 'info',
      service: 'ferry',
      odd: null,
    });
    // A lone surrogate is escaped, so the line stays valid UTF-8.
    infoLines(logger, bindings).info({ key: '\ud800' }, 'consumed');
    expect(written.at(-1)).toContain('"key":"\\ud800"');
    expect((JSON.parse(written.at(-1) as string) as { key: string }).key).toBe('\ud800');
    // Off at `warn`, as the logger's level says.
    logger.level = 'warn';
    expect(infoLines(logger, bindings).isLevelEnabled('info')).toBe(false);
    infoLines(logger, bindings).info(fields, 'consumed');
    expect(written).toHaveLength(3);

    // Another logger keeps its own serialisation: here, its redaction.
    const own: string[] = [];
    const other = pino({ redact: ['key'] }, { write: (line: string) => void own.push(line) });
    infoLines(other, bindings).info({ key: 'secret', offset: '1' }, 'consumed');
    expect(JSON.parse(own[0] as string)).toMatchObject({
      event: 'consume',
      key: '[Redacted]',
      offset: '1',
    });
  });

  it('reads the trace id of a traceparent header, and nothing from a malformed one', () => {
    expect(
      traceIdOf({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }),
    ).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(traceIdOf({ traceparent: 'garbage' })).toBeUndefined();
    expect(traceIdOf({})).toBeUndefined();
  });
});

describe('metrics endpoint address', () => {
  it('binds loopback unless told otherwise, and refuses what is not host:port', () => {
    expect(parseListen(':9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseListen('0.0.0.0:9464')).toEqual({ host: '0.0.0.0', port: 9464 });
    expect(parseListen('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
    for (const bad of ['9464', 'host:', 'host:99999', 'a:b'])
      expect(() => parseListen(bad)).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT' }) as Error,
      );
  });
});
