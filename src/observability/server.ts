import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FerryError } from '../core/errors.js';
import type { Relay } from '../outbox/relay/index.js';
import type { OutboxStore, PartitionStatus } from '../outbox/store.js';
import type { Transport } from '../transport/transport.js';
import { metricsRegistry, offerGaugesToOtel, scrapeGauge } from './metrics.js';

/** What the metrics endpoint reads when scraped, and what `/readyz` checks. */
export interface MetricsSources {
  /** Outbox backlog gauges, live relays, and (for `/readyz`) that the database answers. */
  readonly outbox?: OutboxStore<never>;
  /** Leases held per relay; `/readyz` wants each to hold a lease, or all leases taken by live relays. */
  readonly relays?: readonly Relay[];
  /** `/readyz` checks the broker answers (where the transport can tell: `ping`). */
  readonly transport?: Transport;
  /** Consumer lag per partition of these groups, where the transport can tell (`lag`). */
  readonly lag?: ReadonlyArray<{ readonly topic: string; readonly group: string }>;
}

const sources = new Set<MetricsSources>();

/** Reads each outbox's status once per scrape, however many gauges ask. */
const statusReads = new WeakMap<object, { at: number; read: Promise<PartitionStatus[]> }>();
function statusOf(store: OutboxStore<never>): Promise<PartitionStatus[]> {
  const cached = statusReads.get(store);
  if (cached && Date.now() - cached.at < 250) return cached.read;
  const read = store.status();
  statusReads.set(store, { at: Date.now(), read });
  return read;
}

async function eachOutbox(
  sample: (status: PartitionStatus[]) => Array<readonly [Record<string, string>, number]>,
): Promise<Array<readonly [Record<string, string>, number]>> {
  const samples: Array<readonly [Record<string, string>, number]> = [];
  for (const source of sources) {
    if (!source.outbox) continue;
    // A database that does not answer leaves its series out; /readyz reports it.
    const status = await statusOf(source.outbox).catch(() => undefined);
    if (status) samples.push(...sample(status));
  }
  return samples;
}

scrapeGauge(
  'ferry_outbox_pending_rows',
  'ferry.outbox.pending_rows',
  'Outbox rows waiting to be published',
  ['partition'],
  () =>
    eachOutbox((status) =>
      status.map((p) => [{ partition: String(p.partition) }, p.pending] as const),
    ),
);
scrapeGauge(
  'ferry_outbox_dead_rows',
  'ferry.outbox.dead_rows',
  'Outbox rows marked dead (retry or skip them)',
  ['partition'],
  () =>
    eachOutbox((status) =>
      status.map((p) => [{ partition: String(p.partition) }, p.dead] as const),
    ),
);
scrapeGauge(
  'ferry_outbox_blocked_rows',
  'ferry.outbox.blocked_rows',
  'Pending outbox rows held back behind a dead row of their key',
  ['partition'],
  () =>
    eachOutbox((status) =>
      status.map((p) => [{ partition: String(p.partition) }, p.blocked] as const),
    ),
);
scrapeGauge(
  'ferry_outbox_oldest_pending_seconds',
  'ferry.outbox.oldest_pending_age',
  'Age of the oldest pending outbox row (0 when none is pending)',
  [],
  () =>
    eachOutbox((status) => [
      [{}, Math.max(0, ...status.map((p) => p.oldestPendingMs ?? 0)) / 1000] as const,
    ]),
);
scrapeGauge(
  'ferry_relays_live',
  'ferry.relays.live',
  'Relays registered and not expired on the outbox',
  [],
  async () => {
    const samples: Array<readonly [Record<string, string>, number]> = [];
    for (const source of sources) {
      if (!source.outbox) continue;
      const live = await source.outbox.liveRelays().catch(() => undefined);
      if (live !== undefined) samples.push([{}, live]);
    }
    return samples;
  },
);
scrapeGauge(
  'ferry_relay_leases_held',
  'ferry.relay.leases_held',
  'Outbox partitions a relay holds',
  ['relay'],
  () =>
    Promise.resolve(
      [...sources].flatMap((source) =>
        (source.relays ?? []).map((relay) => {
          const stats = relay.stats();
          return [{ relay: stats.owner }, stats.partitions.length] as const;
        }),
      ),
    ),
);
scrapeGauge(
  'ferry_consumer_lag_messages',
  'ferry.consumer.lag',
  'Messages a consumer group has yet to read, per partition',
  ['messaging_destination_name', 'messaging_consumer_group_name', 'partition'],
  async () => {
    const samples: Array<readonly [Record<string, string>, number]> = [];
    for (const source of sources) {
      const lag = source.transport?.lag?.bind(source.transport);
      if (!lag) continue;
      for (const { topic, group } of source.lag ?? []) {
        const partitions = await lag(topic, group).catch(() => []);
        for (const p of partitions) {
          samples.push([
            {
              messaging_destination_name: topic,
              messaging_consumer_group_name: group,
              partition: String(p.partition),
            },
            p.lag,
          ]);
        }
      }
    }
    return samples;
  },
);

