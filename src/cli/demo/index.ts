// `ferry demo`: the order flow on real parts — orders and their messages in one transaction,
// relays, three idempotent consumer groups — then a reconciliation read from the database.
import { Option, type Command } from 'commander';
import { action, positiveInteger, transportOption } from '../common.js';
import { dbOption } from '../db.js';
import type { DemoFlags } from './model.js';
import { runDemo } from './run.js';
import { worker } from './worker.js';

export function demoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'run the order flow: orders + outbox in one transaction, relays, three idempotent consumers; then reconcile',
    )
    .addOption(
      new Option('-d, --db <url>', 'database URL (default: a new SQLite file)').env('FERRY_DB'),
    )
    .addOption(transportOption().default(undefined, 'a new SQLite log'))
    .option('--orders <n>', 'orders to place', positiveInteger('--orders'), 1000)
    .option('--relays <n>', 'relay processes', positiveInteger('--relays'), 2)
    .option('--customers <n>', 'customers (message keys)', positiveInteger('--customers'), 50)
    .option('--chaos', 'SIGKILL a relay and a consumer mid-run and restart them')
    .option('--json', 'print only the summary, as one JSON object')
    .option(
      '--stall-timeout <ms>',
      'give up when nothing moves for this long',
      positiveInteger('--stall-timeout'),
      60_000,
    )
    .addHelpText(
      'after',
      '\nExamples:\n  ferry demo\n  ferry demo --orders 5000 --relays 2 --chaos\n  ferry demo --db postgres://postgres@127.0.0.1:5432/test --transport kafka://127.0.0.1:9092',
    )
    .action(
      action(async (flags: DemoFlags) => {
        const summary = await runDemo(flags);
        if (!summary.ok) process.exitCode = 1;
      }),
    );

  program
    .command('demo-worker', { hidden: true })
    .argument('<role>', 'orders | consumer')
    // URLs come from FERRY_DB and FERRY_TRANSPORT, never the command line, where anyone
    // running `ps` would read their passwords.
    .addOption(dbOption())
    .addOption(transportOption().makeOptionMandatory())
    .requiredOption('--run <id>')
    .requiredOption('--topic <name>')
    .option('--group <name>')
    .option('--orders <n>', 'orders', positiveInteger('--orders'), 1)
    .option('--customers <n>', 'customers', positiveInteger('--customers'), 1)
    .option('--paced', 'spread the orders over a few seconds')
    .action(action(worker));
}
