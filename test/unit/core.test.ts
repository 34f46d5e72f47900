import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadDriver } from '../../src/core/driver.js';
import {
  bytesCodec,
  createBus,
  createLogger,
  defineTopic,
  FerryError,
  isFerryError,
  jsonCodec,
  redactSecrets,
  redactUrl,
  type Inbox,
  type Message,
} from '../../src/index.js';
import { deliveryCreatedMs, hashKey, partitionFor, type Delivery } from '../../src/core/message.js';
import { backoffDelay, resolveRetry, sleep } from '../../src/core/retry.js';
import { validatePayload } from '../../src/core/topic.js';
import { memory } from '../../src/transports/memory/index.js';
import { openTransport } from '../../src/transport/urls.js';

async function waitUntil(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await sleep(10);
  expect(check()).toBe(true);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

describe('errors', () => {
  it('carries a code, details and cause', () => {
    const cause = new Error('socket hang up');
    const error = new FerryError('CONNECTION_FAILED', 'broker down', {
      cause,
      details: { port: 1 },
    });
    expect(isFerryError(error, 'CONNECTION_FAILED')).toBe(true);
    expect(isFerryError(error, 'TIMEOUT')).toBe(false);
    expect(error.cause).toBe(cause);
    expect(error.details).toEqual({ port: 1 });
  });
});

describe('topics', () => {
  it.each(['bad topic', '', '.hidden', 'x'.repeat(201), 'a;b', 'ü'])(
    'refuses the name %j',
    (name) => {
      expect(() => defineTopic(name)).toThrowError(
        expect.objectContaining({ code: 'INVALID_NAME' }) as Error,
      );
    },
  );

  it('validates payloads with any Standard Schema and returns the parsed value', async () => {
    const topic = defineTopic('orders', {
      schema: z.object({ id: z.string(), qty: z.coerce.number() }),
    });
    await expect(validatePayload(topic, { id: 'a', qty: '3' })).resolves.toEqual({
      id: 'a',
      qty: 3,
    });
    const error = await rejection(validatePayload(topic, { qty: 'x' }));
    expect(isFerryError(error, 'SCHEMA_VIOLATION')).toBe(true);
    expect((error as Error).message).toMatch(/id/);
  });
});

describe('codecs', () => {
  it('round-trips JSON and refuses what JSON cannot hold', () => {
    expect(jsonCodec.decode(jsonCodec.encode({ a: [1, 'b'] }))).toEqual({ a: [1, 'b'] });
    expect(() => jsonCodec.encode(undefined)).toThrowError(
      expect.objectContaining({ code: 'CODEC_FAILED' }) as Error,
    );
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => jsonCodec.encode(cyclic)).toThrowError(
      expect.objectContaining({ code: 'CODEC_FAILED' }) as Error,
    );
    expect(() => jsonCodec.decode(Buffer.from('{'))).toThrowError(
      expect.objectContaining({ code: 'CODEC_FAILED' }) as Error,
    );
  });

  it('passes bytes through untouched', () => {
    const bytes = new Uint8Array([0, 255, 7]);
    expect([...bytesCodec.decode(bytesCodec.encode(bytes))]).toEqual([0, 255, 7]);
  });
});

describe('retry policy', () => {
  it('grows exponentially up to the cap, without jitter when asked', () => {
    const policy = resolveRetry({ initialDelayMs: 100, factor: 2, maxDelayMs: 1000, jitter: 0 });
    expect([1, 2, 3, 4, 5, 6].map((attempt) => backoffDelay(policy, attempt))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
  });

  it('keeps jitter within its spread', () => {
    const policy = resolveRetry({ initialDelayMs: 1000, jitter: 0.2 });
    for (let i = 0; i < 100; i++) {
      const delay = backoffDelay(policy, 1);
      expect(delay).toBeGreaterThanOrEqual(800);
      expect(delay).toBeLessThanOrEqual(1200);
    }
  });

  it('refuses nonsense and stops waiting when aborted', async () => {
    expect(() => resolveRetry({ maxAttempts: 0 })).toThrowError(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }) as Error,
    );
    const controller = new AbortController();
    const waiting = sleep(60_000, controller.signal);
    controller.abort();
    expect(isFerryError(await rejection(waiting), 'CLOSED')).toBe(true);
  });
});

describe('keys and partitions', () => {
  it('hashes keys stably (FNV-1a) so every process picks the same partition', () => {
    expect(hashKey('')).toBe(0x811c9dc5);
    expect(hashKey('a')).toBe(0xe40c292c);
    expect(partitionFor('customer-42', 16)).toBe(partitionFor('customer-42', 16));
  });
});

