import type { Command } from 'commander';
import { FerryError } from '../errors.js';
import { createLogger, redactUrl } from '../log.js';
import type { RelayOptions } from '../outbox/relay.js';
import { openStore, openTransport } from '../urls.js';
import { action, positiveInteger, transportOption, untilSignal } from './common.js';
import { dbOption, parseDuration } from './db.js';

interface RelayFlags {
  db: string;
  transport: string;
  owner?: string;
  leaseMs?: number;
  batchSize?: number;
  maxAttempts?: number;
  retention: string;
  stats: string;
  stopTimeout: string;
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
      '--max-attempts <n>',
      'publish attempts before a row is dead (default 10)',
      positiveInteger('--max-attempts'),
    )
    .option('--retention <duration>', "delete published rows older than this, or 'keep'", '24h')
    .option('--stats <duration>', "print a stats line this often ('0' = never)", '30s')
    .option(
      '--stop-timeout <duration>',
      'on SIGTERM/SIGINT, wait this long for the batch in flight',
      '10s',
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
        try {
          try {
            await opened.store.liveRelays();
          } catch (cause) {
            throw new FerryError(
              'STORE_FAILED',
              `Cannot read the outbox tables of ${redactUrl(flags.db)}; run ferry migrate --db first`,
              { cause },
            );
          }
          const options: RelayOptions = {
            transport,
            logger: createLogger(),
            retention:
              flags.retention === 'keep' ? 'keep' : { afterMs: parseDuration(flags.retention) },
            ...(flags.owner === undefined ? {} : { owner: flags.owner }),
            ...(flags.leaseMs === undefined ? {} : { leaseMs: flags.leaseMs }),
            ...(flags.batchSize === undefined ? {} : { batchSize: flags.batchSize }),
            ...(flags.maxAttempts === undefined ? {} : { maxAttempts: flags.maxAttempts }),
          };
          const relay = opened.outbox.relay(options);
          await relay.start();
          const line = (event: string): void => {
            process.stdout.write(
              `${JSON.stringify({ event, at: new Date().toISOString(), ...relay.stats() })}\n`,
            );
          };
          line('relay-started');
          const every = parseDuration(flags.stats);
          const timer = every > 0 ? setInterval(() => line('relay-stats'), every) : undefined;
          await untilSignal();
          if (timer) clearInterval(timer);
          await relay.stop({ timeoutMs: parseDuration(flags.stopTimeout) });
          line('relay-stopped');
        } finally {
          await transport.close({ timeoutMs: 5000 });
          await opened.close();
        }
      }),
    );
}
