import type { Command } from 'commander';
import { createBus } from '../core/bus.js';
import { createLogger } from '../core/log.js';
import { defineTopic } from '../core/topic.js';
import { openTransport } from '../transport/urls.js';
import { action, collectHeader, parseJsonPayload, transportOption } from './common.js';
import { fileContents } from './options.js';

interface PublishFlags {
  transport: string;
  key?: string;
  header?: Record<string, string>;
  file?: string;
}

export function publishCommand(program: Command): void {
  program
    .command('publish')
    .description('publish one JSON message to a topic')
    .argument('<topic>', 'topic name')
    .argument('[payload]', 'JSON payload (default: read from --file or stdin)')
    .addOption(transportOption())
    .option('-k, --key <key>', 'message key: same key, same partition, kept in order')
    .option('-H, --header <name=value>', 'a header (repeatable)', collectHeader)
    .option('-f, --file <path>', 'read the JSON payload from a file', fileContents)
    .addHelpText(
      'after',
      `\nExample:\n  ferry publish order.created '{"orderId":"o-1"}' --key o-1 -t sqlite:./ferry.db`,
    )
    .action(
      action(async (topicName: string, payloadText: string | undefined, flags: PublishFlags) => {
        const text = payloadText ?? flags.file ?? (await readStdin());
        const payload = parseJsonPayload(text);
        const topic = defineTopic(topicName);
        const bus = createBus({
          transport: await openTransport(flags.transport),
          logger: createLogger(),
        });
        try {
          const { id } = await bus.publish(topic, payload, {
            ...(flags.key === undefined ? {} : { key: flags.key }),
            ...(flags.header === undefined ? {} : { headers: flags.header }),
          });
          process.stdout.write(`published ${id} to ${topic.name}\n`);
        } finally {
          await bus.close();
        }
      }),
    );
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
