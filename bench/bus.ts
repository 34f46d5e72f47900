// The typed bus (publishMany / subscribe with a group, schema-less topic) against the raw
// client doing the same work and carrying the same three headers (ferry-id,
// ferry-created-at, content-type), on SQLite, Kafka and Redis Streams; the bus once with the
// audit trail off and once at info, written to /dev/null.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  Admin,
  Consumer,
  ProduceAcks,
  Producer,
  stringDeserializer,
  stringSerializer,
} from '@platformatic/kafka';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import {
  createBus,
  createLogger,
  defineTopic,
  HEADER,
  newMessageId,
  type Bus,
  type Logger,
} from '../src/index.js';
import { partitionFor } from '../src/core/message.js';
import { kafka } from '../src/transports/kafka/transport.js';
import { redisStreams } from '../src/transports/redis/index.js';
import { sqlite } from '../src/transports/sqlite/transport.js';
import type { BenchCase, BenchGroup, RoundResult } from './harness.js';

const size = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const BATCH = 500;
const READ = 100;
const PARTITIONS = 8;

interface Order {
  orderId: string;
  customer: string;
  amount: number;
  note: string;
}
const orders = (count: number): Array<{ key: string; payload: Order }> =>
  Array.from({ length: count }, (_, i) => ({
    key: `customer-${i % 500}`,
    payload: { orderId: `o-${i}`, customer: `c-${i % 97}`, amount: i % 997, note: 'x'.repeat(100) },
  }));

/** What the raw side writes per message: the body and ferry's three headers, made per round. */
function rawMessage(item: { key: string; payload: Order }): {
  key: string;
  body: Buffer;
  headers: Record<string, string>;
} {
  return {
    key: item.key,
    body: Buffer.from(JSON.stringify(item.payload)),
    headers: {
      [HEADER.id]: newMessageId(),
      [HEADER.createdAt]: new Date().toISOString(),
      [HEADER.contentType]: 'application/json',
    },
  };
}

const name = (prefix: string): string =>
  `bench.${prefix}.${Date.now()}.${randomBytes(3).toString('hex')}`;

const silent = (): Logger => createLogger({ level: 'silent' });
const audited = (): Logger => createLogger({ level: 'info', destination: '/dev/null' });
const trails = [
  ['audit trail off', silent, false],
  ['audit trail on (info → /dev/null)', audited, true],
] as const;