describe('URLs and drivers', () => {
  it('redacts passwords', () => {
    expect(redactUrl('amqp://guest:s3cret@127.0.0.1:5672/vhost')).toBe(
      'amqp://guest:***@127.0.0.1:5672/vhost',
    );
    expect(redactUrl('postgres://app:p%40ss@db/test')).toBe('postgres://app:***@db/test');
  });

  it.each([
    // password as typed, without percent-encoding: `@`, `/`, space, `:`
    [
      'postgres://postgres:Zq9@SecretPw@127.0.0.1:5432/test',
      'postgres://postgres:***@127.0.0.1:5432/test',
    ],
    ['mysql://root:a/b/Secret@127.0.0.1:3306/test', 'mysql://root:***@127.0.0.1:3306/test'],
    ['amqp://guest:Secret word@127.0.0.1:5672', 'amqp://guest:***@127.0.0.1:5672'],
    ['redis://:Se:cr:et@127.0.0.1:6379', 'redis://:***@127.0.0.1:6379'],
    ['stomp://u:@/ :Secret@@h:61613', 'stomp://u:***@h:61613'],
    // inside a sentence, beside another URL, over several lines
    [
      'migrated postgres://postgres:Zq9@Secret/Pw x@127.0.0.1/test: outbox with 16 partitions',
      'migrated postgres://postgres:***@127.0.0.1/test: outbox with 16 partitions',
    ],
    [
      'from postgres://a:Secret1@db/x to kafka://b:Secret2@k1:9092,k2:9092',
      'from postgres://a:***@db/x to kafka://b:***@k1:9092,k2:9092',
    ],
    ['amqp://u:Secret@h\nsee ops@example.com', 'amqp://u:***@h\nsee ops@example.com'],
    // secret query parameters
    [
      'postgres://db/test?user=app&password=Secret&sslmode=require',
      'postgres://db/test?user=app&password=***&sslmode=require',
    ],
    ['kafka://k:9092?sasl_password=Secret', 'kafka://k:9092?sasl_password=***'],
    ['redis://h:6379?token=Secret#x', 'redis://h:6379?token=***#x'],
    // a secret parameter outside any URL
    ['retrying with ?api_key=Secret&x=1', 'retrying with ?api_key=***&x=1'],
    // nothing to hide: unchanged
    [
      'kafka://127.0.0.1:9092 is down: ECONNREFUSED',
      'kafka://127.0.0.1:9092 is down: ECONNREFUSED',
    ],
    ['sqlite:./app.db', 'sqlite:./app.db'],
  ])('redacts %j', (text, redacted) => {
    expect(redactSecrets(text)).toBe(redacted);
    expect(redactSecrets(text)).not.toMatch(/Secret|Zq9/);
  });

  it('names the supported schemes when a URL has an unknown one', async () => {
    const error = await rejection(openTransport('mqtt://user:pw@127.0.0.1:1883'));
    expect(isFerryError(error, 'INVALID_URL')).toBe(true);
    expect((error as Error).message).toContain('sqlite:');
    expect((error as Error).message).not.toContain('pw@');
    expect(isFerryError(await rejection(openTransport('not a url')), 'INVALID_URL')).toBe(true);
  });

  it('turns a missing client package into DRIVER_MISSING with the install command', async () => {
    const missing = 'ferry-no-such-driver';
    const error = await rejection(loadDriver(missing, () => import(missing)));
    expect(isFerryError(error, 'DRIVER_MISSING')).toBe(true);
    expect((error as Error).message).toContain(`npm install ${missing}`);
  });

  it('keeps the core free of driver imports', () => {
    const drivers = ['better-sqlite3', 'pg', 'mysql2', 'ioredis', 'amqplib', '@platformatic/kafka'];
    const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(file, 'utf8');
      // Static imports only: drivers are loaded with dynamic import() on first use.
      for (const [, specifier] of source.matchAll(
        /^(?:import|export)\s+(?!type\b)(?:[^'";]*\sfrom\s+)?['"]([^'"]+)['"]/gm,
      )) {
        if (!specifier) continue;
        expect(drivers, `${file} imports ${specifier}`).not.toContain(specifier);
        if (specifier.startsWith('.'))
          visit(join(dirname(file), specifier.replace(/\.js$/, '.ts')));
      }
    };
    visit(join(root, 'index.ts'));
    expect(seen.size).toBeGreaterThan(5);
  });
});