/**
 * Adds sources to the metrics every endpoint in this process serves (and, when a meter
 * provider is registered, to its observable gauges); returns a function that removes them.
 */
export function observe(source: MetricsSources): () => void {
  sources.add(source);
  offerGaugesToOtel();
  return () => sources.delete(source);
}

/** Prometheus text of every ferry metric. */
export function renderMetrics(): Promise<string> {
  return metricsRegistry.metrics();
}

/** One `/readyz` check: whether the dependency answered, and why not. */
export interface ReadyCheck {
  readonly ok: boolean;
  readonly detail?: string;
}

const CHECK_TIMEOUT_MS = 2000;

async function timed(work: () => Promise<ReadyCheck>): Promise<ReadyCheck> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work(),
      new Promise<ReadyCheck>((resolve) => {
        timer = setTimeout(
          () => resolve({ ok: false, detail: `no answer in ${CHECK_TIMEOUT_MS} ms` }),
          CHECK_TIMEOUT_MS,
        );
      }),
    ]);
  } catch (error) {
    return { ok: false, detail: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** Readiness of the sources: the database and broker answer, every relay holds or can get a lease. */
export async function readiness(
  source: MetricsSources,
): Promise<{ ready: boolean; checks: Record<string, ReadyCheck> }> {
  const checks: Record<string, ReadyCheck> = {};
  const { outbox, transport, relays } = source;
  const work: Array<Promise<void>> = [];
  let live: number | undefined;
  if (outbox) {
    work.push(
      timed(async () => {
        live = await outbox.liveRelays();
        return { ok: true };
      }).then((check) => void (checks.store = check)),
    );
  }
  if (transport) {
    const ping = transport.ping?.bind(transport);
    work.push(
      (ping
        ? timed(async () => {
            await ping();
            return { ok: true };
          })
        : Promise.resolve({ ok: true, detail: `${transport.name} cannot be probed` })
      ).then((check) => void (checks.transport = check)),
    );
  }
  await Promise.all(work);
  for (const relay of relays ?? []) {
    const held = relay.stats().partitions.length;
    // A relay holding nothing is still fine when live relays outnumber the partitions.
    const ok =
      held > 0 || (outbox !== undefined && live !== undefined && live >= outbox.partitions);
    checks[`relay ${relay.owner}`] = { ok, detail: `${held} partition(s) held` };
  }
  return { ready: Object.values(checks).every((check) => check.ok), checks };
}

/** Where `serveMetrics` listens and what its `/readyz` checks. */
export interface ServeMetricsOptions extends MetricsSources {
  /** Port; 0 picks a free one. */
  readonly port: number;
  /** Address to bind. Default 127.0.0.1 (loopback only). */
  readonly host?: string;
}

/** A running metrics endpoint; `close()` stops listening and resolves once the server has closed. */
export interface MetricsServer {
  /** `http://host:port`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves `/metrics` (Prometheus text), `/healthz` (200 while the event loop answers) and
 * `/readyz` (200 when the database and broker answer and relays hold leases, else 503 with
 * the failing checks as JSON). Resolves once listening.
 */
export async function serveMetrics(options: ServeMetricsOptions): Promise<MetricsServer> {
  const { port, host = '127.0.0.1', ...source } = options;
  const forget = observe(source);
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const reply = (status: number, type: string, body: string): void => {
      response.writeHead(status, { 'content-type': type }).end(body);
    };
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      reply(405, 'text/plain', 'method not allowed\n');
    } else if (path === '/metrics') {
      renderMetrics().then(
        (text) => reply(200, metricsRegistry.contentType, text),
        (error: unknown) => reply(500, 'text/plain', `${String(error)}\n`),
      );
    } else if (path === '/healthz') {
      reply(200, 'text/plain', 'ok\n');
    } else if (path === '/readyz') {
      void readiness(source).then(({ ready, checks }) =>
        reply(ready ? 200 : 503, 'application/json', `${JSON.stringify({ ready, checks })}\n`),
      );
    } else {
      reply(404, 'text/plain', 'not found: try /metrics, /healthz or /readyz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (cause) => {
      forget();
      reject(
        new FerryError(
          'INVALID_ARGUMENT',
          `Cannot serve metrics on ${host}:${port}: ${cause.message}`,
          {
            cause,
          },
        ),
      );
    });
    server.listen(port, host, resolve);
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shown}:${address.port}`,
    async close() {
      forget();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
    },
  };
}

/** Parses `host:port` or `:port` (host defaults to 127.0.0.1). */
export function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port > 65535) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `Expected host:port for the metrics endpoint (e.g. 127.0.0.1:9464), got ${JSON.stringify(text)}`,
    );
  }
  return { host: match[1] ?? (match[2] || '127.0.0.1'), port };
}