/** Counts deliveries and times the first to the last, leaving out joins and assignment. */
function counter(expected: number): {
  seen: () => void;
  done: Promise<RoundResult>;
} {
  let count = 0;
  let first = 0;
  let finish!: (result: RoundResult) => void;
  const done = new Promise<RoundResult>((resolve) => (finish = resolve));
  return {
    seen() {
      if (count === 0) first = performance.now();
      if (++count === expected) {
        finish({ operations: expected - 1, seconds: (performance.now() - first) / 1000 });
      }
    },
    done,
  };
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Publish then consume through bus and raw client on one transport, as two groups. */
interface Side {
  readonly raw: BenchCase;
  bus(label: string, logger: () => Logger, audit: boolean): BenchCase;
}

function pair(
  title: string,
  note: string,
  requires: string | undefined,
  publish: Side,
  consume: Side,
  hooks: { setup?: () => Promise<void>; teardown?: () => Promise<void> } = {},
): BenchGroup[] {
  const make = (what: string, side: Side): BenchGroup => ({
    title: `Bus vs raw client, ${title}: ${what}`,
    note,
    ...(requires ? { requires } : {}),
    ...hooks,
    cases: [side.raw, ...trails.map(([label, logger, audit]) => side.bus(label, logger, audit))],
  });
  return [make('publish', publish), make('consume', consume)];
}

function sqliteGroups(): BenchGroup[] {
  const messages = size('BENCH_SQLITE_MESSAGES', 10_000);
  const items = orders(messages);
  let dir = '';
  let file = 0;
  const path = (): string => join(dir, `${file++}.db`);
  const schema = `create table log (partition integer, offset integer, key text, headers text, body blob, created_at integer, primary key (partition, offset)) without rowid;
    create table offsets (grp text, partition integer, next_offset integer, primary key (grp, partition))`;

  let db: Database.Database | undefined;
  const rawAppend = (target: Database.Database): void => {
    const insert = target.prepare('insert into log values (?, ?, ?, ?, ?, ?)');
    const next = new Array<number>(PARTITIONS).fill(0);
    const append = target.transaction((batch: typeof items) => {
      for (const item of batch) {
        const message = rawMessage(item);
        const partition = partitionFor(item.key, PARTITIONS);
        insert.run(
          partition,
          next[partition]!++,
          item.key,
          JSON.stringify(message.headers),
          message.body,
          Date.now(),
        );
      }
    });
    for (const batch of chunks(items, BATCH)) append.immediate(batch);
  };
  const open = (): Database.Database => {
    const opened = new Database(path());
    opened.pragma('journal_mode = WAL');
    opened.pragma('synchronous = NORMAL');
    opened.exec(schema);
    return opened;
  };
  const closeRaw = async (): Promise<void> => {
    db?.close();
    db = undefined;
  };

  let bus: Bus | undefined;
  const topic = defineTopic<Order>('orders');
  const openBus = async (logger: () => Logger, audit: boolean): Promise<Bus> =>
    (bus = createBus({
      transport: await sqlite({ path: path(), partitions: PARTITIONS }),
      logger: logger(),
      audit,
    }));
  const closeBus = async (): Promise<void> => {
    await bus?.close();
    bus = undefined;
  };

  const publish: Side = {
    raw: {
      name: 'raw better-sqlite3: same rows, transactions of 500',
      setup: async () => void (db = open()),
      round: async () => {
        if (db) rawAppend(db);
        return messages;
      },
      teardown: closeRaw,
    },
    bus: (label, logger, audit) => ({
      name: `ferry bus publishMany, ${label}`,
      setup: async () => void (await openBus(logger, audit)),
      round: async () => {
        for (const batch of chunks(items, BATCH)) await bus?.publishMany(topic, batch);
        return messages;
      },
      teardown: closeBus,
    }),
  };
  const consume: Side = {
    raw: {
      name: 'raw better-sqlite3: reads of 100, one offset commit per read',
      setup: async () => {
        db = open();
        rawAppend(db);
      },
      round: async () => {
        const target = db as Database.Database;
        const read = target.prepare<
          [number, number],
          { offset: number; key: string; body: Buffer; headers: string }
        >(
          'select offset, key, body, headers from log where partition = ? and offset >= ? order by offset limit 100',
        );
        const commit = target.prepare(
          "insert into offsets values ('g', ?, ?) on conflict (grp, partition) do update set next_offset = excluded.next_offset",
        );
        const seen = counter(messages);
        for (let partition = 0; partition < PARTITIONS; partition++) {
          let offset = 0;
          for (;;) {
            const rows = read.all(partition, offset);
            if (rows.length === 0) break;
            for (const row of rows) {
              const headers = JSON.parse(row.headers) as Record<string, string>;
              if (headers[HEADER.id] === undefined) throw new Error('no id');
              JSON.parse(row.body.toString());
              offset = row.offset + 1;
              seen.seen();
            }
            target.transaction(() => commit.run(partition, offset)).immediate();
          }
        }
        return seen.done;
      },
      teardown: closeRaw,
    },
    bus: (label, logger, audit) => ({
      name: `ferry bus subscribe (group), ${label}`,
      setup: async () => {
        const opened = await openBus(logger, audit);
        const filler = createBus({ transport: opened.transport, logger: silent() });
        for (const batch of chunks(items, BATCH)) await filler.publishMany(topic, batch);
      },
      round: async () => {
        const seen = counter(messages);
        const subscription = await bus?.subscribe(
          topic,
          { group: 'g', from: 'earliest' },
          async () => seen.seen(),
        );
        const result = await seen.done;
        await subscription?.close();
        return result;
      },
      teardown: closeBus,
    }),
  };
  return pair(
    `SQLite (${messages.toLocaleString('en')} messages)`,
    `${PARTITIONS} partitions; appends in transactions of ${BATCH}; consumers read ${READ} at a time and commit the group offset once per read, timed from the first message to the last. Both sides encode/parse JSON bodies and carry the same three headers.`,
    undefined,
    publish,
    consume,
    {
      setup: async () => void (dir ||= mkdtempSync(join(tmpdir(), 'ferry-bench-bus-'))),
      teardown: async () => {
        if (dir) rmSync(dir, { recursive: true, force: true });
        dir = '';
      },
    },
  );
}

function kafkaGroups(): BenchGroup[] {
  const messages = size('BENCH_KAFKA_MESSAGES', 20_000);
  const consumed = size('BENCH_KAFKA_CONSUME', 50_000);
  const items = orders(messages);
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
  const newGroup = (prefix: string): string => {
    const group = name(prefix);
    groups.add(group);
    return group;
  };
  const cleanUp = async (): Promise<void> => {
    if (!admin) return;
    if (groups.size > 0) await admin.deleteGroups({ groups: [...groups] }).catch(() => undefined);
    groups.clear();
    if (topics.size > 0) await admin.deleteTopics({ topics: [...topics] }).catch(() => undefined);
    topics.clear();
    await admin.close();
    admin = undefined;
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
  const send = async (
    producer: Producer<string, Buffer, string, string>,
    topic: string,
    list: typeof items,
  ): Promise<void> => {
    for (const batch of chunks(list, BATCH)) {
      await producer.send({
        messages: batch.map((item) => {
          const message = rawMessage(item);
          return { topic, key: message.key, value: message.body, headers: message.headers };
        }),
      });
    }
  };

  let topic = '';
  let producer: Producer<string, Buffer, string, string> | undefined;
  let bus: Bus | undefined;
  const openBus = async (logger: () => Logger, audit: boolean): Promise<void> => {
    bus = createBus({
      transport: kafka({ brokers, partitions: PARTITIONS, maxWaitMs: 500 }),
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
        topic = await createTopic('raw-produce');
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
        topic = await createTopic('bus-produce');
        await openBus(logger, audit);
        await bus?.publishMany(defineTopic<Order>(topic), [warm]);
      },
      round: async () => {
        const typed = defineTopic<Order>(topic);
        for (const batch of chunks(items, BATCH)) await bus?.publishMany(typed, batch);
        return messages;
      },
      teardown: closeBus,
    }),
  };

  let filled = '';
  const consume: Side = {
    raw: {
      name: 'raw @platformatic/kafka group consumer, autocommit every 100 ms',
      round: async () => {
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
        const seen = counter(consumed);
        stream.on('data', (record) => {
          if (record.headers.get(HEADER.id) === undefined) throw new Error('no id');
          JSON.parse(record.value.toString());
          seen.seen();
        });
        const result = await seen.done;
        await stream.close();
        await consumer.close();
        return result;
      },
    },
    bus: (label, logger, audit) => ({
      name: `ferry bus subscribe (group), ${label}`,
      setup: () => openBus(logger, audit),
      round: async () => {
        const seen = counter(consumed);
        const subscription = await bus?.subscribe(
          defineTopic<Order>(filled),
          { group: newGroup('bus-group'), from: 'earliest' },
          async () => seen.seen(),
        );
        const result = await seen.done;
        await subscription?.close();
        return result;
      },
      teardown: closeBus,
    }),
  };
  const [publishGroup, consumeGroup] = pair(
    `Kafka (publish ${messages.toLocaleString('en')}, consume ${consumed.toLocaleString('en')})`,
    `${PARTITIONS} partitions, idempotent producer, acks=all, ${BATCH} per awaited send, a fresh topic per publish round; consumers join a new group per round, read from the earliest offset, commit every 100 ms, and are timed from the first record to the last.`,
    'FERRY_KAFKA_BROKERS',
    publish,
    consume,
  );
  return [
    { ...(publishGroup as BenchGroup), teardown: cleanUp },
    {
      ...(consumeGroup as BenchGroup),
      setup: async () => {
        filled = await createTopic('consume');
        const filler = rawProducer();
        await send(filler, filled, orders(consumed));
        await filler.close();
      },
      teardown: cleanUp,
    },
  ];
}

function redisGroups(): BenchGroup[] {
  const messages = size('BENCH_REDIS_MESSAGES', 20_000);
  const items = orders(messages);
  const url = process.env.FERRY_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const prefix = `ferry-bench-${randomBytes(4).toString('hex')}:`;
  let client: Redis | undefined;
  let sequence = 0;
  let stream = '';
  const fresh = (): void => void (stream = `bus-${sequence++}`);
  const raw = (): Redis => (client ??= new Redis(url));
  const xadd = async (list: typeof items): Promise<void> => {
    for (const batch of chunks(list, BATCH)) {
      const pipeline = raw().pipeline();
      for (const item of batch) {
        const message = rawMessage(item);
        const fields: Array<string | Buffer> = [];
        for (const [header, value] of Object.entries(message.headers)) fields.push(header, value);
        fields.push('ferry-key', message.key, 'body', message.body);
        pipeline.call('XADD', prefix + stream, '*', ...fields);
      }
      await pipeline.exec();
    }
  };
  const drop = async (): Promise<void> => {
    await raw().unlink(prefix + stream);
  };
  let bus: Bus | undefined;
  const openBus = async (logger: () => Logger, audit: boolean): Promise<void> => {
    fresh();
    bus = createBus({ transport: redisStreams({ url, prefix }), logger: logger(), audit });
  };
  const closeBus = async (): Promise<void> => {
    await bus?.close();
    bus = undefined;
    await drop();
  };

  const publish: Side = {
    raw: {
      name: `raw ioredis: pipelined XADD, ${BATCH} per pipeline`,
      setup: async () => fresh(),
      round: async () => {
        await xadd(items);
        return messages;
      },
      teardown: drop,
    },
    bus: (label, logger, audit) => ({
      name: `ferry bus publishMany, ${label}`,
      setup: () => openBus(logger, audit),
      round: async () => {
        const typed = defineTopic<Order>(stream);
        for (const batch of chunks(items, BATCH)) await bus?.publishMany(typed, batch);
        return messages;
      },
      teardown: closeBus,
    }),
  };
  const consume: Side = {
    raw: {
      name: `raw ioredis: XREADGROUP ${READ} + one XACK per batch`,
      setup: async () => {
        fresh();
        await xadd(items);
        await raw().xgroup('CREATE', prefix + stream, 'g', '0');
      },
      round: async () => {
        const key = prefix + stream;
        const seen = counter(messages);
        for (let got = 0; got < messages;) {
          const reply = (await raw().callBuffer(
            'XREADGROUP',
            'GROUP',
            'g',
            'c',
            'COUNT',
            READ,
            'STREAMS',
            key,
            '>',
          )) as Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null;
          const entries = reply?.[0]?.[1] ?? [];
          for (const [, fields] of entries) {
            const headers: Record<string, string> = {};
            for (let i = 0; i < fields.length - 2; i += 2) {
              headers[String(fields[i])] = String(fields[i + 1]);
            }
            if (headers[HEADER.id] === undefined) throw new Error('no id');
            JSON.parse((fields[fields.length - 1] as Buffer).toString());
            seen.seen();
          }
          if (entries.length > 0) await raw().xack(key, 'g', ...entries.map(([id]) => id));
          got += entries.length;
        }
        return seen.done;
      },
      teardown: drop,
    },
    bus: (label, logger, audit) => ({
      name: `ferry bus subscribe (group), ${label}`,
      setup: async () => {
        await openBus(logger, audit);
        await xadd(items);
      },
      round: async () => {
        const seen = counter(messages);
        const subscription = await bus?.subscribe(
          defineTopic<Order>(stream),
          { group: 'g', from: 'earliest' },
          async () => seen.seen(),
        );
        const result = await seen.done;
        await subscription?.close();
        return result;
      },
      teardown: closeBus,
    }),
  };
  return pair(
    `Redis Streams (${messages.toLocaleString('en')} messages)`,
    `Pipelined XADD of ${BATCH}; consumers read ${READ} at a time with one XACK per batch, timed from the first entry to the last. Both sides encode/parse JSON bodies and carry the same three headers.`,
    'FERRY_REDIS_URL',
    publish,
    consume,
    {
      teardown: async () => {
        client?.disconnect();
        client = undefined;
      },
    },
  );
}

export function busGroups(): BenchGroup[] {
  return [...sqliteGroups(), ...kafkaGroups(), ...redisGroups()];
}
