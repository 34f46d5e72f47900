// ferry's kafka transport against raw @platformatic/kafka with the same settings: idempotent
// producer, acks=all, the same batches; a group consumer reading the same records.
// Run: FERRY_KAFKA_BROKERS=127.0.0.1:9092 npx tsx bench/kafka.ts
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  Admin,
  Consumer,
  ProduceAcks,
  Producer,
  stringDeserializer,
  stringSerializer,
} from '@platformatic/kafka';
import { buildOutgoing, newMessageId, type OutgoingMessage } from '../src/message.js';
import { kafka } from '../src/transports/kafka.js';

const brokers = (process.env.FERRY_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const MESSAGES = Number(process.env.MESSAGES ?? 20_000);
const BATCH = Number(process.env.BATCH ?? 100);
const CONSUME = Number(process.env.CONSUME ?? 100_000);
const PARTITIONS = 8;
const BODY = Buffer.from(
  JSON.stringify({ orderId: 'o-123456', amount: 4200, note: 'x'.repeat(180) }),
);

const name = (prefix: string): string =>
  `bench.${prefix}.${Date.now()}.${randomBytes(3).toString('hex')}`;
const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

function messages(topic: string, count = MESSAGES): OutgoingMessage[] {
  return Array.from({ length: count }, (_, i) =>
    buildOutgoing({
      id: newMessageId(),
      topic,
      key: `customer-${i % 500}`,
      body: BODY,
      contentType: 'application/json',
      createdAt: new Date(),
    }),
  );
}

const toRaw = (m: OutgoingMessage) => ({
  topic: m.topic,
  key: m.key as string,
  value: m.body,
  headers: m.headers,
});

const admin = new Admin({ clientId: 'bench-admin', bootstrapBrokers: brokers });
async function createTopic(topic: string): Promise<void> {
  await admin.createTopics({ topics: [topic], partitions: PARTITIONS });
}

function rawProducer(): Producer<string, Buffer, string, string> {
  return new Producer<string, Buffer, string, string>({
    clientId: 'bench-raw',
    bootstrapBrokers: brokers,
    idempotent: true,
    acks: ProduceAcks.ALL,
    serializers: {
      key: stringSerializer,
      headerKey: stringSerializer,
      headerValue: stringSerializer,
    },
  });
}

/** messages/s publishing MESSAGES in sequential batches of BATCH, each awaited until acked. */
async function produceRaw(): Promise<number> {
  const topic = name('raw-produce');
  await createTopic(topic);
  const producer = rawProducer();
  const all = messages(topic);
  await producer.send({ messages: [{ topic, key: 'warm', value: BODY }] });
  const started = performance.now();
  for (let i = 0; i < all.length; i += BATCH) {
    await producer.send({ messages: all.slice(i, i + BATCH).map(toRaw) });
  }
  const rate = MESSAGES / ((performance.now() - started) / 1000);
  await producer.close();
  return rate;
}

async function produceFerry(): Promise<number> {
  const topic = name('ferry-produce');
  await createTopic(topic);
  const transport = kafka({ brokers, partitions: PARTITIONS });
  const all = messages(topic);
  await transport.publish([{ topic, key: 'warm', body: BODY, headers: {} }]);
  const started = performance.now();
  for (let i = 0; i < all.length; i += BATCH) await transport.publish(all.slice(i, i + BATCH));
  const rate = MESSAGES / ((performance.now() - started) / 1000);
  await transport.close();
  return rate;
}

/** A topic holding CONSUME records, written by the raw producer. */
async function filledTopic(): Promise<string> {
  const topic = name('consume');
  await createTopic(topic);
  const producer = rawProducer();
  const all = messages(topic, CONSUME);
  for (let i = 0; i < all.length; i += 1000) {
    await producer.send({ messages: all.slice(i, i + 1000).map(toRaw) });
  }
  await producer.close();
  return topic;
}

/** messages/s from joining the group to the last record; a new group from the earliest offset. */
async function consumeRaw(topic: string): Promise<number> {
  const consumer = new Consumer<string, Buffer, string, string>({
    clientId: 'bench-raw',
    bootstrapBrokers: brokers,
    groupId: name('raw-group'),
    autocommit: 100,
    maxWaitTime: 500,
    deserializers: {
      key: stringDeserializer,
      headerKey: stringDeserializer,
      headerValue: stringDeserializer,
    },
  });
  const started = performance.now();
  const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: 100 });
  let count = 0;
  const rate = await new Promise<number>((resolve) => {
    stream.on('data', () => {
      if (++count === CONSUME) resolve(CONSUME / ((performance.now() - started) / 1000));
    });
  });
  await stream.close();
  await consumer.close();
  return rate;
}

async function consumeFerry(topic: string): Promise<number> {
  const transport = kafka({ brokers, partitions: PARTITIONS, maxWaitMs: 500 });
  let count = 0;
  let finish: (rate: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (finish = resolve));
  const started = performance.now();
  await transport.subscribe({ topic, group: name('ferry-group'), from: 'earliest' }, async () => {
    if (++count === CONSUME) finish(CONSUME / ((performance.now() - started) / 1000));
  });
  const rate = await done;
  await transport.close();
  return rate;
}

const results = {
  produceRaw: [] as number[],
  produceFerry: [] as number[],
  consumeRaw: [] as number[],
  consumeFerry: [] as number[],
};
for (let round = 0; round < ROUNDS; round++) {
  // Alternate who goes first so warm-up and broker state favour neither.
  const rawFirst = round % 2 === 0;
  if (rawFirst) results.produceRaw.push(await produceRaw());
  results.produceFerry.push(await produceFerry());
  if (!rawFirst) results.produceRaw.push(await produceRaw());
  const topic = await filledTopic();
  if (rawFirst) results.consumeRaw.push(await consumeRaw(topic));
  results.consumeFerry.push(await consumeFerry(topic));
  if (!rawFirst) results.consumeRaw.push(await consumeRaw(topic));
  process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`);
}
await admin.close();

const format = (n: number): string => Math.round(n).toLocaleString('en');
const row = (label: string, raw: number[], ours: number[]): string =>
  `| ${label} | ${format(median(raw))} | ${format(median(ours))} | ${(median(ours) / median(raw)).toFixed(2)}× |`;
console.log(
  [
    `kafka: ${BODY.length} B messages, ${PARTITIONS} partitions, idempotent producer, acks=all; median of ${ROUNDS} rounds (messages/s)`,
    `produce: ${MESSAGES} messages in batches of ${BATCH}, each awaited; consume: ${CONSUME} messages, join to last`,
    '',
    '| case | raw @platformatic/kafka | ferry | ferry / raw |',
    '|---|---:|---:|---:|',
    row('produce', results.produceRaw, results.produceFerry),
    row('consume (group)', results.consumeRaw, results.consumeFerry),
  ].join('\n'),
);
