import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  bytesCodec,
  createBus,
  createLogger,
  deadLetterTopic,
  defineTopic,
  HEADER,
  isFerryError,
  PermanentError,
  type Bus,
  type Delivery,
  type Message,
  type Subscription,
  type Transport,
} from '../../src/index.js';
import { deferred, delay, uniqueName, waitFor } from '../helpers/wait.js';

export interface TransportUnderTest {
  /** A new client of the broker under test. Several may be open at once; the suite closes them. */
  create(): Transport | Promise<Transport>;
}

const silent = createLogger({ level: 'silent' });
const fastRetry = { initialDelayMs: 5, maxDelayMs: 20 };

/**
 * The behaviour every transport must show, run by each transport's test file with a
 * factory for its clients (or `undefined` when its service is not configured: the suite is
 * then reported as skipped). Capability flags decide which promises are checked.
 */
export function transportContract(name: string, subject: TransportUnderTest | undefined): void {
  describe.skipIf(subject === undefined)(`transport contract: ${name}`, () => {
    const open: Array<Transport | Bus> = [];
    const subscriptions: Subscription[] = [];

    async function client(): Promise<Transport> {
      const transport = await (subject as TransportUnderTest).create();
      open.push(transport);
      return transport;
    }
    async function bus(): Promise<Bus> {
      const made = createBus({ transport: await client(), logger: silent, retry: fastRetry });
      open.push(made);
      return made;
    }
    function track(subscription: Subscription): Subscription {
      subscriptions.push(subscription);
      return subscription;
    }

    afterEach(async () => {
      await Promise.all(subscriptions.splice(0).map((s) => s.close({ timeoutMs: 1000 })));
      await Promise.all(open.splice(0).map((c) => c.close({ timeoutMs: 1000 })));
    });

    it('delivers payload, key, headers and id as published', async () => {
      const b = await bus();
      const topic = defineTopic<{ n: number; text: string }>(uniqueName('ct.roundtrip'));
      const received: Message<{ n: number; text: string }>[] = [];
      const group = b.transport.capabilities.groups ? { group: uniqueName('g') } : {};
      track(await b.subscribe(topic, group, async (m) => void received.push(m)));
      const receipt = await b.publish(
        topic,
        { n: 1, text: 'héllo' },
        { key: 'order-1', headers: { 'x-trace': 'abc' } },
      );
      await waitFor('the message', () => received.length === 1);
      const [message] = received;
      expect(message?.payload).toEqual({ n: 1, text: 'héllo' });
      expect(message?.key).toBe('order-1');
      expect(message?.id).toBe(receipt.id);
      expect(message?.headers['x-trace']).toBe('abc');
      expect(message?.headers[HEADER.contentType]).toBe('application/json');
      expect(message?.createdAt.getTime()).toBeGreaterThan(Date.now() - 60_000);
    });

    it('gives every group (or every private subscriber) every message', async () => {
      const b = await bus();
      const topic = defineTopic<number>(uniqueName('ct.fanout'));
      const groups = b.transport.capabilities.groups;
      const seen = [new Set<number>(), new Set<number>()];
      for (const [index, set] of seen.entries()) {
        const options = groups ? { group: uniqueName(`g${index}`) } : {};
        track(await b.subscribe(topic, options, async (m) => void set.add(m.payload)));
      }
      const values = Array.from({ length: 30 }, (_, i) => i);
      await b.publishMany(
        topic,
        values.map((payload) => ({ payload, key: `k${payload % 7}` })),
      );
      await waitFor('both subscribers to get all', () => seen.every((s) => s.size === 30));
      for (const set of seen) expect([...set].sort((x, y) => x - y)).toEqual(values);
    });

    it('shares a group’s messages among its members', async (context) => {
      const first = await bus();
      if (!first.transport.capabilities.groups) return context.skip();
      const second = await bus();
      const topic = defineTopic<number>(uniqueName('ct.compete'));
      const group = uniqueName('g');
      const got: [number[], number[]] = [[], []];
      track(await first.subscribe(topic, { group }, async (m) => void got[0].push(m.payload)));
      track(await second.subscribe(topic, { group }, async (m) => void got[1].push(m.payload)));
      // Keep publishing (many keys) until both members have had work: groups may take a
      // moment to settle their shares.
      let sent = 0;
      await waitFor(
        'both members to receive messages',
        async () => {
          await first.publishMany(
            topic,
            Array.from({ length: 20 }, () => ({ payload: sent, key: `key-${sent++}` })),
          );
          await delay(100);
          return got[0].length > 0 && got[1].length > 0;
        },
        30_000,
      );
      await waitFor('every message', () => new Set([...got[0], ...got[1]]).size === sent);
      expect(new Set([...got[0], ...got[1]]).size).toBe(sent);
    });

    it('keeps order per key', async () => {
      const b = await bus();
      const topic = defineTopic<{ key: string; seq: number }>(uniqueName('ct.order'));
      const group = b.transport.capabilities.groups ? { group: uniqueName('g') } : {};
      const byKey = new Map<string, number[]>();
      track(
        await b.subscribe(topic, { ...group, concurrency: 4 }, async (m) => {
          const list = byKey.get(m.payload.key) ?? [];
          list.push(m.payload.seq);
          byKey.set(m.payload.key, list);
          if (m.payload.seq % 7 === 0) await delay(2);
        }),
      );
      const keys = ['a', 'b', 'c', 'd', 'e'];
      for (let round = 0; round < 4; round++) {
        await b.publishMany(
          topic,
          Array.from({ length: 50 }, (_, i) => {
            const key = keys[i % keys.length] as string;
            return { key, payload: { key, seq: round * 10 + Math.floor(i / keys.length) } };
          }),
        );
      }
      const expected = Array.from({ length: 40 }, (_, i) => i);
      await waitFor('all messages', () => keys.every((k) => byKey.get(k)?.length === 40));
      for (const key of keys) expect(byKey.get(key)).toEqual(expected);
    });

    it('hands a rejected delivery out again before later messages of its key', async (context) => {
      const transport = await client();
      if (transport.capabilities.delivery !== 'at-least-once') return context.skip();
      const topic = uniqueName('ct.redeliver');
      const calls: string[] = [];
      let failed = false;
      const options = transport.capabilities.groups ? { group: uniqueName('g') } : {};
      track(
        await transport.subscribe({ topic, ...options }, async (delivery: Delivery) => {
          const body = delivery.body.toString();
          calls.push(body);
          if (body === '"A"' && !failed) {
            failed = true;
            throw new Error('first try fails');
          }
        }),
      );
      await transport.publish(
        ['"A"', '"B"'].map((body, i) => ({
          topic,
          key: 'same-key',
          body: Buffer.from(body),
          headers: { [HEADER.id]: `${topic}-${i}` },
        })),
      );
      await waitFor('A twice then B', () => calls.includes('"B"'));
      expect(calls).toEqual(['"A"', '"A"', '"B"']);
    });

    it('close waits for the handler in flight and acknowledges its message', async (context) => {
      const b = await bus();
      if (
        !b.transport.capabilities.groups ||
        b.transport.capabilities.delivery !== 'at-least-once'
      ) {
        return context.skip();
      }
      const topic = defineTopic<string>(uniqueName('ct.drain'));
      const group = uniqueName('g');
      const started = deferred();
      let finished = false;
      const subscription = await b.subscribe(topic, { group }, async () => {
        started.resolve();
        await delay(300);
        finished = true;
      });
      await b.publish(topic, 'slow', { key: 'k' });
      await started.promise;
      await subscription.close();
      expect(finished).toBe(true);

      const again: string[] = [];
      const b2 = await bus();
      track(await b2.subscribe(topic, { group }, async (m) => void again.push(m.payload)));
      await b2.publish(topic, 'marker', { key: 'k' });
      await waitFor('the marker', () => again.includes('marker'));
      expect(again).toEqual(['marker']);
    });

    it('hands out again a message whose handler had not finished when its consumer stopped', async (context) => {
      const b = await bus();
      if (
        !b.transport.capabilities.groups ||
        b.transport.capabilities.delivery !== 'at-least-once'
      ) {
        return context.skip();
      }
      const topic = defineTopic<string>(uniqueName('ct.abandon'));
      const group = uniqueName('g');
      const started = deferred();
      const stuck = await b.subscribe(topic, { group }, async () => {
        started.resolve();
        await new Promise(() => undefined); // never finishes: the consumer "dies" holding it
      });
      await b.publish(topic, 'orphan', { key: 'k' });
      await started.promise;
      await stuck.close({ timeoutMs: 100 });

      const b2 = await bus();
      const again: string[] = [];
      track(await b2.subscribe(topic, { group }, async (m) => void again.push(m.payload)));
      await waitFor('the orphan to come back', () => again.includes('orphan'), 30_000);
    });

    it('replays a group from the earliest message and from a point in time', async (context) => {
      const b = await bus();
      const { replay, groups } = b.transport.capabilities;
      const topic = defineTopic<string>(uniqueName('ct.replay'));
      const group = uniqueName('g');
      if (!replay || !groups) {
        const error: unknown = await b.transport
          .seek(topic.name, group, { position: 'earliest' })
          .catch((e: unknown) => e);
        expect(isFerryError(error, 'UNSUPPORTED')).toBe(true);
        return context.skip();
      }
      const consumeAll = async (expected: number): Promise<string[]> => {
        const got: string[] = [];
        const subscription = await b.subscribe(
          topic,
          { group },
          async (m) => void got.push(m.payload),
        );
        await waitFor(`${expected} messages`, () => got.length >= expected);
        await delay(200);
        await subscription.close();
        return got.sort();
      };
      await b.publishMany(
        topic,
        ['a1', 'a2', 'a3'].map((payload) => ({ payload, key: payload })),
      );
      await delay(100);
      const middle = new Date();
      await delay(100);
      await b.publishMany(
        topic,
        ['b1', 'b2'].map((payload) => ({ payload, key: payload })),
      );
      expect(await consumeAll(5)).toEqual(['a1', 'a2', 'a3', 'b1', 'b2']);

      await b.transport.seek(topic.name, group, { timestamp: middle });
      expect(await consumeAll(2)).toEqual(['b1', 'b2']);

      await b.transport.seek(topic.name, group, { position: 'earliest' });
      expect(await consumeAll(5)).toEqual(['a1', 'a2', 'a3', 'b1', 'b2']);
    });

    it('refuses a group where it has none, with UNSUPPORTED', async (context) => {
      const transport = await client();
      if (transport.capabilities.groups) return context.skip();
      const error: unknown = await transport
        .subscribe({ topic: uniqueName('ct.nogroup'), group: 'g' }, async () => undefined)
        .catch((e: unknown) => e);
      expect(isFerryError(error, 'UNSUPPORTED')).toBe(true);
    });

    it('retries a failing handler, then dead-letters with the error and attempts', async () => {
      const b = await bus();
      const topic = defineTopic<string>(uniqueName('ct.dlq'));
      const group = b.transport.capabilities.groups ? { group: uniqueName('g') } : {};
      const dead: Message<string>[] = [];
      const dlq = defineTopic<string>(deadLetterTopic(topic.name));
      track(await b.subscribe(dlq, { ...group }, async (m) => void dead.push(m)));
      let attempts = 0;
      track(
        await b.subscribe(topic, { ...group, retry: { maxAttempts: 3 } }, async (m) => {
          attempts++;
          if (m.payload === 'bad') throw new Error('cannot handle bad');
          if (m.payload === 'poison') throw new PermanentError('never valid');
        }),
      );
      const sent = await b.publish(topic, 'bad', { key: 'k1', headers: { 'x-origin': 'test' } });
      await b.publish(topic, 'poison', { key: 'k2' });
      await waitFor('two dead letters', () => dead.length === 2);
      const bad = dead.find((m) => m.payload === 'bad');
      const poison = dead.find((m) => m.payload === 'poison');
      expect(bad?.id).toBe(sent.id);
      expect(bad?.headers[HEADER.dlqAttempts]).toBe('3');
      expect(bad?.headers[HEADER.dlqReason]).toBe('failed');
      expect(bad?.headers[HEADER.dlqError]).toContain('cannot handle bad');
      expect(bad?.headers['x-origin']).toBe('test');
      expect(poison?.headers[HEADER.dlqAttempts]).toBe('1');
      expect(poison?.headers[HEADER.dlqReason]).toBe('permanent');
      expect(attempts).toBe(4);
    });

    it('dead-letters undecodable and schema-invalid messages and keeps consuming', async () => {
      const b = await bus();
      const topic = defineTopic(uniqueName('ct.invalid'), {
        schema: z.object({ orderId: z.string(), amount: z.number().positive() }),
      });
      const group = b.transport.capabilities.groups ? { group: uniqueName('g') } : {};
      const dead: Message<Uint8Array>[] = [];
      // Dead letters keep the original body, which may not be JSON: read them as bytes.
      const dlq = defineTopic(deadLetterTopic(topic.name), { codec: bytesCodec });
      track(await b.subscribe(dlq, group, async (m) => void dead.push(m)));
      const good: string[] = [];
      track(await b.subscribe(topic, group, async (m) => void good.push(m.payload.orderId)));
      const raw = (body: string, i: number) => ({
        topic: topic.name,
        key: 'k',
        body: Buffer.from(body),
        headers: { [HEADER.id]: `${topic.name}-${i}`, [HEADER.contentType]: 'application/json' },
      });
      await b.transport.publish([
        raw('{not json', 1),
        raw('{"orderId":"o-1","amount":-5}', 2),
        raw('{"orderId":"o-2","amount":5}', 3),
      ]);
      await waitFor('one good and two dead', () => good.length === 1 && dead.length === 2);
      expect(good).toEqual(['o-2']);
      expect(dead.map((m) => m.headers[HEADER.dlqReason]).sort()).toEqual(['decode', 'schema']);
    });

    it('rejects a payload that breaks the schema before sending, and an oversized one', async () => {
      const b = await bus();
      const topic = defineTopic(uniqueName('ct.reject'), { schema: z.object({ n: z.number() }) });
      const invalid: unknown = await b
        .publish(topic, { n: 'one' } as unknown as { n: number })
        .catch((e: unknown) => e);
      expect(isFerryError(invalid, 'SCHEMA_VIOLATION')).toBe(true);
      const limit = b.transport.capabilities.maxMessageBytes;
      if (limit <= 64 * 1024 * 1024) {
        const big = defineTopic<string>(uniqueName('ct.big'));
        const error: unknown = await b.publish(big, 'x'.repeat(limit + 1)).catch((e: unknown) => e);
        expect(isFerryError(error, 'MESSAGE_TOO_LARGE')).toBe(true);
      }
    });
  });
}
