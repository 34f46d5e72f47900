// The Redis transports through ferry against the raw ioredis client, side by side.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import {
  createBus,
  createLogger,
  defineTopic,
  HEADER,
  newMessageId,
  type Bus,
  type OutgoingMessage,
} from '../src/index.js';
import { buildOutgoing } from '../src/core/message.js';
import type { Transport } from '../src/transport/transport.js';
import { redisPubSub, redisStreams } from '../src/transports/redis/index.js';
import { entryFields } from '../src/transports/redis/streams/transport.js';
import type { BenchCase, BenchGroup } from './harness.js';

const MESSAGES = 20_000;
const BATCH = 500;

interface Order {
  orderId: string;
  customer: string;
  amount: number;
  items: Array<{ sku: string; qty: number }>;
}
const payloads: Order[] = Array.from({ length: MESSAGES }, (_, i) => ({
  orderId: `o-${i}`,
  customer: `c-${i % 97}`,
  amount: i * 1.5,
  items: [{ sku: `sku-${i % 13}`, qty: 1 + (i % 3) }],
}));
const bodies = payloads.map((payload) => JSON.stringify(payload));
const outgoing = (topic: string): OutgoingMessage[] =>
  payloads.map((payload, i) =>
    buildOutgoing({
      id: newMessageId(),
      topic,
      key: payload.orderId,
      body: Buffer.from(bodies[i] as string),
      contentType: 'application/json',
      createdAt: new Date(),
    }),
  );
const chunks = <T>(items: readonly T[]): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += BATCH) out.push(items.slice(i, i + BATCH));
  return out;
};

