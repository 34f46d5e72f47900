import type { Command } from 'commander';
import { assertTopicName } from '../core/topic.js';
import { openTransport } from '../transport/urls.js';
import type { SeekTarget } from '../transport/transport.js';
import { action, transportOption } from './common.js';
import { fromFerryParser } from './options.js';
import { parseSeekTarget } from './positions.js';

export function replayCommand(program: Command): void {
  program
    .command('replay')
    .description("move a consumer group's position on a topic (stop its consumers first)")
    .argument('<topic>', 'topic name')
    .requiredOption('-g, --group <group>', 'consumer group to move')
    .requiredOption(
      '--to <position>',
      'earliest | latest | an ISO time | partition:offset,...',
      fromFerryParser(parseSeekTarget),
    )
    .addOption(transportOption())
    .addHelpText(
      'after',
      '\nExamples:\n  ferry replay order.created --group billing --to 2026-01-31T00:00:00Z\n  ferry replay order.created --group billing --to 0:120,1:98',
    )
    .action(
      action(async (topic: string, flags: { group: string; to: SeekTarget; transport: string }) => {
        assertTopicName(topic);
        const transport = await openTransport(flags.transport);
        try {
          await transport.seek(topic, flags.group, flags.to);
          process.stdout.write(
            `group ${flags.group} on ${topic} moved to ${describeTarget(flags.to)}\n`,
          );
          if (transport.lag) {
            const total = (await transport.lag(topic, flags.group)).reduce(
              (sum, lag) => sum + lag.lag,
              0,
            );
            process.stdout.write(`${total} messages will be delivered again\n`);
          }
        } finally {
          await transport.close();
        }
      }),
    );
}

function describeTarget(target: SeekTarget): string {
  if ('position' in target) return target.position;
  if ('timestamp' in target) return target.timestamp.toISOString();
  return Object.entries(target.offsets)
    .map(([partition, offset]) => `${partition}:${offset}`)
    .join(',');
}