describe('bus', () => {
  it('dates a message by its created-at header, else by when it arrived', async () => {
    const bus = createBus({ transport: memory(), logger: createLogger({ level: 'silent' }) });
    const topic = defineTopic<string>('dated');
    const received: Message<string>[] = [];
    const arrived: number[] = [];
    await bus.subscribe(topic, { group: 'g' }, async (message) => {
      arrived.push(Date.now());
      received.push(message);
    });
    const at = '2020-02-02T02:02:02.020Z';
    await bus.transport.publish([
      { topic: 'dated', key: 'k', body: Buffer.from('"a"'), headers: { 'ferry-created-at': at } },
      { topic: 'dated', key: 'k', body: Buffer.from('"b"'), headers: {} },
      {
        topic: 'dated',
        key: 'k',
        body: Buffer.from('"c"'),
        headers: { 'ferry-created-at': 'not a date' },
      },
    ]);
    await waitUntil(() => received.length === 3);
    await sleep(30);
    const [dated, undated, invalid] = received;
    expect(dated?.createdAt.toISOString()).toBe(at);
    for (const [index, message] of [undated, invalid].entries()) {
      const createdAt = message?.createdAt.getTime() ?? 0;
      // When it arrived, not when the handler (or anyone later) first read it.
      expect(createdAt).toBeLessThanOrEqual(arrived[index + 1] ?? 0);
      expect(Date.now() - createdAt).toBeGreaterThanOrEqual(25);
      expect(message?.createdAt.getTime()).toBe(createdAt);
      expect({ ...message }.createdAt?.getTime()).toBe(createdAt);
    }
    expect(JSON.parse(JSON.stringify(dated))).toMatchObject({ createdAt: at, payload: 'a' });
    await bus.close();
  });

  it('reads each delivery’s own created-at, however partitions and texts interleave', () => {
    const delivery = (partition: number, createdAt: string | undefined): Delivery => ({
      topic: 't',
      key: undefined,
      body: Buffer.alloc(0),
      partition,
      offset: '0',
      headers: createdAt === undefined ? {} : { 'ferry-created-at': createdAt },
      brokerTime: new Date(5),
    });
    const texts = ['2021-01-01T00:00:00.001Z', '2022-02-02T00:00:00.002Z', 'not a date'];
    // Partitions 0 and 16 share a slot of the cache; 1 and 3 do not.
    const partitions = [0, 16, 1, 0, 3, 16, 0];
    for (let round = 0; round < 3; round++) {
      for (const [index, partition] of partitions.entries()) {
        const text = texts[(index + round) % texts.length];
        const expected = text === 'not a date' ? 5 : Date.parse(text ?? '');
        expect(deliveryCreatedMs(delivery(partition, text), 7)).toBe(expected);
      }
    }
    expect(deliveryCreatedMs(delivery(2, undefined), 7)).toBe(5);
    expect(deliveryCreatedMs({ ...delivery(2, undefined), brokerTime: undefined }, 7)).toBe(7);
  });

  it('refuses an inbox without a consumer group', async () => {
    const bus = createBus({ transport: memory(), logger: createLogger({ level: 'silent' }) });
    const inbox: Inbox<undefined> = { process: async () => ({ duplicate: false }) };
    const topic = defineTopic<number>('numbers');
    const error = await rejection(
      bus.subscribe(
        topic,
        { inbox } as unknown as { inbox: Inbox<undefined>; group: string },
        async () => undefined,
      ),
    );
    expect(isFerryError(error, 'INVALID_ARGUMENT')).toBe(true);
    await bus.close();
  });

  it('runs the handler inside the inbox and skips duplicates', async () => {
    const bus = createBus({ transport: memory(), logger: createLogger({ level: 'silent' }) });
    const seen = new Set<string>();
    const effects: string[] = [];
    const inbox: Inbox<{ tag: string }> = {
      async process(group, id, work) {
        if (seen.has(`${group}/${id}`)) return { duplicate: true };
        await work({ tag: 'tx' });
        seen.add(`${group}/${id}`);
        return { duplicate: false };
      },
    };
    const topic = defineTopic<string>('inboxed');
    await bus.subscribe(topic, { group: 'g', inbox }, async (message, { tx }) => {
      effects.push(`${tx.tag}:${message.payload}`);
    });
    const { id } = await bus.publish(topic, 'once');
    // The same message delivered again (as after a relay crash) has no second effect.
    await bus.transport.publish([
      {
        topic: 'inboxed',
        key: undefined,
        body: Buffer.from('"once"'),
        headers: { 'ferry-id': id },
      },
      {
        topic: 'inboxed',
        key: undefined,
        body: Buffer.from('"twice"'),
        headers: { 'ferry-id': 'other' },
      },
    ]);
    await expect.poll(() => effects.length).toBe(2);
    expect(effects.sort()).toEqual(['tx:once', 'tx:twice']);
    await bus.close();
  });
});