/** Pub/Sub publish, Streams XADD and Streams group consume, 20,000 messages in batches of 500. */
export function redisGroups(): BenchGroup[] {
  const url = process.env.FERRY_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const prefix = `ferry-bench-${randomBytes(4).toString('hex')}:`;
  const silent = createLogger({ level: 'silent' });
  let raw: Redis | undefined;
  let pubsub: Transport | undefined;
  let pubsubBus: Bus | undefined;
  let streams: Transport | undefined;
  let streamsBus: Bus | undefined;
  const client = (): Redis => (raw ??= new Redis(url));

  let sequence = 0;
  let topic = '';
  let messages: OutgoingMessage[] = [];
  const fresh = (what: string) => async (): Promise<void> => {
    topic = `${what}-${sequence++}`;
    messages = outgoing(topic);
  };
  const dropStream = async (): Promise<void> => {
    await client().unlink(prefix + topic);
  };

  const setup = async (): Promise<void> => {
    pubsub = redisPubSub({ url, prefix });
    pubsubBus = createBus({ transport: redisPubSub({ url, prefix }), logger: silent });
    streams = redisStreams({ url, prefix });
    streamsBus = createBus({ transport: redisStreams({ url, prefix }), logger: silent });
  };
  const teardown = async (): Promise<void> => {
    await Promise.all([pubsub?.close(), pubsubBus?.close(), streams?.close(), streamsBus?.close()]);
    let cursor = '0';
    do {
      const [next, keys] = await client().scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await client().unlink(...keys);
    } while (cursor !== '0');
    raw?.disconnect();
    raw = undefined;
  };

  const rawPublish: BenchCase = {
    name: 'raw ioredis PUBLISH of the payload, pipelined',
    setup: fresh('pub'),
    async round() {
      for (const chunk of chunks(bodies)) {
        const pipeline = client().pipeline();
        for (const body of chunk) pipeline.publish(prefix + topic, body);
        await pipeline.exec();
      }
      return MESSAGES;
    },
  };
  // What a raw client sends to carry the same id, key and headers: the envelope, built inline.
  const rawPublishEnvelopes: BenchCase = {
    name: 'raw ioredis PUBLISH of an id/key/headers envelope, pipelined',
    setup: fresh('pub'),
    async round() {
      for (const chunk of chunks(messages)) {
        const pipeline = client().pipeline();
        for (const message of chunk) {
          pipeline.publish(
            prefix + topic,
            JSON.stringify({
              id: message.headers[HEADER.id],
              key: message.key,
              headers: message.headers,
              body: message.body.toString(),
            }),
          );
        }
        await pipeline.exec();
      }
      return MESSAGES;
    },
  };
  const ferryPublish: BenchCase = {
    name: 'ferry redis pub/sub transport publish',
    setup: fresh('pub'),
    async round() {
      for (const chunk of chunks(messages)) await pubsub?.publish(chunk);
      return MESSAGES;
    },
  };
  const ferryPublishBus: BenchCase = {
    name: 'ferry bus publishMany over redis pub/sub (encodes the payloads)',
    setup: fresh('pub'),
    async round() {
      const typed = defineTopic<Order>(topic);
      for (const chunk of chunks(payloads)) {
        await pubsubBus?.publishMany(
          typed,
          chunk.map((payload) => ({ payload, key: payload.orderId })),
        );
      }
      return MESSAGES;
    },
  };

  const xadd = async (stream: string, items: readonly OutgoingMessage[]): Promise<void> => {
    for (const chunk of chunks(items)) {
      const pipeline = client().pipeline();
      for (const message of chunk) pipeline.call('XADD', stream, '*', ...entryFields(message));
      await pipeline.exec();
    }
  };
  const rawXadd: BenchCase = {
    name: 'raw ioredis XADD of the same fields, pipelined',
    setup: fresh('xadd'),
    async round() {
      await xadd(prefix + topic, messages);
      return MESSAGES;
    },
    teardown: dropStream,
  };
  const ferryXadd: BenchCase = {
    name: 'ferry redis streams transport publish',
    setup: fresh('xadd'),
    async round() {
      for (const chunk of chunks(messages)) await streams?.publish(chunk);
      return MESSAGES;
    },
    teardown: dropStream,
  };
  const ferryXaddBus: BenchCase = {
    name: 'ferry bus publishMany over redis streams (encodes the payloads)',
    setup: fresh('xadd'),
    async round() {
      const typed = defineTopic<Order>(topic);
      for (const chunk of chunks(payloads)) {
        await streamsBus?.publishMany(
          typed,
          chunk.map((payload) => ({ payload, key: payload.orderId })),
        );
      }
      return MESSAGES;
    },
    teardown: dropStream,
  };

  // Consume: a stream filled untimed with the same entries.
  const filled = async (): Promise<void> => {
    await fresh('consume')();
    await xadd(prefix + topic, messages);
  };
  const rawConsume: BenchCase = {
    name: 'raw ioredis XREADGROUP 100 at a time, one XACK per batch',
    async setup() {
      await filled();
      await client().xgroup('CREATE', prefix + topic, 'g', '0');
    },
    async round() {
      const key = prefix + topic;
      let seen = 0;
      while (seen < MESSAGES) {
        const reply = (await client().xreadgroup(
          'GROUP',
          'g',
          'c',
          'COUNT',
          100,
          'STREAMS',
          key,
          '>',
        )) as Array<[string, Array<[string, string[]]>]> | null;
        const entries = reply?.[0]?.[1] ?? [];
        for (const [, fields] of entries) JSON.parse(fields[fields.length - 1] as string);
        if (entries.length > 0) await client().xack(key, 'g', ...entries.map(([id]) => id));
        seen += entries.length;
      }
      return MESSAGES;
    },
    teardown: dropStream,
  };
  const ferryConsume: BenchCase = {
    name: 'ferry redis streams transport subscribe (group)',
    setup: filled,
    async round() {
      let seen = 0;
      let done!: () => void;
      const all = new Promise<void>((resolve) => (done = resolve));
      const subscription = await streams?.subscribe({ topic, group: 'g' }, async (delivery) => {
        JSON.parse(delivery.body.toString());
        if (++seen === MESSAGES) done();
      });
      await all;
      await subscription?.close();
      return MESSAGES;
    },
    teardown: dropStream,
  };

  const note = `${MESSAGES.toLocaleString('en')} messages of ~${Math.round(
    bodies.reduce((sum, body) => sum + body.length, 0) / MESSAGES,
  )} B JSON, batches of ${BATCH} one after another.`;
  return [
    {
      title: 'Redis Pub/Sub: publish',
      note: `${note} The transport carries id, key and headers too: compare it with the envelope row as well as with the bare payload.`,
      requires: 'FERRY_REDIS_URL',
      setup,
      cases: [rawPublish, ferryPublish, rawPublishEnvelopes, ferryPublishBus],
      teardown,
    },
    {
      title: 'Redis Streams: XADD',
      note,
      requires: 'FERRY_REDIS_URL',
      setup,
      cases: [rawXadd, ferryXadd, ferryXaddBus],
      teardown,
    },
    {
      title: 'Redis Streams: group consume',
      note: `${note} Filled untimed; each side parses every body.`,
      requires: 'FERRY_REDIS_URL',
      setup,
      cases: [rawConsume, ferryConsume],
      teardown,
    },
  ];
}
