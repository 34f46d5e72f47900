import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { ExportResultCode, W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import {
  createBus,
  createInstrumentation,
  defineTopic,
  noInstrumentation,
  type Bus,
  type Instrumentation,
} from '../src/index.js';
import { memory } from '../src/transports/memory/index.js';
import type { BenchCase, BenchGroup } from './harness.js';

const MESSAGES = 5000;
const IN_FLIGHT = 100;

/** Drops every span: what the SDK costs without the cost of sending spans anywhere. */
const noopExporter: SpanExporter = {
  export: (_spans, done) => done({ code: ExportResultCode.SUCCESS }),
  shutdown: () => Promise.resolve(),
};

/**
 * Publish 5,000 messages (100 in flight) and consume them on the memory transport, where
 * ferry's own work is all there is to measure: no instrumentation, tracing off (metrics on),
 * the OpenTelemetry api loaded with no SDK, and an SDK with a no-op exporter.
 */
export function tracingGroups(): BenchGroup[] {
  let provider: BasicTracerProvider | undefined;
  let contextManager: AsyncLocalStorageContextManager | undefined;
  const buses: Bus[] = [];

  const scenario = (
    name: string,
    instrumentation: Instrumentation | undefined,
    sdk = false,
  ): BenchCase => {
    const topic = defineTopic<{ n: number }>(`bench.tracing.${buses.length}`);
    let bus: Bus | undefined;
    let consumed = 0;
    return {
      name,
      async setup() {
        if (!bus) {
          bus = createBus({
            transport: memory(),
            ...(instrumentation === undefined ? {} : { instrumentation }),
          });
          buses.push(bus);
          await bus.subscribe(topic, { group: 'bench' }, async () => {
            consumed++;
          });
        }
        if (sdk) {
          provider = new BasicTracerProvider({
            spanProcessors: [new BatchSpanProcessor(noopExporter)],
          });
          trace.setGlobalTracerProvider(provider);
          contextManager = new AsyncLocalStorageContextManager().enable();
          context.setGlobalContextManager(contextManager);
          propagation.setGlobalPropagator(new W3CTraceContextPropagator());
        }
      },
      async round() {
        const target = consumed + MESSAGES;
        const live = bus as Bus;
        for (let sent = 0; sent < MESSAGES; sent += IN_FLIGHT) {
          await Promise.all(
            Array.from({ length: IN_FLIGHT }, (_, i) => live.publish(topic, { n: sent + i })),
          );
        }
        while (consumed < target) await new Promise((resolve) => setImmediate(resolve));
        return MESSAGES;
      },
      async teardown() {
        if (!sdk) return;
        trace.disable();
        context.disable();
        propagation.disable();
        await provider?.shutdown();
        provider = undefined;
      },
    };
  };

  return [
    {
      title: 'Tracing overhead: publish + consume on the memory transport',
      note: 'Ratios against no instrumentation at all. "tracing off" keeps the Prometheus metrics; "api, no SDK" is the default with @opentelemetry/api installed and nothing registered; "SDK" registers a tracer provider whose exporter drops the spans (2 spans per message).',
      cases: [
        scenario('no instrumentation', noInstrumentation),
        scenario('tracing off, metrics on', createInstrumentation({ tracing: false })),
        scenario('default: api, no SDK', undefined),
        scenario('default: SDK, no-op exporter', undefined, true),
      ],
      async teardown() {
        for (const bus of buses.splice(0)) await bus.close({ timeoutMs: 1000 });
      },
    },
  ];
}
