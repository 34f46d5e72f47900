// Redis: the bus (and the transport alone) against raw ioredis. Streams: pipelined XADD of
// 500; consumers read 100 at a time with one XACK per batch. Pub/Sub: pipelined PUBLISH.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createBus, defineTopic, HEADER, type Bus, type Logger } from '../src/index.js';
import { redisPubSub, redisStreams } from '../src/transports/redis/index.js';
import {
  BATCH,
  chunks,
  counter,
  orders,
  outgoing,
  pair,
  rawMessage,
  READ,
  silent,
  size,
  trails,
  type Order,
  type OrderItem,
  type Side,
} from './common.js';
import type { BenchCase, BenchGroup, RoundResult } from './harness.js';

const url = (): string => process.env.FERRY_REDIS_URL ?? 'redis://127.0.0.1:6379';

function streamsGroups(): BenchGroup[] {
  const messages = size('BENCH_REDIS_MESSAGES', 20_000);
  const items = orders(messages);
  const prefix = `ferry-bench-${randomBytes(4).toString('hex')}:`;
  let client: Redis | undefined;
  let sequence = 0;
  let stream = '';
  const fresh = (): void => void (stream = `bus-${sequence++}`);
  const raw = (): Redis => (client ??= new Redis(url()));
  const xadd = async (list: OrderItem[]): Promise<void> => {
    for (const batch of chunks(list)) {
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
    bus = createBus({ transport: redisStreams({ url: url(), prefix }), logger: logger(), audit });
  };
  const closeBus = async (): Promise<void> => {
    await bus?.close();
    bus = undefined;
    await drop();
  };
  const subscribeAll = async (
    subscribe: (seen: () => void) => Promise<{ close(): Promise<void> } | undefined>,
  ): Promise<RoundResult> => {
    const seen = counter(messages);
    const subscription = await subscribe(seen.seen);
    const result = await seen.done;
    await subscription?.close();
    return result;
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
        for (const batch of chunks(items)) await bus?.publishMany(typed, batch);
        return messages;
      },
      teardown: closeBus,
    }),
    transport: {
      name: 'ferry redis streams transport publish alone (no bus; reference)',
      setup: () => openBus(silent, false),
      round: async () => {
        for (const batch of chunks(items)) {
          await bus?.transport.publish(batch.map((item) => outgoing(stream, item)));
        }
        return messages;
      },
      teardown: closeBus,
    },
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
      round: () =>
        subscribeAll(async (seen) =>
          bus?.subscribe(defineTopic<Order>(stream), { group: 'g', from: 'earliest' }, async () =>
            seen(),
          ),
        ),
      teardown: closeBus,
    }),
    transport: {
      name: 'ferry redis streams transport subscribe alone (no bus; reference)',
      setup: async () => {
        await openBus(silent, false);
        await xadd(items);
      },
      round: () =>
        subscribeAll(async (seen) =>
          bus?.transport.subscribe(
            { topic: stream, group: 'g', from: 'earliest' },
            async (delivery) => {
              JSON.parse(delivery.body.toString());
              seen();
            },
          ),
        ),
      teardown: closeBus,
    },
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

/** Pub/Sub publish: the raw payload, the raw envelope, the transport, and the bus. */
function pubSubGroup(): BenchGroup {
  const messages = size('BENCH_REDIS_MESSAGES', 20_000);
  const items = orders(messages);
  const prefix = `ferry-bench-${randomBytes(4).toString('hex')}:`;
  let client: Redis | undefined;
  const raw = (): Redis => (client ??= new Redis(url()));
  let bus: Bus | undefined;
  const channel = 'orders';
  const openBus = async (logger: () => Logger, audit: boolean): Promise<void> => {
    bus = createBus({ transport: redisPubSub({ url: url(), prefix }), logger: logger(), audit });
  };
  const closeBus = async (): Promise<void> => {
    await bus?.close();
    bus = undefined;
  };
  const pipelined = async (line: (item: OrderItem) => string | Buffer): Promise<number> => {
    for (const batch of chunks(items)) {
      const pipeline = raw().pipeline();
      for (const item of batch) pipeline.publish(prefix + channel, line(item));
      await pipeline.exec();
    }
    return messages;
  };
  const busCase = ([label, logger, audit]: (typeof trails)[number]): BenchCase => ({
    name: `ferry bus publishMany, ${label}`,
    setup: () => openBus(logger, audit),
    round: async () => {
      const typed = defineTopic<Order>(channel);
      for (const batch of chunks(items)) await bus?.publishMany(typed, batch);
      return messages;
    },
    teardown: closeBus,
  });
  return {
    title: `Redis Pub/Sub (${messages.toLocaleString('en')} messages): publish`,
    note: `Batches of ${BATCH}, one pipeline after another. The transport carries id, key and headers too: the baseline is a raw PUBLISH of an id/key/headers envelope; the bare payload row shows what the envelope costs.`,
    requires: 'FERRY_REDIS_URL',
    cases: [
      {
        name: 'raw ioredis PUBLISH of an id/key/headers envelope, pipelined',
        round: () =>
          pipelined((item) => {
            const message = rawMessage(item);
            return JSON.stringify({
              id: message.headers[HEADER.id],
              key: message.key,
              headers: message.headers,
              body: message.body.toString(),
            });
          }),
      },
      ...trails.map(busCase),
      {
        name: 'ferry redis pub/sub transport publish alone (no bus; reference)',
        setup: () => openBus(silent, false),
        round: async () => {
          for (const batch of chunks(items)) {
            await bus?.transport.publish(batch.map((item) => outgoing(channel, item)));
          }
          return messages;
        },
        teardown: closeBus,
      },
      {
        name: 'raw ioredis PUBLISH of the bare payload, pipelined (reference)',
        round: () => pipelined((item) => JSON.stringify(item.payload)),
      },
    ],
    async teardown() {
      client?.disconnect();
      client = undefined;
    },
  };
}

export function redisGroups(): BenchGroup[] {
  return [...streamsGroups(), pubSubGroup()];
}
