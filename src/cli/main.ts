#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { adviseCommand } from './advise.js';
import { reportError } from './common.js';
import { consoleCommand } from './console/index.js';
import { demoCommand } from './demo/index.js';
import { migrateCommand } from './migrate.js';
import { USAGE_EXIT_CODE } from './options.js';
import { outboxCommand } from './outbox.js';
import { publishCommand } from './publish.js';
import { redriveCommand } from './redrive.js';
import { relayCommand } from './relay.js';
import { replayCommand } from './replay.js';
import { tailCommand } from './tail.js';

const { version } = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
) as { version: string };

const program = new Command('ferry')
  .description('reliable messaging for TypeScript services')
  .version(version)
  .exitOverride()
  // One line per usage error, prefixed like every other ferry error; help stays one flag away.
  .configureOutput({
    outputError: (text, write) => write(`ferry: ${text.replace(/^error: /, '')}`),
  });

publishCommand(program);
tailCommand(program);
replayCommand(program);
redriveCommand(program);
adviseCommand(program);
demoCommand(program);
migrateCommand(program);
relayCommand(program);
outboxCommand(program);
consoleCommand(program);

try {
  await program.parseAsync();
} catch (error) {
  // Help and version exit 0; every other commander error is a command line that cannot run.
  if (error instanceof CommanderError)
    process.exitCode = error.exitCode === 0 ? 0 : USAGE_EXIT_CODE;
  else reportError(error);
}
