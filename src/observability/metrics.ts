import type { Counter as OtelCounter, Histogram as OtelHistogram, Meter } from '@opentelemetry/api';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { mergeObservations, type PendingObservations } from './histogram-buckets.js';
import { activeMetricsApi } from './otel.js';
import { SCOPE } from './tracing.js';

/**
 * ferry's metrics, in a registry of its own (not prom-client's global one): served as
 * Prometheus text by `serveMetrics` and `ferry relay --metrics`, and merged into an
 * application's prom-client registry with `Registry.merge([registry, metricsRegistry])`.
 * When an OpenTelemetry meter provider is registered, counters and histograms are recorded
 * there too, under the conventions' dotted names.
 */
export const metricsRegistry = new Registry();

type Labels = Record<string, string>;

/** Seconds buckets the messaging conventions advise for durations. */
const DURATION_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];

interface Mirrored {
  /** OpenTelemetry name (dotted). */
  readonly otelName: string;
  readonly description: string;
  readonly unit: string;
}

const otelInstruments = new WeakMap<Meter, Map<string, OtelCounter | OtelHistogram>>();

// The instrumentation reuses one labels object per destination, so its dotted attributes
// are worked out once too rather than on every recording.
const attributeCache = new WeakMap<Labels, Record<string, string>>();

function otelAttributes(labels: Labels): Record<string, string> {
  const cached = attributeCache.get(labels);
  if (cached) return cached;
  const attributes: Record<string, string> = {};
  for (const [name, value] of Object.entries(labels)) {
    if (value !== '') attributes[name.replaceAll('_', '.')] = value;
  }
  attributeCache.set(labels, attributes);
  return attributes;
}

function otelInstrument(
  spec: Mirrored,
  kind: 'counter' | 'histogram',
): OtelCounter | OtelHistogram | undefined {
  const api = activeMetricsApi();
  if (!api) return undefined;
  const meter = api.metrics.getMeter(SCOPE);
  let instruments = otelInstruments.get(meter);
  if (!instruments) {
    instruments = new Map<string, OtelCounter | OtelHistogram>();
    otelInstruments.set(meter, instruments);
  }
  let instrument = instruments.get(spec.otelName);
  if (!instrument) {
    const options = { description: spec.description, unit: spec.unit };
    instrument =
      kind === 'counter'
        ? meter.createCounter(spec.otelName, options)
        : meter.createHistogram(spec.otelName, {
            ...options,
            advice: { explicitBucketBoundaries: DURATION_BUCKETS },
          });
    instruments.set(spec.otelName, instrument);
  }
  return instrument;
}

export interface CounterMetric {
  add(labels: Labels, value?: number): void;
  /**
   * A handle for one labels object that is reused for the life of the process (one per
   * destination, say): its increments are summed in place and reach the Prometheus registry
   * when it is read, so a message costs an addition rather than a label lookup.
   */
  bind(labels: Labels): BoundCounter;
}

/** A counter with its labels fixed (see {@link CounterMetric.bind}). */
export interface BoundCounter {
  add(value?: number): void;
}
export interface HistogramMetric {
  record(labels: Labels, value: number): void;
  /**
   * A handle for one labels object reused for the life of the process (see
   * {@link CounterMetric.bind}): its observations are summed into buckets in place and reach
   * the Prometheus registry when it is read, so an observation costs a bucket search rather
   * than a label lookup.
   */
  bind(labels: Labels): BoundHistogram;
}

/** A histogram with its labels fixed (see {@link HistogramMetric.bind}). */
export interface BoundHistogram {
  record(value: number): void;
}

function counter(name: string, spec: Mirrored, labelNames: readonly string[]): CounterMetric {
  // One handle per label set, however many buses bind it: the registry lives as long as the
  // process, and buses come and go.
  const bound = new Map<string, { readonly labels: Labels; pending: number }>();
  const prom = new Counter({
    name,
    help: spec.description,
    labelNames,
    registers: [metricsRegistry],
    collect() {
      for (const handle of bound.values()) {
        if (handle.pending === 0) continue;
        this.inc(handle.labels, handle.pending);
        handle.pending = 0;
      }
    },
  });
  const otel = (labels: Labels, value: number): void =>
    (otelInstrument(spec, 'counter') as OtelCounter | undefined)?.add(
      value,
      otelAttributes(labels),
    );
  return {
    add(labels, value = 1) {
      prom.inc(labels, value);
      otel(labels, value);
    },
    bind(labels) {
      const key = labelNames.map((name) => labels[name] ?? '').join('\u0000');
      let handle = bound.get(key);
      if (!handle) bound.set(key, (handle = { labels, pending: 0 }));
      const held = handle;
      return {
        add(value = 1) {
          held.pending += value;
          otel(labels, value);
        },
      };
    },
  };
}

function histogram(
  name: string,
  spec: Mirrored,
  labelNames: readonly string[],
  buckets: number[] = DURATION_BUCKETS,
): HistogramMetric {
  // As with counters: one handle per label set, summed in place until the registry is read.
  const bound = new Map<string, PendingObservations>();
  const upperBounds = [...buckets].sort((a, b) => a - b);
  const prom: Histogram = new Histogram({
    name,
    help: spec.description,
    labelNames,
    buckets,
    registers: [metricsRegistry],
    collect() {
      for (const pending of bound.values()) {
        if (pending.count > 0) mergeObservations(prom, labelNames, upperBounds, pending);
      }
    },
  });
  const otel = (labels: Labels, value: number): void =>
    (otelInstrument(spec, 'histogram') as OtelHistogram | undefined)?.record(
      value,
      otelAttributes(labels),
    );
  return {
    record(labels, value) {
      prom.observe(labels, value);
      otel(labels, value);
    },
    bind(labels) {
      const key = labelNames.map((name) => labels[name] ?? '').join('\u0000');
      let pending = bound.get(key);
      if (!pending) {
        pending = {
          labels,
          buckets: new Array<number>(upperBounds.length + 1).fill(0),
          sums: new Array<number>(upperBounds.length + 1).fill(0),
          count: 0,
          sum: 0,
        };
        bound.set(key, pending);
      }
      const held = pending;
      const last = upperBounds.length;
      return {
        record(value) {
          if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
          let i = 0;
          while (i < last && value > upperBounds[i]!) i++;
          held.buckets[i]!++;
          held.sums[i]! += value;
          held.count++;
          held.sum += value;
          otel(labels, value);
        },
      };
    },
  };
}

