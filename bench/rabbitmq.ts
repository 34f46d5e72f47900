/**
 * ferry/rabbitmq vs raw amqplib, same broker, same settings (confirm channel, persistent
 * messages, in-flight window, one durable queue bound), median of several rounds.
 *
 *   FERRY_AMQP_URL=amqp://guest:guest@127.0.0.1:5672 npx tsx bench/rabbitmq.ts [messages] [rounds]
 */
import amqp from 'amqplib';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { HEADER, newMessageId, type OutgoingMessage } from '../src/message.js';
import { rabbitmq } from '../src/transports/rabbitmq/index.js';

const url = process.env.FERRY_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const total = Number(process.argv[2] ?? 20_000);
const rounds = Number(process.argv[3] ?? 5);
const window = 1000;
const prefix = `bench-${randomBytes(3).toString('hex')}.`;
const body = Buffer.from(
  JSON.stringify({ orderId: 'o-123456', amount: 42.5, note: 'x'.repeat(150) }),
);

const messages = (topic: string): OutgoingMessage[] =>
  Array.from({ length: total }, (_, i) => ({
    topic,
    key: `k${i % 64}`,
    body,
    headers: {
      [HEADER.id]: newMessageId(),
      [HEADER.createdAt]: new Date().toISOString(),
      [HEADER.contentType]: 'application/json',
    },
  }));

/** Exchange + durable queue, as ferry declares them, and a cleanup. */
async function topology(connection: amqp.ChannelModel, topic: string) {
  const channel = await connection.createChannel();
  const exchange = `${prefix}${topic}`;
  const queue = `${exchange}:g`;
  await channel.assertExchange(exchange, 'topic', { durable: true });
  await channel.assertQueue(queue, { durable: true });
  await channel.bindQueue(queue, exchange, '#');
  return {
    exchange,
    queue,
    drop: async () => {
      await channel.deleteQueue(queue);
      await channel.deleteExchange(exchange);
      await channel.close();
    },
  };
}

/** Raw amqplib: confirm channel (or plain), same window, same properties ferry sends. */
async function rawPublish(
  connection: amqp.ChannelModel,
  exchange: string,
  batch: OutgoingMessage[],
  confirms: boolean,
): Promise<void> {
  const channel = confirms
    ? await connection.createConfirmChannel()
    : await connection.createChannel();
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const pending: Promise<void>[] = [];
  for (const message of batch) {
    while (confirms && inFlight >= window) await new Promise<void>((r) => (wake = r));
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
          const more = (channel as amqp.ConfirmChannel).publish(
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
          void more;
        }),
      );
    } else if (!channel.publish(exchange, message.key ?? '', message.body, options)) {
      await new Promise((r) => channel.once('drain', r));
    }
  }
  await Promise.all(pending);
  // Without confirms the broker may still be taking them in: wait until the queue holds all.
  await channel.close();
}

async function waitForDepth(connection: amqp.ChannelModel, queue: string, depth: number) {
  const channel = await connection.createChannel();
  while ((await channel.checkQueue(queue)).messageCount < depth) {
    await new Promise((r) => setTimeout(r, 5));
  }
  await channel.close();
}

async function rawConsume(connection: amqp.ChannelModel, queue: string): Promise<void> {
  const channel = await connection.createChannel();
  await channel.prefetch(100);
  let seen = 0;
  await new Promise<void>((resolve) => {
    void channel.consume(queue, (message) => {
      if (!message) return;
      channel.ack(message);
      if (++seen === total) resolve();
    });
  });
  await channel.close();
}

type Case = {
  name: string;
  run: (
    connection: amqp.ChannelModel,
    topic: string,
    exchange: string,
    queue: string,
  ) => Promise<void>;
};

const cases: Case[] = [
  {
    name: 'publish: raw amqplib, confirms, window 1000',
    run: (c, topic, exchange) => rawPublish(c, exchange, messages(topic), true),
  },
  {
    name: 'publish: ferry rabbitmq (confirms, window 1000)',
    run: async (_, topic) => {
      await ferry.publish(messages(topic));
    },
  },
  {
    name: 'publish: raw amqplib, no confirms',
    run: async (c, topic, exchange, queue) => {
      await rawPublish(c, exchange, messages(topic), false);
      await waitForDepth(c, queue, total);
    },
  },
  {
    name: 'consume: raw amqplib, prefetch 100, ack each',
    run: async (c, topic, exchange, queue) => {
      await rawPublish(c, exchange, messages(topic), true);
      const started = performance.now();
      await rawConsume(c, queue);
      timed.set('consume', performance.now() - started);
    },
  },
  {
    name: 'consume: ferry rabbitmq, prefetch 100',
    run: async (c, topic, exchange) => {
      await rawPublish(c, exchange, messages(topic), true);
      const transport = rabbitmq({ url, prefix, prefetch: 100 });
      let seen = 0;
      let done!: () => void;
      const all = new Promise<void>((r) => (done = r));
      const started = performance.now();
      const subscription = await transport.subscribe({ topic, group: 'g' }, async () => {
        if (++seen === total) done();
      });
      await all;
      timed.set('consume', performance.now() - started);
      await subscription.close();
      await transport.close();
    },
  },
];

// Consume cases time only the consuming part.
const timed = new Map<string, number>();
// Connected before timing starts, like the raw client's connection.
const ferry = rabbitmq({ url, prefix, maxInFlight: window });
await ferry.lag?.('warm-up', 'none');

async function main(): Promise<void> {
  const connection = await amqp.connect(url);
  const results = new Map<string, number[]>();
  for (let round = 0; round < rounds; round++) {
    for (const bench of cases) {
      const topic = `t${round}-${randomBytes(3).toString('hex')}`;
      const { exchange, queue, drop } = await topology(connection, topic);
      timed.delete('consume');
      const started = performance.now();
      await bench.run(connection, topic, exchange, queue);
      const ms = timed.get('consume') ?? performance.now() - started;
      await drop();
      const list = results.get(bench.name) ?? [];
      list.push((total / ms) * 1000);
      results.set(bench.name, list);
    }
  }
  await connection.close();
  await ferry.close();
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)] ?? 0;
  };
  const rate = (name: string) => median(results.get(name) ?? []);
  const rows: Array<[string, number, string]> = [
    [cases[0]!.name, rate(cases[0]!.name), '1.00 (baseline)'],
    [
      cases[1]!.name,
      rate(cases[1]!.name),
      (rate(cases[1]!.name) / rate(cases[0]!.name)).toFixed(2),
    ],
    [
      cases[2]!.name,
      rate(cases[2]!.name),
      `${(rate(cases[0]!.name) / rate(cases[2]!.name)).toFixed(2)} (confirms on / off)`,
    ],
    [cases[3]!.name, rate(cases[3]!.name), '1.00 (baseline)'],
    [
      cases[4]!.name,
      rate(cases[4]!.name),
      (rate(cases[4]!.name) / rate(cases[3]!.name)).toFixed(2),
    ],
  ];
  console.log(
    `\n${total} messages of ${body.length} bytes, median of ${rounds} rounds, ${url.replace(/:[^:@/]*@/, ':***@')}\n`,
  );
  console.log('| case | msg/s | ratio |');
  console.log('|---|---:|---:|');
  for (const [name, value, ratio] of rows) {
    console.log(`| ${name} | ${Math.round(value).toLocaleString('en-US')} | ${ratio} |`);
  }
}

await main();
