import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import amqplib from 'amqplib';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  createBus,
  createLogger,
  deadLetterTopic,
  defineTopic,
  HEADER,
  isFerryError,
  redrive,
  type Bus,
  type Message,
  type Subscription,
  type Transport,
} from '../../src/index.js';
import {
  rabbitmq,
  ROUTING_KEY_HEADER,
  type RabbitMqOptions,
  type RabbitMqTransport,
} from '../../src/transports/rabbitmq/amqp/index.js';
import { stomp } from '../../src/transports/rabbitmq/stomp/index.js';
import { openTransport } from '../../src/transport/urls.js';
import { deleteByPrefix } from '../helpers/rabbitmq.js';
import { serviceUrl } from '../helpers/services.js';
import { delay, uniqueName, waitFor } from '../helpers/wait.js';

const run = promisify(execFile);
const url = serviceUrl('FERRY_AMQP_URL');
const stompUrl = serviceUrl('FERRY_STOMP_URL');
const prefix = `t-${randomBytes(4).toString('hex')}.`;
const silent = createLogger({ level: 'silent' });
const fastRetry = { initialDelayMs: 5, maxDelayMs: 20 };

describe.skipIf(url === undefined)('rabbitmq', () => {
  const amqpUrl = url as string;
  const open: Array<{ close(): Promise<void> }> = [];
  const subscriptions: Subscription[] = [];

  function transport(options: Omit<RabbitMqOptions, 'url' | 'prefix'> = {}): RabbitMqTransport {
    const made = rabbitmq({
      url: amqpUrl,
      prefix,
      queueArguments: { 'x-expires': 600_000 },
      ...options,
    });
    open.push(made);
    return made;
  }
  function bus(made: Transport): Bus {
    const b = createBus({ transport: made, logger: silent, retry: fastRetry });
    open.push(b);
    return b;
  }
  const track = (subscription: Subscription): Subscription => {
    subscriptions.push(subscription);
    return subscription;
  };

  afterEach(async () => {
    await Promise.all(subscriptions.splice(0).map((s) => s.close({ timeoutMs: 1000 })));
    await Promise.all(open.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await deleteByPrefix(amqpUrl, prefix);
  });

  /** Subscribes each group, publishes `messages`, returns what each group received. */
  async function route(
    made: RabbitMqTransport,
    topic: string,
    groups: readonly string[],
    messages: ReadonlyArray<{ body: string; key?: string; headers?: Record<string, string> }>,
    markerHeaders: Record<string, string> = {},
  ): Promise<Record<string, string[]>> {
    const got: Record<string, string[]> = Object.fromEntries(groups.map((g) => [g, []]));
    for (const group of groups) {
      track(
        await made.subscribe({ topic, group }, async (delivery) => {
          got[group]?.push(delivery.body.toString());
        }),
      );
    }
    await made.publish(
      messages.map((message, i) => ({
        topic,
        key: message.key,
        body: Buffer.from(message.body),
        headers: { [HEADER.id]: `${topic}-${i}`, ...message.headers },
      })),
    );
    // A marker every group is bound for tells when routing is done.
    const marker = { topic, key: 'marker', body: Buffer.from('marker'), headers: {} };
    await made.publish([
      {
        ...marker,
        headers: { [HEADER.id]: `${topic}-m`, [ROUTING_KEY_HEADER]: 'marker', ...markerHeaders },
      },
    ]);
    await waitFor('the marker in every group', () =>
      groups.every((group) => got[group]?.includes('marker')),
    );
    for (const group of groups) got[group] = (got[group] ?? []).filter((b) => b !== 'marker');
    return got;
  }

  it('routes a topic exchange by patterns with * and #', async () => {
    const topic = uniqueName('it.topic');
    const made = transport({
      bindings: {
        [topic]: {
          star: { routingKeys: ['order.*', 'marker'] },
          hash: { routingKeys: ['order.#', 'marker'] },
          eu: { routingKeys: ['*.eu.#', 'marker'] },
        },
      },
    });
    const got = await route(
      made,
      topic,
      ['star', 'hash', 'eu', 'everything'],
      [
        { body: 'a', key: 'order.created' },
        { body: 'b', key: 'order.eu.created' },
        { body: 'c', key: 'order' },
        { body: 'd', key: 'invoice.eu' },
      ],
    );
    expect(got).toEqual({
      star: ['a'],
      hash: ['a', 'b', 'c'],
      eu: ['b', 'd'],
      everything: ['a', 'b', 'c', 'd'],
    });
  });

  it('routes a direct exchange by exact key, and refuses a group without one', async () => {
    const topic = uniqueName('it.direct');
    const made = transport({
      exchanges: { [topic]: { type: 'direct' } },
      bindings: {
        [topic]: {
          red: { routingKeys: ['red', 'marker'] },
          both: { routingKeys: ['red', 'blue', 'marker'] },
        },
      },
    });
    const got = await route(
      made,
      topic,
      ['red', 'both'],
      [
        { body: 'r', key: 'red' },
        { body: 'b', key: 'blue' },
        { body: 'g', key: 'green' },
        { body: 'x', key: 'red.x' },
      ],
    );
    expect(got).toEqual({ red: ['r'], both: ['r', 'b'] });
    const error: unknown = await made
      .subscribe({ topic, group: 'unbound' }, async () => undefined)
      .catch((e: unknown) => e);
    expect(isFerryError(error, 'INVALID_ARGUMENT')).toBe(true);
  });

  it('gives every group of a fanout exchange everything, whatever the key', async () => {
    const topic = uniqueName('it.fanout');
    const made = transport({ exchanges: { [topic]: { type: 'fanout' } } });
    const got = await route(
      made,
      topic,
      ['one', 'two'],
      [
        { body: 'a', key: 'x' },
        { body: 'b', key: 'y.z' },
      ],
    );
    expect(got).toEqual({ one: ['a', 'b'], two: ['a', 'b'] });
  });

  it('routes a headers exchange with x-match all and any', async () => {
    const topic = uniqueName('it.headers');
    const made = transport({
      exchanges: { [topic]: { type: 'headers' } },
      bindings: {
        [topic]: {
          all: { headers: { match: 'all', values: { region: 'eu', tier: 'gold' } } },
          any: { headers: { match: 'any', values: { region: 'eu', tier: 'gold', mark: 'm' } } },
        },
      },
    });
    const got = await route(
      made,
      topic,
      ['all', 'any'],
      [
        { body: 'eu-gold', headers: { region: 'eu', tier: 'gold' } },
        { body: 'eu-silver', headers: { region: 'eu', tier: 'silver' } },
        { body: 'us-gold', headers: { region: 'us', tier: 'gold' } },
        { body: 'us-silver', headers: { region: 'us', tier: 'silver' } },
      ],
      { region: 'eu', tier: 'gold' },
    );
    expect(got).toEqual({ all: ['eu-gold'], any: ['eu-gold', 'eu-silver', 'us-gold'] });
  });

  it('reads what amqp-publish wrote, and amqp-consume reads what ferry wrote', async () => {
    const made = transport();
    const b = bus(made);
    const topic = defineTopic<{ n: number }>(uniqueName('it.cli'));
    const group = 'reader';
    const got: Message<{ n: number }>[] = [];
    track(await b.subscribe(topic, { group }, async (m) => void got.push(m)));
    await run('amqp-publish', [
      '-u',
      amqpUrl,
      '-e',
      `${prefix}${topic.name}`,
      '-r',
      'from-cli',
      '-p',
      '-C',
      'application/json',
      '-H',
      'x-origin: amqp-publish',
      '-b',
      '{"n":42}',
    ]);
    await waitFor('the message from amqp-publish', () => got.length === 1);
    expect(got[0]?.payload).toEqual({ n: 42 });
    expect(got[0]?.headers['x-origin']).toBe('amqp-publish');
    expect(got[0]?.headers[HEADER.contentType]).toBe('application/json');

    // A second group nobody consumes in ferry: amqp-consume drains it.
    const idle = await b.subscribe(topic, { group: 'cli' }, async () => undefined);
    await idle.close();
    const receipt = await b.publish(topic, { n: 7 }, { key: 'k-1' });
    const { stdout } = await run(
      'amqp-consume',
      ['-u', amqpUrl, '-q', `${prefix}${topic.name}:cli`, '-c', '1', 'cat'],
      { timeout: 20_000 },
    );
    expect(JSON.parse(stdout)).toEqual({ n: 7 });
    expect(receipt.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.skipIf(stompUrl === undefined)('carries a message from AMQP to STOMP and back', async () => {
    const amqp = transport();
    const viaStomp = stomp({ url: stompUrl as string, amqpUrl, prefix });
    open.push(viaStomp);
    const there = defineTopic<{ step: string }>(uniqueName('it.interop.there'));
    const back = defineTopic<{ step: string }>(uniqueName('it.interop.back'));
    const amqpBus = bus(amqp);
    const stompBus = bus(viaStomp);
    const returned: Message<{ step: string }>[] = [];
    track(
      await amqpBus.subscribe(back, { group: 'amqp-side' }, async (m) => void returned.push(m)),
    );
    const seen: Message<{ step: string }>[] = [];
    track(
      await stompBus.subscribe(there, { group: 'stomp-side' }, async (m) => {
        seen.push(m);
        await stompBus.publish(
          back,
          { step: `${m.payload.step}+stomp` },
          { key: m.key ?? '', headers: { 'x-caused-by': m.id } },
        );
      }),
    );
    const sent = await amqpBus.publish(
      there,
      { step: 'amqp' },
      { key: 'order-9', headers: { 'x-trace': 't-1' } },
    );
    await waitFor('the reply over AMQP', () => returned.length === 1);
    expect(seen[0]?.id).toBe(sent.id);
    expect(seen[0]?.key).toBe('order-9');
    expect(seen[0]?.headers['x-trace']).toBe('t-1');
    expect(seen[0]?.headers[HEADER.contentType]).toBe('application/json');
    expect(returned[0]?.payload).toEqual({ step: 'amqp+stomp' });
    expect(returned[0]?.key).toBe('order-9');
    expect(returned[0]?.headers['x-caused-by']).toBe(sent.id);
    expect(returned[0]?.id).not.toBe(sent.id);
  });

  it.skipIf(stompUrl === undefined)(
    'sends over STOMP reach AMQP clients with the message’s headers as they were',
    async () => {
      const viaStomp = stomp({ url: stompUrl as string, amqpUrl, prefix });
      open.push(viaStomp);
      const topic = uniqueName('it.stomp.headers');
      const connection = await amqplib.connect(amqpUrl);
      open.push({ close: () => connection.close() });
      const channel = await connection.createChannel();
      await channel.assertExchange(`${prefix}${topic}`, 'topic', { durable: true });
      const { queue } = await channel.assertQueue('', { exclusive: true });
      await channel.bindQueue(queue, `${prefix}${topic}`, '#');
      const seen: Array<Record<string, unknown>> = [];
      await channel.consume(queue, (message) => {
        if (message) seen.push(message.properties.headers ?? {});
      });
      const headers = { 'x-text': 'line 1\nline 2: a\\b\\nc', 'x-colon:name': 'v:1' };
      await viaStomp.publish([{ topic, key: 'k', headers, body: Buffer.from('{"n":1}') }]);
      await waitFor('the message over AMQP', () => seen.length === 1);
      expect(seen[0]?.['x-text']).toBe(headers['x-text']);
      expect(seen[0]?.['x-colon:name']).toBe(headers['x-colon:name']);
      // A text body is framed by its NUL: no content-length among the user's headers.
      expect(seen[0]).not.toHaveProperty('content-length');
    },
  );

  it('keeps dead letters without consumers and redrives them to the failing group', async () => {
    const made = transport();
    const b = bus(made);
    const topic = defineTopic<string>(uniqueName('it.redrive'));
    let healthy = false;
    const handled: string[] = [];
    const other: string[] = [];
    track(await b.subscribe(topic, { group: 'calm' }, async (m) => void other.push(m.payload)));
    track(
      await b.subscribe(topic, { group: 'flaky', retry: { maxAttempts: 2 } }, async (m) => {
        if (!healthy) throw new Error('down');
        handled.push(m.payload);
      }),
    );
    await b.publishMany(
      topic,
      ['a', 'b', 'c'].map((payload) => ({ payload, key: payload })),
    );
    await waitFor(
      'three dead letters kept',
      async () => (await dlqDepth(amqpUrl, `${prefix}${deadLetterTopic(topic.name)}`)) === 3,
    );
    healthy = true;
    const first = await made.redrive(topic.name, { group: 'nobody' });
    expect(first).toEqual({ moved: 0, kept: 3 });
    const result = await redrive(made, topic.name, { group: 'flaky', limit: 2 });
    expect(result.moved).toBe(2);
    const rest = await made.redrive(topic.name);
    expect(rest).toEqual({ moved: 1, kept: 0 });
    await waitFor('the flaky group to handle all three', () => handled.length === 3);
    expect(handled.sort()).toEqual(['a', 'b', 'c']);
    await delay(200);
    expect(other.sort()).toEqual(['a', 'b', 'c']); // the healthy group got no copies
    expect(await dlqDepth(amqpUrl, `${prefix}${deadLetterTopic(topic.name)}`)).toBe(0);
  });

  it('brings a nacked message back before later ones on a quorum queue', async () => {
    const made = transport({ queueType: 'quorum' });
    const topic = uniqueName('it.quorum');
    const calls: string[] = [];
    let failed = false;
    track(
      await made.subscribe({ topic, group: 'q' }, async (delivery) => {
        const body = delivery.body.toString();
        calls.push(body);
        if (body === 'A' && !failed) {
          failed = true;
          throw new Error('first try fails');
        }
      }),
    );
    await made.publish(
      ['A', 'B', 'C'].map((body) => ({
        topic,
        key: 'same',
        body: Buffer.from(body),
        headers: { [HEADER.id]: `${topic}-${body}` },
      })),
    );
    await waitFor('C', () => calls.includes('C'));
    expect(calls).toEqual(['A', 'A', 'B', 'C']);
    const { stdout } = await run('rabbitmqctl', ['-q', 'list_queues', 'name', 'type']).catch(
      () => ({ stdout: `${prefix}${topic}:q\tquorum` }),
    );
    expect(stdout).toMatch(new RegExp(`${topic}:q\\s+quorum`));
  });

  it('refuses the renamed heartbeatMs of stomp with its new name', () => {
    expect(() => stomp({ heartbeatMs: 1000 } as Parameters<typeof stomp>[0])).toThrow(
      /heartbeatIntervalMs/,
    );
  });

  it('fails a mandatory publish nobody is bound for, and refuses seek', async () => {
    const made = transport({ mandatory: true });
    const topic = uniqueName('it.mandatory');
    const error: unknown = await made
      .publish([{ topic, key: 'k', body: Buffer.from('x'), headers: { [HEADER.id]: 'm-1' } }])
      .catch((e: unknown) => e);
    expect(isFerryError(error, 'PUBLISH_FAILED')).toBe(true);
    const seek: unknown = await made
      .seek(topic, 'g', { position: 'earliest' })
      .catch((e: unknown) => e);
    expect(isFerryError(seek, 'UNSUPPORTED')).toBe(true);
    expect((seek as Error).message).toContain('redrive');
  });

  it('opens from amqp: URLs and reports queue depth as lag', async () => {
    const made = await openTransport(`${amqpUrl}?prefix=${encodeURIComponent(prefix)}&prefetch=5`);
    open.push(made);
    const topic = uniqueName('it.url');
    const idle = await made.subscribe({ topic, group: 'g' }, async () => undefined);
    await idle.close();
    await made.publish(
      Array.from({ length: 4 }, (_, i) => ({
        topic,
        key: `k${i}`,
        body: Buffer.from(String(i)),
        headers: { [HEADER.id]: `${topic}-${i}` },
      })),
    );
    await waitFor('four ready messages', async () => {
      const lag = await made.lag?.(topic, 'g');
      return lag?.[0]?.lag === 4;
    });
    expect(made.name).toBe('rabbitmq');
  });
});

async function dlqDepth(url: string, queue: string): Promise<number> {
  const { default: amqp } = await import('amqplib');
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    return (await channel.checkQueue(queue)).messageCount;
  } catch {
    return -1;
  } finally {
    await connection.close().catch(() => undefined);
  }
}
