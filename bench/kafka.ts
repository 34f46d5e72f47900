// Kafka: the bus (and the transport alone) against raw @platformatic/kafka with the same
// settings: idempotent producer, acks=all, 500 per awaited send; a group consumer reading
// from the earliest offset and committing every 100 ms. Also the raw clients the outbox
// groups use.
import {
  Admin,
  Consumer,
  ProduceAcks,
  Producer,
  stringDeserializer,
  stringSerializer,
} from '@platformatic/kafka';
import { createBus, defineTopic, HEADER, type Bus, type Logger } from '../src/index.js';
import { kafka } from '../src/transports/kafka/index.js';
import {
  BATCH,
  chunks,
  counter,
  orders,
  outgoing,
  pair,
  rawMessage,
  silent,
  size,
  unique,
  type Order,
  type OrderItem,
  type Side,
} from './common.js';
import type { BenchGroup, RoundResult } from './harness.js';

export const KAFKA_PARTITIONS = 8;
export const brokers = (): string[] =>
  (process.env.FERRY_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');

export type RawProducer = Producer<string, Buffer, string, string>;

/** The raw producer both sides are measured against: idempotent, acks=all. */
export const rawProducer = (): RawProducer =>
  new Producer<string, Buffer, string, string>({
    clientId: 'bench-raw',
    bootstrapBrokers: brokers(),
    idempotent: true,
    acks: ProduceAcks.ALL,
    serializers: {
      key: stringSerializer,
      headerKey: stringSerializer,
      headerValue: stringSerializer,
    },
  });

/** Topics and consumer groups made by a group, deleted by `close`. */
export function kafkaResources(): {
  topic(prefix: string): Promise<string>;
  group(prefix: string): string;
  close: () => Promise<void>;
} {
  let admin: Admin | undefined;
  const topics = new Set<string>();
  const groups = new Set<string>();
  return {
    async topic(prefix: string): Promise<string> {
      const topic = unique(prefix);
      admin ??= new Admin({ clientId: 'bench-admin', bootstrapBrokers: brokers() });
      await admin.createTopics({ topics: [topic], partitions: KAFKA_PARTITIONS });
      topics.add(topic);
      return topic;
    },
    group(prefix: string): string {
      const group = unique(prefix);
      groups.add(group);
      return group;
    },
    close: async (): Promise<void> => {
      if (!admin) return;
      if (groups.size > 0) await admin.deleteGroups({ groups: [...groups] }).catch(() => undefined);
      groups.clear();
      if (topics.size > 0) await admin.deleteTopics({ topics: [...topics] }).catch(() => undefined);
      topics.clear();
      await admin.close();
      admin = undefined;
    },
  };
}

export function kafkaGroups(): BenchGroup[] {
  const messages = size('BENCH_KAFKA_MESSAGES', 20_000);
  const consumed = size('BENCH_KAFKA_CONSUME', 50_000);
  const items = orders(messages);
  const k = kafkaResources();
  const send = async (producer: RawProducer, topic: string, list: OrderItem[]): Promise<void> => {
    for (const batch of chunks(list)) {
      await producer.send({
        messages: batch.map((item) => {
          const message = rawMessage(item);
          return { topic, key: message.key, value: message.body, headers: message.headers };
        }),
      });
    }
  };

  let topic = '';
  let producer: RawProducer | undefined;
  let bus: Bus | undefined;
  const openBus = async (logger: () => Logger, audit: boolean): Promise<void> => {
    bus = createBus({
      transport: kafka({ brokers: brokers(), partitions: KAFKA_PARTITIONS, maxWaitMs: 500 }),
      logger: logger(),
      audit,
    });
  };
  const closeBus = async (): Promise<void> => {
    await bus?.close();
    bus = undefined;
  };
  const warm = { key: 'warm', payload: { orderId: 'w', customer: 'w', amount: 0, note: '' } };

  const publish: Side = {
    raw: {
      name: `raw @platformatic/kafka producer, ${BATCH} per send`,
      setup: async () => {
        topic = await k.topic('raw-produce');
        producer = rawProducer();
        await send(producer, topic, [warm]);
      },
      round: async () => {
        if (producer) await send(producer, topic, items);
        return messages;
      },
      teardown: async () => {
        await producer?.close();
        producer = undefined;
      },
    },
    bus: (label, logger, audit) => ({
      name: `ferry bus publishMany, ${label}`,
      setup: async () => {
        topic = await k.topic('bus-produce');
        await openBus(logger, audit);
        await bus?.publishMany(defineTopic<Order>(topic), [warm]);
      },
      round: async () => {
        const typed = defineTopic<Order>(topic);
        for (const batch of chunks(items)) await bus?.publishMany(typed, batch);
        return messages;
      },
      teardown: closeBus,
    }),
    transport: {
      name: 'ferry kafka transport publish alone (no bus; reference)',
      setup: async () => {
        topic = await k.topic('transport-produce');
        await openBus(silent, false);
        await bus?.transport.publish([outgoing(topic, warm)]);
      },
      round: async () => {
        for (const batch of chunks(items)) {
          await bus?.transport.publish(batch.map((item) => outgoing(topic, item)));
        }
        return messages;
      },
      teardown: closeBus,
    },
  };

  let filled = '';
  const subscribeAll = async (
    subscribe: (seen: () => void) => Promise<{ close(): Promise<void> } | undefined>,
  ): Promise<RoundResult> => {
    const seen = counter(consumed);
    const subscription = await subscribe(seen.seen);
    const result = await seen.done;
    await subscription?.close();
    return result;
  };
  const consume: Side = {
    raw: {
      name: 'raw @platformatic/kafka group consumer, autocommit every 100 ms',
      round: async () => {
        const consumer = new Consumer<string, Buffer, string, string>({
          clientId: 'bench-raw',
          bootstrapBrokers: brokers(),
          groupId: k.group('raw-group'),
          autocommit: 100,
          maxWaitTime: 500,
          deserializers: {
            key: stringDeserializer,
            headerKey: stringDeserializer,
            headerValue: stringDeserializer,
          },
        });
        const result = await subscribeAll(async (seen) => {
          const stream = await consumer.consume({
            topics: [filled],
            mode: 'earliest',
            autocommit: 100,
          });
          stream.on('data', (record) => {
            if (record.headers.get(HEADER.id) === undefined) throw new Error('no id');
            JSON.parse(record.value.toString());
            seen();
          });
          return stream;
        });
        await consumer.close();
        return result;
      },
    },
    bus: (label, logger, audit) => ({
      name: `ferry bus subscribe (group), ${label}`,
      setup: () => openBus(logger, audit),
      round: () =>
        subscribeAll(async (seen) =>
          bus?.subscribe(
            defineTopic<Order>(filled),
            { group: k.group('bus-group'), from: 'earliest' },
            async () => seen(),
          ),
        ),
      teardown: closeBus,
    }),
    transport: {
      name: 'ferry kafka transport subscribe alone (no bus; reference)',
      setup: () => openBus(silent, false),
      round: () =>
        subscribeAll(async (seen) =>
          bus?.transport.subscribe(
            { topic: filled, group: k.group('transport-group'), from: 'earliest' },
            async (delivery) => {
              JSON.parse(delivery.body.toString());
              seen();
            },
          ),
        ),
      teardown: closeBus,
    },
  };
  const [publishGroup, consumeGroup] = pair(
    `Kafka (publish ${messages.toLocaleString('en')}, consume ${consumed.toLocaleString('en')})`,
    `${KAFKA_PARTITIONS} partitions, idempotent producer, acks=all, ${BATCH} per awaited send, a fresh topic per publish round; consumers join a new group per round, read from the earliest offset, commit every 100 ms, and are timed from the first record to the last.`,
    'FERRY_KAFKA_BROKERS',
    publish,
    consume,
  );
  return [
    { ...publishGroup, teardown: k.close },
    {
      ...consumeGroup,
      setup: async () => {
        filled = await k.topic('consume');
        const filler = rawProducer();
        await send(filler, filled, orders(consumed));
        await filler.close();
      },
      teardown: k.close,
    },
  ];
}
