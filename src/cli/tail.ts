import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { FerryError } from '../core/errors.js';
import { deliveryCreatedAt, deliveryId, HEADER, type Delivery } from '../core/message.js';
import { assertTopicName } from '../core/topic.js';
import type { SeekTarget } from '../transport/transport.js';
import { openTransport } from '../transport/urls.js';
import { action, positiveInteger, transportOption, untilSignal } from './common.js';
import { fromFerryParser } from './options.js';
import { parseSeekTarget } from './positions.js';

interface TailFlags {
  transport: string;
  group?: string;
  from: SeekTarget;
  limit?: number;
  json?: boolean;
  lag?: boolean;
}

export function tailCommand(program: Command): void {
  program
    .command('tail')
    .description('follow a topic and print its messages')
    .argument('<topic>', 'topic name')
    .addOption(transportOption())
    .option('-g, --group <group>', 'consume as this group (commits its position)')
    .option(
      '--from <position>',
      'earliest | latest | an ISO time',
      fromFerryParser(parseSeekTarget),
      { position: 'latest' } as SeekTarget,
    )
    .option('-n, --limit <count>', 'stop after this many messages', positiveInteger('--limit'))
    .option(
      '--json',
      'one JSON object per message; with --lag, one object {topic, group, partitions: [{partition, committed, end, lag}], total}',
    )
    .option('--lag', "print the group's lag per partition and exit")
    .addHelpText(
      'after',
      '\nExamples:\n  ferry tail order.created --from earliest\n  ferry tail order.created --group billing --lag',
    )
    .action(
      action(async (topic: string, flags: TailFlags) => {
        assertTopicName(topic);
        const transport = await openTransport(flags.transport);
        try {
          if (flags.lag) {
            await printLag(transport, topic, flags.group, flags.json === true);
            return;
          }
          let group = flags.group;
          let from: 'earliest' | 'latest' = 'latest';
          if ('position' in flags.from) {
            from = flags.from.position;
          } else {
            group ??= `ferry-tail-${randomBytes(4).toString('hex')}`;
            await transport.seek(topic, group, flags.from);
          }
          let seen = 0;
          let stop: () => void = () => undefined;
          const limitReached = new Promise<void>((resolve) => (stop = resolve));
          const subscription = await transport.subscribe(
            { topic, ...(group === undefined ? {} : { group }), from, concurrency: 1 },
            async (delivery) => {
              if (flags.limit !== undefined && seen >= flags.limit)
                throw new FerryError('CLOSED', 'limit reached');
              seen++;
              process.stdout.write(
                flags.json ? `${JSON.stringify(asJson(delivery))}\n` : `${asLine(delivery)}\n`,
              );
              if (flags.limit !== undefined && seen >= flags.limit) stop();
            },
          );
          await Promise.race([untilSignal(), limitReached]);
          await subscription.close({ timeoutMs: 5000 });
        } finally {
          await transport.close({ timeoutMs: 5000 });
        }
      }),
    );
}

async function printLag(
  transport: Awaited<ReturnType<typeof openTransport>>,
  topic: string,
  group: string | undefined,
  json: boolean,
): Promise<void> {
  if (group === undefined) throw new FerryError('INVALID_ARGUMENT', '--lag needs --group');
  if (!transport.lag)
    throw new FerryError('UNSUPPORTED', `${transport.name} cannot report consumer lag`);
  const lags = await transport.lag(topic, group);
  const total = lags.reduce((sum, lag) => sum + lag.lag, 0);
  if (json) {
    const partitions = lags.map(({ partition, committed, end, lag }) => ({
      partition,
      committed: committed ?? null,
      end,
      lag,
    }));
    process.stdout.write(`${JSON.stringify({ topic, group, partitions, total })}\n`);
    return;
  }
  process.stdout.write('partition  committed  end  lag\n');
  for (const lag of lags) {
    process.stdout.write(`${lag.partition}  ${lag.committed ?? '-'}  ${lag.end}  ${lag.lag}\n`);
  }
  process.stdout.write(`total lag: ${total}\n`);
}

function payloadOf(delivery: Delivery): unknown {
  const type = delivery.headers[HEADER.contentType];
  const text = delivery.body.toString('utf8');
  if (type === undefined || type.includes('json')) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return type === undefined ? text : { undecodable: delivery.body.toString('base64') };
    }
  }
  return type.startsWith('text/') ? text : { base64: delivery.body.toString('base64') };
}

function asJson(delivery: Delivery): Record<string, unknown> {
  return {
    // The publisher's id; where there is none, partition and offset say where it was read.
    id: deliveryId(delivery, 'none') ?? null,
    topic: delivery.topic,
    partition: delivery.partition,
    offset: delivery.offset,
    key: delivery.key ?? null,
    createdAt: deliveryCreatedAt(delivery).toISOString(),
    headers: delivery.headers,
    payload: payloadOf(delivery),
  };
}

function asLine(delivery: Delivery): string {
  const key = delivery.key === undefined ? '' : `  key=${delivery.key}`;
  return `${deliveryCreatedAt(delivery).toISOString()}  ${delivery.topic}[${delivery.partition}]@${delivery.offset}${key}  id=${deliveryId(delivery, 'none') ?? '-'}  ${JSON.stringify(payloadOf(delivery))}`;
}
