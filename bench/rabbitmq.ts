// ferry/rabbitmq against raw amqplib on the same broker with the same settings: confirm
// channel, persistent messages, an in-flight window of 1000, one durable queue bound.
import { randomBytes } from 'node:crypto';
import amqp from 'amqplib';
import { HEADER, newMessageId, type OutgoingMessage, type Transport } from '../src/index.js';
import { rabbitmq } from '../src/transports/rabbitmq/amqp/index.js';
import type { BenchCase, BenchGroup } from './harness.js';

const MESSAGES = 20_000;
const WINDOW = 1000;
const PREFETCH = 100;
const body = Buffer.from(
  JSON.stringify({ orderId: 'o-123456', amount: 42.5, note: 'x'.repeat(150) }),
);

const messages = (topic: string): OutgoingMessage[] =>
  Array.from({ length: MESSAGES }, (_, i) => ({
    topic,
    key: `k${i % 64}`,
    body,
    headers: {
      [HEADER.id]: newMessageId(),
      [HEADER.createdAt]: new Date().toISOString(),
      [HEADER.contentType]: 'application/json',
    },
  }));

/** Raw amqplib: confirm channel (or plain), same window, same properties ferry sends. */
export async function rawPublish(
  connection: amqp.ChannelModel,
  exchange: string,
  batch: readonly OutgoingMessage[],
  confirms: boolean,
): Promise<void> {
  const channel = confirms
    ? await connection.createConfirmChannel()
    : await connection.createChannel();
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const pending: Promise<void>[] = [];
  for (const message of batch) {
    while (confirms && inFlight >= WINDOW) await new Promise<void>((r) => (wake = r));
    const options: amqp.Options.Publish = {
      persistent: true,
      messageId: message.headers[HEADER.id] ?? '',
      contentType: 'application/json',
      timestamp: Math.floor(Date.now() / 1000),
      headers: { [HEADER.createdAt]: message.headers[HEADER.createdAt], 'ferry-key': message.key },
    };
    if (confirms) {
      inFlight++;
      pending.push(
        new Promise<void>((resolve, reject) => {
          (channel as amqp.ConfirmChannel).publish(
            exchange,
            message.key ?? '',
            message.body,
            options,
            (error: unknown) => {
              inFlight--;
              wake?.();
              if (error) reject(error instanceof Error ? error : new Error('nacked'));
              else resolve();
            },
          );
        }),
      );
    } else if (!channel.publish(exchange, message.key ?? '', message.body, options)) {
      await new Promise((r) => channel.once('drain', r));
    }
  }
  await Promise.all(pending);
  await channel.close();
}

/** Publish 20,000 with confirms; consume 20,000 with prefetch 100, acking each. */
export function rabbitmqGroups(): BenchGroup[] {
  const url = process.env.FERRY_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
  const prefix = `bench-${randomBytes(3).toString('hex')}.`;
  let connection: amqp.ChannelModel | undefined;
  let ferry: Transport | undefined;
  const open = async (): Promise<amqp.ChannelModel> => (connection ??= await amqp.connect(url));

  // Every round gets its own exchange and queue, declared as ferry declares them.
  let topic = '';
  let exchange = '';
  let queue = '';
  let outgoing: OutgoingMessage[] = [];
  const declare = async (): Promise<void> => {
    topic = `t-${randomBytes(4).toString('hex')}`;
    exchange = `${prefix}${topic}`;
    queue = `${exchange}:g`;
    const channel = await (await open()).createChannel();
    await channel.assertExchange(exchange, 'topic', { durable: true });
    await channel.assertQueue(queue, { durable: true });
    await channel.bindQueue(queue, exchange, '#');
    await channel.close();
    outgoing = messages(topic);
  };
  const drop = async (): Promise<void> => {
    const channel = await (await open()).createChannel();
    await channel.deleteQueue(queue);
    await channel.deleteExchange(exchange);
    await channel.close();
  };
  const waitForDepth = async (depth: number): Promise<void> => {
    const channel = await (await open()).createChannel();
    while ((await channel.checkQueue(queue)).messageCount < depth) {
      await new Promise((r) => setTimeout(r, 5));
    }
    await channel.close();
  };
  const close = async (): Promise<void> => {
    await ferry?.close();
    ferry = undefined;
    await connection?.close();
    connection = undefined;
  };

  const publishRaw: BenchCase = {
    name: `raw amqplib, confirms, window ${WINDOW}`,
    setup: declare,
    async round() {
      await rawPublish(await open(), exchange, outgoing, true);
      return MESSAGES;
    },
    teardown: drop,
  };
  const publishFerry: BenchCase = {
    name: `ferry rabbitmq publish (confirms, window ${WINDOW})`,
    async setup() {
      await declare();
      if (!ferry) {
        // Connected before timing starts, like the raw client's connection.
        ferry = rabbitmq({ url, prefix, maxInFlight: WINDOW });
        await ferry.lag?.('warm-up', 'none');
      }
    },
    async round() {
      await ferry?.publish(outgoing);
      return MESSAGES;
    },
    teardown: drop,
  };
  const publishNoConfirms: BenchCase = {
    name: 'raw amqplib, confirms off (until the queue holds all)',
    setup: declare,
    async round() {
      await rawPublish(await open(), exchange, outgoing, false);
      await waitForDepth(MESSAGES);
      return MESSAGES;
    },
    teardown: drop,
  };

  // Consume: the queue is filled untimed by the raw client; timed until the last message.
  const filled = async (): Promise<void> => {
    await declare();
    await rawPublish(await open(), exchange, outgoing, true);
  };
  const consumeRaw: BenchCase = {
    name: `raw amqplib, prefetch ${PREFETCH}, ack each`,
    setup: filled,
    async round() {
      const channel = await (await open()).createChannel();
      await channel.prefetch(PREFETCH);
      let seen = 0;
      await new Promise<void>((resolve) => {
        void channel.consume(queue, (message) => {
          if (!message) return;
          channel.ack(message);
          if (++seen === MESSAGES) resolve();
        });
      });
      await channel.close();
      return MESSAGES;
    },
    teardown: drop,
  };
  const consumeFerry: BenchCase = {
    name: `ferry rabbitmq subscribe, prefetch ${PREFETCH}`,
    setup: filled,
    async round() {
      const transport = rabbitmq({ url, prefix, prefetch: PREFETCH });
      let seen = 0;
      let done!: () => void;
      const all = new Promise<void>((r) => (done = r));
      const subscription = await transport.subscribe({ topic, group: 'g' }, async () => {
        if (++seen === MESSAGES) done();
      });
      await all;
      await subscription.close();
      await transport.close();
      return MESSAGES;
    },
    teardown: drop,
  };

  const note = `${body.length} B persistent messages into one durable queue; a fresh exchange and queue per round.`;
  return [
    {
      title: `RabbitMQ: publish ${MESSAGES.toLocaleString('en')}`,
      note: `${note} The confirms-off row shows what publisher confirms cost the raw client.`,
      requires: 'FERRY_AMQP_URL',
      cases: [publishRaw, publishFerry, publishNoConfirms],
      teardown: close,
    },
    {
      title: `RabbitMQ: consume ${MESSAGES.toLocaleString('en')}`,
      note: `${note} Filled untimed; timed from subscribing to the last message.`,
      requires: 'FERRY_AMQP_URL',
      cases: [consumeRaw, consumeFerry],
      teardown: close,
    },
  ];
}