// Label names are the conventions' attribute names with `.` as `_` (how OpenTelemetry's
// Prometheus exporter writes them), so dashboards work on either path.
const SYSTEM = 'messaging_system';
const DESTINATION = 'messaging_destination_name';
const OPERATION = 'messaging_operation_name';
const GROUP = 'messaging_consumer_group_name';
const ERROR_TYPE = 'error_type';

/** The instruments ferry records into. */
export const metrics = {
  sent: counter(
    'messaging_client_sent_messages_total',
    {
      otelName: 'messaging.client.sent.messages',
      description: 'Messages a producer attempted to send to the broker',
      unit: '{message}',
    },
    [SYSTEM, DESTINATION, OPERATION, ERROR_TYPE],
  ),
  consumed: counter(
    'messaging_client_consumed_messages_total',
    {
      otelName: 'messaging.client.consumed.messages',
      description: 'Messages delivered to a consumer',
      unit: '{message}',
    },
    [SYSTEM, DESTINATION, GROUP, OPERATION, ERROR_TYPE],
  ),
  operationDuration: histogram(
    'messaging_client_operation_duration_seconds',
    {
      otelName: 'messaging.client.operation.duration',
      description: 'Duration of messaging operations initiated by a producer or consumer client',
      unit: 's',
    },
    [SYSTEM, DESTINATION, OPERATION, ERROR_TYPE],
  ),
  processDuration: histogram(
    'messaging_process_duration_seconds',
    {
      otelName: 'messaging.process.duration',
      description: 'Duration of processing operations (all attempts of one delivery)',
      unit: 's',
    },
    [SYSTEM, DESTINATION, GROUP, ERROR_TYPE],
  ),
  deadLetters: counter(
    'ferry_dead_letters_total',
    {
      otelName: 'ferry.dead_letters',
      description: 'Messages written to a dead-letter topic, per topic, group and reason',
      unit: '{message}',
    },
    [DESTINATION, GROUP, 'reason'],
  ),
  retries: counter(
    'ferry_consumer_retries_total',
    {
      otelName: 'ferry.consumer.retries',
      description: 'Handler attempts that failed and were retried',
      unit: '{attempt}',
    },
    [DESTINATION, GROUP],
  ),
  inboxDuplicates: counter(
    'ferry_inbox_duplicates_total',
    {
      otelName: 'ferry.inbox.duplicates',
      description: 'Deliveries the inbox recognised as already processed (handler not run)',
      unit: '{message}',
    },
    [DESTINATION, GROUP],
  ),
  relayPublished: counter(
    'ferry_relay_published_total',
    {
      otelName: 'ferry.relay.published',
      description: 'Outbox rows a relay published (rate() of it is the publish rate)',
      unit: '{message}',
    },
    ['relay'],
  ),
  relayFailures: counter(
    'ferry_relay_publish_failures_total',
    {
      otelName: 'ferry.relay.publish_failures',
      description: 'Outbox rows the broker refused, scheduled for retry or marked dead',
      unit: '{message}',
    },
    ['relay', 'outcome'],
  ),
  relayBatch: histogram(
    'ferry_relay_batch_size',
    {
      otelName: 'ferry.relay.batch_size',
      description: 'Rows per batch a relay hands to the transport',
      unit: '{message}',
    },
    ['relay'],
    [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
  ),
};

interface ScrapeGauge {
  readonly otelName: string;
  readonly help: string;
  readonly read: () => Promise<ReadonlyArray<readonly [Labels, number]>>;
}
const scrapeGauges: ScrapeGauge[] = [];
const gaugeMeters = new WeakSet<Meter>();

/**
 * A gauge read when scraped: `read` returns its current samples. Also offered to an
 * OpenTelemetry meter provider, as an observable gauge named `otelName`, by
 * {@link offerGaugesToOtel}.
 */
export function scrapeGauge(
  name: string,
  otelName: string,
  help: string,
  labelNames: readonly string[],
  read: () => Promise<ReadonlyArray<readonly [Labels, number]>>,
): Gauge {
  scrapeGauges.push({ otelName, help, read });
  return new Gauge({
    name,
    help,
    labelNames,
    registers: [metricsRegistry],
    async collect() {
      const samples = await read();
      this.reset();
      for (const [labels, value] of samples) this.set(labels, value);
    },
  });
}

/** Registers the scrape-time gauges with the meter provider, once per meter, when one is registered. */
export function offerGaugesToOtel(): void {
  const api = activeMetricsApi();
  if (!api) return;
  const meter = api.metrics.getMeter(SCOPE);
  if (gaugeMeters.has(meter)) return;
  gaugeMeters.add(meter);
  for (const gauge of scrapeGauges) {
    meter
      .createObservableGauge(gauge.otelName, { description: gauge.help })
      .addCallback(async (result) => {
        for (const [labels, value] of await gauge.read())
          result.observe(value, otelAttributes(labels));
      });
  }
}
