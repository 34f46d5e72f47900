// ferry's kafka transport against raw @platformatic/kafka with the same settings: idempotent
// producer, acks=all, the same batches; a group consumer reading the same records.
import { randomBytes } from 'node:crypto';
import {
  Admin,
  Consumer,
  ProduceAcks,
  Producer,
  stringDeserializer,
  stringSerializer,
} from '@platformatic/kafka';
import { buildOutgoing, newMessageId, type OutgoingMessage } from '../src/core/message.js';
import type { Transport } from '../src/transport/transport.js';
import { kafka } from '../src/transports/kafka/transport.js';
import type { BenchCase, BenchGroup } from './harness.js';

const MESSAGES = 20_000;
const BATCH = 100;
const CONSUME = 50_000;
const PARTITIONS = 8;
const BODY = Buffer.from(
  JSON.stringify({ orderId: 'o-123456', amount: 4200, note: 'x'.repeat(180) }),
);

const name = (prefix: string): string =>
  `bench.${prefix}.${Date.now()}.${randomBytes(3).toString('hex')}`;

function messages(topic: string, count: number): OutgoingMessage[] {
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

/** Publish 20,000 in awaited batches of 100; consume 50,000 as a new group from the start. */
export function kafkaGroups(): BenchGroup[] {
  const brokers = (process.env.FERRY_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
  let admin: Admin | undefined;
  const topics = new Set<string>();
  const groups = new Set<string>();

  const createTopic = async (prefix: string): Promise<string> => {
    const topic = name(prefix);
    admin ??= new Admin({ clientId: 'bench-admin', bootstrapBrokers: brokers });
    await admin.createTopics({ topics: [topic], partitions: PARTITIONS });
    topics.add(topic);
    return topic;
  };
  const dropTopic = async (topic: string | undefined): Promise<void> => {
    if (topic === undefined || !admin) return;
    await admin.deleteTopics({ topics: [topic] });
    topics.delete(topic);
  };
  const cleanUp = async (): Promise<void> => {
    if (!admin) return;
    if (groups.size > 0) await admin.deleteGroups({ groups: [...groups] }).catch(() => undefined);
    groups.clear();
    if (topics.size > 0) await admin.deleteTopics({ topics: [...topics] });
    topics.clear();
    await admin.close();
    admin = undefined;
  };
  const newGroup = (prefix: string): string => {
    const group = name(prefix);
    groups.add(group);
    return group;
  };

  const rawProducer = (): Producer<string, Buffer, string, string> =>
    new Producer<string, Buffer, string, string>({
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

  // Produce: a fresh topic and a connected client per round; only the batches are timed.
  let produceTopic: string | undefined;
  let batches: OutgoingMessage[][] = [];
  const prepare = async (prefix: string): Promise<void> => {
    produceTopic = await createTopic(prefix);
    const all = messages(produceTopic, MESSAGES);
    batches = [];
    for (let i = 0; i < all.length; i += BATCH) batches.push(all.slice(i, i + BATCH));
  };
  let producer: Producer<string, Buffer, string, string> | undefined;
  const produceRaw: BenchCase = {
    name: 'raw @platformatic/kafka producer (idempotent, acks=all)',
    async setup() {
      await prepare('raw-produce');
      producer = rawProducer();
      await producer.send({ messages: [{ topic: produceTopic ?? '', key: 'warm', value: BODY }] });
    },
    async round() {
      for (const batch of batches) await producer?.send({ messages: batch.map(toRaw) });
      return MESSAGES;
    },
    async teardown() {
      await producer?.close();
      await dropTopic(produceTopic);
    },
  };
  let transport: Transport | undefined;
  const produceFerry: BenchCase = {
    name: 'ferry kafka transport publish',
    async setup() {
      await prepare('ferry-produce');
      transport = kafka({ brokers, partitions: PARTITIONS });
      await transport.publish([
        { topic: produceTopic ?? '', key: 'warm', body: BODY, headers: {} },
      ]);
    },
    async round() {
      for (const batch of batches) await transport?.publish(batch);
      return MESSAGES;
    },
    async teardown() {
      await transport?.close();
      await dropTopic(produceTopic);
    },
  };

  // Consume: one topic of CONSUME records; every round joins a new group from the earliest
  // offset and is timed from joining to the last record.
  let filled = '';
  const consumeRaw: BenchCase = {
    name: 'raw @platformatic/kafka group consumer',
    async round() {
      const consumer = new Consumer<string, Buffer, string, string>({
        clientId: 'bench-raw',
        bootstrapBrokers: brokers,
        groupId: newGroup('raw-group'),
        autocommit: 100,
        maxWaitTime: 500,
        deserializers: {
          key: stringDeserializer,
          headerKey: stringDeserializer,
          headerValue: stringDeserializer,
        },
      });
      const stream = await consumer.consume({
        topics: [filled],
        mode: 'earliest',
        autocommit: 100,
      });
      let count = 0;
      await new Promise<void>((resolve) => {
        stream.on('data', () => {
          if (++count === CONSUME) resolve();
        });
      });
      await stream.close();
      await consumer.close();
      return CONSUME;
    },
  };
  const consumeFerry: BenchCase = {
    name: 'ferry kafka transport subscribe (group)',
    async setup() {
      transport = kafka({ brokers, partitions: PARTITIONS, maxWaitMs: 500 });
    },
    async round() {
      let count = 0;
      let finish!: () => void;
      const done = new Promise<void>((resolve) => (finish = resolve));
      const subscription = await transport?.subscribe(
        { topic: filled, group: newGroup('ferry-group'), from: 'earliest' },
        async () => {
          if (++count === CONSUME) finish();
        },
      );
      await done;
      await subscription?.close();
      return CONSUME;
    },
    async teardown() {
      await transport?.close();
    },
  };

  return [
    {
      title: `Kafka: produce ${MESSAGES.toLocaleString('en')} in awaited batches of ${BATCH}`,
      note: `${BODY.length} B messages, ${PARTITIONS} partitions, idempotent producer, acks=all on both sides; a fresh topic per round.`,
      requires: 'FERRY_KAFKA_BROKERS',
      cases: [produceRaw, produceFerry],
      teardown: cleanUp,
    },
    {
      title: `Kafka: consume ${CONSUME.toLocaleString('en')} as a new group`,
      note: 'Timed from joining the group to the last record, reading from the earliest offset; both commit as they go.',
      requires: 'FERRY_KAFKA_BROKERS',
      async setup() {
        filled = await createTopic('consume');
        const producer = rawProducer();
        const all = messages(filled, CONSUME);
        for (let i = 0; i < all.length; i += 1000) {
          await producer.send({ messages: all.slice(i, i + 1000).map(toRaw) });
        }
        await producer.close();
      },
      cases: [consumeRaw, consumeFerry],
      teardown: cleanUp,
    },
  ];
}
