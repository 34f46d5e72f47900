import type { Command } from 'commander';
import { redactUrl } from '../core/log.js';
import { openStore } from './open-store.js';
import { action } from './common.js';
import { dbOption } from './db.js';

export function migrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('create the outbox and inbox tables (idempotent)')
    .addOption(dbOption())
    .addHelpText('after', '\nExample:\n  ferry migrate --db sqlite:./app.db?partitions=16')
    .action(
      action(async (flags: { db: string }) => {
        const opened = await openStore(flags.db);
        try {
          await opened.migrate();
          process.stdout.write(
            `migrated ${redactUrl(flags.db)}: outbox with ${opened.store.partitions} partitions, inbox\n`,
          );
        } finally {
          await opened.close();
        }
      }),
    );
}
