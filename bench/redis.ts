// Redis transports through ferry vs the raw ioredis client, side by side in one run.
// Usage: npx tsx bench/redis.ts  (FERRY_REDIS_URL, default redis://127.0.0.1:6379;
// BENCH_MESSAGES, default 20000; BENCH_ROUNDS, default 5)
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import {
  buildOutgoing,
  createBus,
  createLogger,
  defineTopic,
  HEADER,
  newMessageId,
  type OutgoingMessage,
} from '../src/index.js';
import { entryFields, redisPubSub, redisStreams } from '../src/transports/redis.js';

const url = process.env.FERRY_REDIS_URL ?? 'redis://127.0.0.1:6379';
const total = Number(process.env.BENCH_MESSAGES ?? 20_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const batch = 500;
const prefix = `ferry-bench-${randomBytes(4).toString('hex')}:`;

interface Order {
  orderId: string;
  customer: string;
  amount: number;
  items: Array<{ sku: string; qty: number }>;
}
const payloads: Order[] = Array.from({ length: total }, (_, i) => ({
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
  for (let i = 0; i < items.length; i += batch) out.push(items.slice(i, i + batch));
  return out;
};

/** Messages per second of `work` over `total` messages. */
async function rate(work: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await work();
  return total / ((performance.now() - started) / 1000);
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
};

interface Case {
  name: string;
  raw: () => Promise<number>;
  ferry: () => Promise<number>;
}

const raw = new Redis(url);
const silent = createLogger({ level: 'silent' });
let sequence = 0;
const fresh = (what: string): string => `${what}-${sequence++}`;

// Publishing: a batch of `batch` messages per call, batches one after another.
const pubsub = redisPubSub({ url, prefix });
const pubsubBus = createBus({ transport: redisPubSub({ url, prefix }), logger: silent });
const streams = redisStreams({ url, prefix });
const streamsBus = createBus({ transport: redisStreams({ url, prefix }), logger: silent });

const rawPublish = (channel: string) => async () => {
  for (const chunk of chunks(bodies)) {
    const pipeline = raw.pipeline();
    for (const body of chunk) pipeline.publish(channel, body);
    await pipeline.exec();
  }
};
// What a raw client sends to carry the same id, key and headers: the envelope, built inline.
const rawPublishEnvelopes = (channel: string, messages: OutgoingMessage[]) => async () => {
  for (const chunk of chunks(messages)) {
    const pipeline = raw.pipeline();
    for (const message of chunk) {
      pipeline.publish(
        channel,
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
};
const rawXadd = (stream: string, messages: OutgoingMessage[]) => async () => {
  for (const chunk of chunks(messages)) {
    const pipeline = raw.pipeline();
    for (const message of chunk) pipeline.call('XADD', stream, '*', ...entryFields(message));
    await pipeline.exec();
  }
};

/** Fills a stream with the messages, for the consume cases. */
async function filled(): Promise<string> {
  const topic = fresh('consume');
  await rawXadd(prefix + topic, outgoing(topic))();
  return topic;
}

const cases: Case[] = [
  {
    name: 'Pub/Sub publish (transport) vs raw payload',
    raw: () => rate(rawPublish(prefix + fresh('pub'))),
    ferry: () => {
      const messages = outgoing(fresh('pub'));
      return rate(async () => {
        for (const chunk of chunks(messages)) await pubsub.publish(chunk);
      });
    },
  },
  {
    name: 'Pub/Sub publish (transport) vs raw envelope',
    raw: () => {
      const topic = fresh('pub');
      return rate(rawPublishEnvelopes(prefix + topic, outgoing(topic)));
    },
    ferry: () => {
      const messages = outgoing(fresh('pub'));
      return rate(async () => {
        for (const chunk of chunks(messages)) await pubsub.publish(chunk);
      });
    },
  },
  {
    name: 'Pub/Sub publish (bus)',
    raw: () => rate(rawPublish(prefix + fresh('pub'))),
    ferry: () => {
      const topic = defineTopic<Order>(fresh('pub'));
      return rate(async () => {
        for (const chunk of chunks(payloads)) {
          await pubsubBus.publishMany(
            topic,
            chunk.map((payload) => ({ payload, key: payload.orderId })),
          );
        }
      });
    },
  },
  {
    name: 'Streams XADD (transport)',
    raw: () => {
      const topic = fresh('xadd');
      return rate(rawXadd(prefix + topic, outgoing(topic)));
    },
    ferry: () => {
      const messages = outgoing(fresh('xadd'));
      return rate(async () => {
        for (const chunk of chunks(messages)) await streams.publish(chunk);
      });
    },
  },
  {
    name: 'Streams XADD (bus)',
    raw: () => {
      const topic = fresh('xadd');
      return rate(rawXadd(prefix + topic, outgoing(topic)));
    },
    ferry: () => {
      const topic = defineTopic<Order>(fresh('xadd'));
      return rate(async () => {
        for (const chunk of chunks(payloads)) {
          await streamsBus.publishMany(
            topic,
            chunk.map((payload) => ({ payload, key: payload.orderId })),
          );
        }
      });
    },
  },
  {
    name: 'Streams group consume (transport)',
    // XREADGROUP 100 at a time, one XACK per batch: the raw client's best case.
    raw: async () => {
      const key = prefix + (await filled());
      await raw.xgroup('CREATE', key, 'g', '0');
      return rate(async () => {
        let seen = 0;
        while (seen < total) {
          const reply = (await raw.xreadgroup(
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
          if (entries.length > 0) await raw.xack(key, 'g', ...entries.map(([id]) => id));
          seen += entries.length;
        }
      });
    },
    ferry: async () => {
      const topic = await filled();
      let seen = 0;
      let subscription: Awaited<ReturnType<typeof streams.subscribe>> | undefined;
      const measured = await rate(async () => {
        await new Promise<void>((resolve) => {
          void streams
            .subscribe({ topic, group: 'g' }, async (delivery) => {
              JSON.parse(delivery.body.toString());
              if (++seen === total) resolve();
            })
            .then((made) => (subscription = made));
        });
      });
      await subscription?.close();
      return measured;
    },
  },
];

const results: Array<{ name: string; raw: number; ferry: number }> = [];
try {
  for (const benchCase of cases) {
    // Warm-up: let the JIT settle both paths before measuring.
    for (let i = 0; i < 3; i++) {
      await benchCase.raw();
      await benchCase.ferry();
    }
    const rawRates: number[] = [];
    const ferryRates: number[] = [];
    for (let round = 0; round < rounds; round++) {
      // Alternate the order so neither side always runs on a warmer server.
      if (round % 2 === 0) {
        rawRates.push(await benchCase.raw());
        ferryRates.push(await benchCase.ferry());
      } else {
        ferryRates.push(await benchCase.ferry());
        rawRates.push(await benchCase.raw());
      }
    }
    results.push({ name: benchCase.name, raw: median(rawRates), ferry: median(ferryRates) });
  }
} finally {
  await Promise.all([pubsub.close(), pubsubBus.close(), streams.close(), streamsBus.close()]);
  let cursor = '0';
  do {
    const [next, keys] = await raw.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await raw.unlink(...keys);
  } while (cursor !== '0');
  raw.disconnect();
}

const format = (n: number): string => Math.round(n).toLocaleString('en-US');
console.log(
  `\nRedis ${url.replace(/\/\/[^@]*@/, '//')}: ${total} messages of ~${Math.round(
    bodies.reduce((sum, body) => sum + body.length, 0) / total,
  )} B JSON, batches of ${batch}, median of ${rounds} rounds (msg/s)\n`,
);
const header = ['case', 'raw ioredis', 'ferry', 'ferry / raw'];
const rows = results.map((r) => [
  r.name,
  format(r.raw),
  format(r.ferry),
  `${(r.ferry / r.raw).toFixed(2)}×`,
]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]?.length ?? 0)));
const line = (cells: string[]): string =>
  `| ${cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join(' | ')} |`;
console.log(line(header));
console.log(
  `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
);
for (const row of rows) console.log(line(row));
