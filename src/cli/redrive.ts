import type { Command } from 'commander';
import { redrive } from '../core/redrive.js';
import { assertTopicName } from '../core/topic.js';
import { openTransport } from '../transport/urls.js';
import { action, positiveInteger, transportOption } from './common.js';

export function redriveCommand(program: Command): void {
  program
    .command('redrive')
    .description('move dead letters of a topic (<topic>.dlq) back so they are handled again')
    .argument('<topic>', 'topic whose dead letters to move')
    .addOption(transportOption())
    .option('-g, --group <group>', 'only the dead letters of this consumer group')
    .option('-n, --limit <count>', 'move at most this many', positiveInteger('--limit'))
    .addHelpText(
      'after',
      '\nExample:\n  ferry redrive order.created --group billing -t amqp://guest:guest@127.0.0.1:5672',
    )
    .action(
      action(
        async (topic: string, flags: { transport: string; group?: string; limit?: number }) => {
          assertTopicName(topic);
          const transport = await openTransport(flags.transport);
          try {
            const { moved, kept } = await redrive(transport, topic, {
              ...(flags.group === undefined ? {} : { group: flags.group }),
              ...(flags.limit === undefined ? {} : { limit: flags.limit }),
            });
            process.stdout.write(
              `moved ${moved} dead letters back to ${topic}${kept ? `, left ${kept} of other groups` : ''}\n`,
            );
          } finally {
            await transport.close({ timeoutMs: 5000 });
          }
        },
      ),
    );
}
