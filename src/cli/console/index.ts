import { Option, type Command } from 'commander';
import { createLogger } from '../../core/log.js';
import { openTransport, parseUrl } from '../../transport/urls.js';
import { openStore } from '../open-store.js';
import { action, transportOption, untilSignal } from '../common.js';
import { dbOption } from '../db.js';
import { hostPort } from '../options.js';
import { startConsole } from './server.js';

interface ConsoleFlags {
  db: string;
  transport: string;
  listen: { host: string; port: number };
  allowActions?: boolean;
  hidePayloads?: boolean;
  topic: string[];
  group: string[];
  audit?: string;
}

export function consoleCommand(program: Command): void {
  program
    .command('console')
    .description('a web page over the outbox, relays, consumer lag and dead letters')
    .addOption(dbOption())
    .addOption(transportOption())
    .addOption(
      new Option('--listen <host:port>', 'where to serve the page')
        .argParser(hostPort())
        .default({ host: '127.0.0.1', port: 7070 }, '127.0.0.1:7070'),
    )
    .option('--allow-actions', 'offer retry, skip and re-drive (each one confirmed and audited)')
    .option('--hide-payloads', 'never show message payloads')
    .option('--topic <name>', 'also show this topic (repeatable)', collect, [])
    .option('--group <name>', 'also show this consumer group (repeatable)', collect, [])
    .option('--audit <path>', 'append the audit lines of actions to this file (default stderr)')
    .addHelpText(
      'after',
      '\nExample:\n  ferry console --db sqlite:./app.db --transport sqlite:./ferry.db\n\nPrints the URL to open (with its access token) on stdout.',
    )
    .action(
      action(async (flags: ConsoleFlags) => {
        const { host, port } = flags.listen;
        const store = await openStore(flags.db);
        const transport = await openTransport(flags.transport).catch(async (error: unknown) => {
          await store.close();
          throw error;
        });
        try {
          const server = await startConsole({
            store,
            transport,
            host,
            port,
            allowActions: flags.allowActions ?? false,
            hidePayloads: flags.hidePayloads ?? false,
            topics: flags.topic,
            groups: flags.group,
            // Actions are rare and each one matters: recorded whatever FERRY_LOG_LEVEL says.
            audit: createLogger({
              level: 'info',
              ...(flags.audit === undefined ? {} : { destination: flags.audit }),
            }),
            dbLabel: displayUrl(flags.db),
            transportLabel: displayUrl(flags.transport),
          });
          process.stdout.write(
            `ferry console on ${server.url}\nopen ${server.loginUrl}\n${flags.allowActions ? 'actions are on\n' : ''}`,
          );
          await untilSignal();
          await server.close();
        } finally {
          await transport.close({ timeoutMs: 5000 });
          await store.close();
        }
      }),
    );
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** A URL as the page shows it: scheme, host and path, never a credential or a parameter. */
export function displayUrl(text: string): string {
  const url = parseUrl(text, 'connection');
  if (url.host === '' && !url.href.includes('//')) return `${url.protocol}${url.pathname}`;
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
}
