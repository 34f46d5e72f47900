import { resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { auditFromEnv, createLogger } from '../core/log.js';
import { parseListen, serveMetrics, type MetricsServer } from '../observability/server.js';
import type { Relay, RelayOptions } from '../outbox/relay/index.js';
import { openTransport, parseUrl } from '../transport/urls.js';
import { openStore } from './open-store.js';
import { action, positiveInteger, transportOption, untilSignal } from './common.js';
import { dbOption, onOutboxTables } from './db.js';
import { duration } from './options.js';

interface RelayFlags {
  db: string;
  transport: string;
  owner?: string;
  leaseMs?: number;
  batchSize?: number;
  gather?: number;
  maxAttempts?: number;
  retention: number | 'keep';
  stats: number;
  stopTimeout: number;
  metrics?: { host: string; port: number };
  audit?: boolean;
}

/** `host:port` or `:port` for the metrics endpoint. */
function listenAddress(value: string): { host: string; port: number } {
  try {
    return parseListen(value);
  } catch {
    throw new InvalidArgumentError('Expected host:port or :port (e.g. 127.0.0.1:9464).');
  }
}

export function relayCommand(program: Command): void {
  program
    .command('relay')
    .description('publish what the outbox holds (run as many as you like; they share partitions)')
    .addOption(dbOption())
    .addOption(transportOption())
    .option('--owner <id>', 'relay identity in the lease table (default host:pid:random)')
    .option('--lease-ms <ms>', 'lease time-to-live (default 10000)', positiveInteger('--lease-ms'))
    .option(
      '--batch-size <rows>',
      'rows per partition per round (default 500)',
      positiveInteger('--batch-size'),
    )
    .option(
      '--gather <duration>',
      'once woken, wait this long so that rows committed meanwhile go out together: less CPU at light loads, that much more latency (default 0)',
      duration({ zero: 'at once' }),
    )
    .option(
      '--max-attempts <n>',
      'publish attempts before a row is dead (default 10)',
      positiveInteger('--max-attempts'),
    )
    .option(
      '--retention <duration>',
      "delete published rows older than this, or 'keep' (default 24h)",
      duration({ word: 'keep' }),
      86_400_000,
    )
    .option(
      '--stats <duration>',
      "print a stats line this often, '0' = never (default 30s)",
      duration({ zero: 'never' }),
      30_000,
    )
    .option(
      '--stop-timeout <duration>',
      'on SIGTERM/SIGINT, wait this long for the batch in flight (default 10s)',
      duration({ zero: 'do not wait' }),
      10_000,
    )
    .option(
      '--metrics <host:port>',
      'serve /metrics (Prometheus), /healthz and /readyz here (host defaults to 127.0.0.1)',
      listenAddress,
    )
    .addOption(
      new Option('--audit', 'log one info line per published row (with its trace id)').env(
        'FERRY_AUDIT',
      ),
    )
    .addHelpText(
      'after',
      '\nExample:\n  ferry relay --db sqlite:./app.db --transport kafka://127.0.0.1:9092\n\nPrints one JSON stats line per --stats period on stdout; audit lines go to stderr.',
    )
    .action(
      action(async (flags: RelayFlags) => {
        const opened = await openStore(flags.db);
        const transport = await openTransport(flags.transport).catch(async (error: unknown) => {
          await opened.close();
          throw error;
        });
        let relay: Relay | undefined;
        let timer: NodeJS.Timeout | undefined;
        let server: MetricsServer | undefined;
        try {
          await onOutboxTables(flags.db, () => opened.store.liveRelays());
          const audit = flags.audit === true || auditFromEnv();
          const options: RelayOptions = {
            transport,
            destination: destinationOf(flags.transport),
            audit,
            logger: createLogger(audit ? { level: 'info' } : {}),
            retention: flags.retention === 'keep' ? 'keep' : { afterMs: flags.retention },
            ...(flags.owner === undefined ? {} : { owner: flags.owner }),
            ...(flags.leaseMs === undefined ? {} : { leaseMs: flags.leaseMs }),
            ...(flags.batchSize === undefined ? {} : { batchSize: flags.batchSize }),
            ...(flags.gather === undefined ? {} : { gatherMs: flags.gather }),
            ...(flags.maxAttempts === undefined ? {} : { maxAttempts: flags.maxAttempts }),
          };
          const running = opened.outbox.relay(options);
          relay = running;
          const line = (event: string): void => {
            process.stdout.write(
              `${JSON.stringify({ event, at: new Date().toISOString(), ...running.stats() })}\n`,
            );
          };
          await running.start();
          if (flags.metrics) {
            server = await serveMetrics({
              ...flags.metrics,
              outbox: opened.store,
              relays: [running],
              transport,
            });
          }
          line('relay-started');
          if (server)
            process.stdout.write(`${JSON.stringify({ event: 'metrics', url: server.url })}\n`);
          if (flags.stats > 0) timer = setInterval(() => line('relay-stats'), flags.stats);
          await untilSignal();
          clearInterval(timer);
          timer = undefined;
          await running.stop({ timeoutMs: flags.stopTimeout });
          line('relay-stopped');
        } finally {
          // Whatever failed, nothing keeps running behind the error: stop the relay, then close.
          clearInterval(timer);
          await server?.close();
          await relay?.stop({ timeoutMs: flags.stopTimeout }).catch(() => undefined);
          await transport.close({ timeoutMs: 5000 });
          await opened.close();
        }
      }),
    );
}

/**
 * The identity a relay registers for its transport: scheme and hosts (or the file of an
 * embedded log), never credentials or options.
 */
export function destinationOf(transportUrl: string): string {
  const url = parseUrl(transportUrl, 'transport');
  if (url.host === '') {
    const path = decodeURIComponent(url.pathname);
    return `${url.protocol}${path === '' ? '' : resolve(path)}`;
  }
  const hosts = [url.host, ...url.searchParams.getAll('host')].sort();
  return `${url.protocol}//${hosts.join(',')}`;
}
