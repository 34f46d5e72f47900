import { afterAll, afterEach, describe, expect, it } from 'vitest';
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
  deliveryId,
} from '../../src/index.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sqliteInbox } from '../../src/sqlite.js';
import type { ForeignPublisher } from '../helpers/foreign.js';
import { deferred, delay, uniqueName, waitFor } from '../helpers/wait.js';

export interface TransportUnderTest {
  /** A new client of the broker under test. Several may be open at once; the suite closes them. */
  create(): Transport | Promise<Transport>;
  /**
   * A publisher that is not ferry (the broker's own client library), for the cases of
   * messages from other systems. Called after `create`. The suite closes it.
   */
  foreign?(): ForeignPublisher | Promise<ForeignPublisher>;
}

/** For transports whose only client is ferry's own (memory): publish without ferry's headers. */
export function publishingThrough(transport: Transport): ForeignPublisher {
  return {
    headers: true,
    publish: (topic, messages) =>
      transport.publish(
        messages.map((m) => ({ topic, key: m.key, headers: { ...m.headers }, body: m.body })),
      ),
    close: () => transport.close({ timeoutMs: 1000 }),
  };
}

/** Lines a logger wrote, parsed. */
function captureLog(): {
  logger: ReturnType<typeof createLogger>;
  lines: Record<string, unknown>[];
} {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'info',
    destination: {
      write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>),
    },
  });
  return { logger, lines };
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
    const foreigners: ForeignPublisher[] = [];
    const scratch = mkdtempSync(join(tmpdir(), 'ferry-contract-'));

    async function foreign(): Promise<ForeignPublisher | undefined> {
      if (!subject?.foreign) return undefined;
      const publisher = await subject.foreign();
      foreigners.push(publisher);
      return publisher;
    }
    async function inboxed(): Promise<ReturnType<typeof sqliteInbox>> {
      const inbox = sqliteInbox({ database: join(scratch, `${uniqueName('inbox')}.db`) });
      await inbox.migrate();
      return inbox;
    }

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
      await Promise.all(foreigners.splice(0).map((f) => f.close()));
    });
    afterAll(() => rmSync(scratch, { recursive: true, force: true }));

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
      expect(message?.createdAt.toISOString()).toBe(message?.headers[HEADER.createdAt]);
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

    it('refuses an explicit start it cannot honour, with UNSUPPORTED', async (context) => {
      const transport = await client();
      if (transport.capabilities.replay) return context.skip();
      const group = transport.capabilities.groups ? { group: uniqueName('g') } : {};
      const error: unknown = await transport
        .subscribe({ topic: uniqueName('ct.from'), ...group, from: 'earliest' }, async () => {})
        .catch((e: unknown) => e);
      expect(isFerryError(error, 'UNSUPPORTED')).toBe(true);
    });

    it('never takes two different foreign messages for one, across reconnects', async (context) => {
      const publisher = await foreign();
      if (!publisher) return context.skip();
      const topic = defineTopic<string>(uniqueName('ct.foreign'));
      const inbox = await inboxed();
      const name = uniqueName('g');
      const handled: string[] = [];
      let duplicates = 0;
      const counting: typeof inbox = {
        ...inbox,
        process: async (group, id, work) => {
          const result = await inbox.process(group, id, work);
          if (result.duplicate) duplicates++;
          return result;
        },
      };
      const consume = async (): Promise<Subscription> => {
        const b = await bus();
        const membership = b.transport.capabilities.groups ? { group: name } : { consumer: name };
        return b.subscribe(topic, { ...membership, inbox: counting }, async (m) => {
          handled.push(m.payload);
        });
      };
      const send = (values: string[]): Promise<void> =>
        publisher.publish(
          topic.name,
          values.map((value) => ({ body: Buffer.from(JSON.stringify(value)), key: 'k' })),
        );
      const first = await consume();
      await send(['a', 'b', 'c']);
      await waitFor('the first three', () => handled.length + duplicates >= 3);
      await first.close();
      // A new connection: per-connection counters (delivery tags, arrival counts) start again.
      track(await consume());
      await send(['d', 'e', 'f']);
      await waitFor('the next three', () => handled.length + duplicates >= 6);
      expect(duplicates).toBe(0);
      expect(handled.sort()).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
      await inbox.close();
    });

    it('keys the inbox on the id a messageId function finds', async (context) => {
      const publisher = await foreign();
      if (!publisher?.headers) return context.skip();
      const b = await bus();
      const topic = defineTopic<string>(uniqueName('ct.foreignid'));
      const inbox = await inboxed();
      const name = uniqueName('g');
      const membership = b.transport.capabilities.groups ? { group: name } : { consumer: name };
      const handled: string[] = [];
      const ids: string[] = [];
      track(
        await b.subscribe(
          topic,
          {
            ...membership,
            inbox,
            messageId: (delivery) => delivery.headers['x-request-id'],
          },
          async (m) => {
            handled.push(m.payload);
            ids.push(m.id);
          },
        ),
      );
      await publisher.publish(
        topic.name,
        ['first', 'again', 'other'].map((value, i) => ({
          body: Buffer.from(JSON.stringify(value)),
          key: 'k',
          headers: { 'x-request-id': i < 2 ? 'r-1' : 'r-2' },
        })),
      );
      await waitFor('the other request', () => handled.includes('other'));
      expect(handled).toEqual(['first', 'other']);
      expect(ids).toEqual(['r-1', 'r-2']);
      await inbox.close();
    });

    it('gives a foreign message the same id each time it is handed out, where it has a position', async (context) => {
      const transport = await client();
      const publisher = await foreign();
      if (!publisher || transport.capabilities.identity !== 'position') return context.skip();
      const topic = uniqueName('ct.foreignpos');
      const seen: string[] = [];
      track(
        await transport.subscribe({ topic, group: uniqueName('g') }, async (delivery) => {
          seen.push(deliveryId(delivery, transport.capabilities.identity) ?? 'none');
          if (seen.length === 1) throw new Error('first try fails');
        }),
      );
      await publisher.publish(topic, [{ body: Buffer.from('"x"'), key: 'k' }]);
      await waitFor('the second try', () => seen.length >= 2);
      expect(seen[0]).not.toBe('none');
      expect(seen[1]).toBe(seen[0]);
    });

    it('dead-letters what it cannot dead-letter whole without its body, and goes on', async (context) => {
      const publisher = await foreign();
      if (!publisher) return context.skip();
      const { logger, lines } = captureLog();
      const transport = await client();
      const b = createBus({ transport, logger, audit: true, retry: fastRetry });
      open.push(b);
      const topic = defineTopic<string>(uniqueName('ct.huge'));
      const group = transport.capabilities.groups ? { group: uniqueName('g') } : {};
      const dead: Message<Uint8Array>[] = [];
      const dlq = defineTopic(deadLetterTopic(topic.name), { codec: bytesCodec });
      track(await b.subscribe(dlq, group, async (m) => void dead.push(m)));
      const good: string[] = [];
      track(await b.subscribe(topic, group, async (m) => void good.push(m.payload)));
      const size = transport.capabilities.maxMessageBytes + 1;
      const sent = await publisher
        .publish(topic.name, [{ body: Buffer.alloc(size, 'x'), key: 'k' }])
        .then(
          () => true,
          (error: unknown) => {
            if (isFerryError(error, 'MESSAGE_TOO_LARGE')) return false;
            throw error;
          },
        );
      if (!sent) return context.skip(); // the broker itself takes nothing bigger
      await publisher.publish(topic.name, [{ body: Buffer.from('"after"'), key: 'k' }]);
      await waitFor(
        'the dead letter and the next message',
        () => dead.length === 1 && good.length === 1,
        60_000,
      );
      const [letter] = dead;
      expect(good).toEqual(['after']);
      expect(letter?.payload.length).toBe(0);
      expect(letter?.headers[HEADER.dlqReason]).toBe('decode');
      expect(letter?.headers[HEADER.dlqBody]).toBe('omitted');
      expect(letter?.headers[HEADER.dlqSize]).toBe(String(size));
      expect(letter?.headers[HEADER.dlqOrigin]).toContain(topic.name);
      const outcomes = lines.filter(
        (line) => line.event === 'consume' && line.topic === topic.name,
      );
      expect(outcomes.map((line) => line.result).sort()).toEqual(['dead-lettered', 'ok']);
    }, 90_000);

    it('dead-letters a message whose envelope it cannot read, and goes on', async (context) => {
      const publisher = await foreign();
      if (!publisher?.publishUnreadable) return context.skip();
      const b = await bus();
      const topic = defineTopic<string>(uniqueName('ct.unreadable'));
      const group = { group: uniqueName('g') };
      const dead: Message<Uint8Array>[] = [];
      const dlq = defineTopic(deadLetterTopic(topic.name), { codec: bytesCodec });
      track(await b.subscribe(dlq, group, async (m) => void dead.push(m)));
      const good: string[] = [];
      track(await b.subscribe(topic, group, async (m) => void good.push(m.payload)));
      await publisher.publishUnreadable(topic.name, 'k');
      await publisher.publish(topic.name, [{ body: Buffer.from('"after"'), key: 'k' }]);
      await waitFor(
        'the dead letter and the next message',
        () => dead.length === 1 && good.length === 1,
      );
      expect(dead[0]?.headers[HEADER.dlqReason]).toBe('decode');
      expect(good).toEqual(['after']);
    });

    it('acknowledges what resolved before close abandoned a stuck handler', async (context) => {
      const b = await bus();
      const { groups, delivery } = b.transport.capabilities;
      if (!groups || delivery !== 'at-least-once') return context.skip();
      const topic = defineTopic<string>(uniqueName('ct.abandonbatch'));
      const group = uniqueName('g');
      const stuck = deferred();
      const stuckSub = await b.subscribe(topic, { group }, async (m) => {
        if (m.payload === 'stuck') {
          stuck.resolve();
          await new Promise(() => undefined);
        }
      });
      await b.publishMany(
        topic,
        ['one', 'two', 'stuck'].map((payload) => ({ payload, key: 'k' })),
      );
      await stuck.promise;
      await stuckSub.close({ timeoutMs: 100 });

      const b2 = await bus();
      const again: string[] = [];
      track(await b2.subscribe(topic, { group }, async (m) => void again.push(m.payload)));
      await b2.publish(topic, 'marker', { key: 'k' });
      await waitFor('the marker', () => again.includes('marker'), 30_000);
      expect(again).toEqual(['stuck', 'marker']);
    });

    it('finishes a subscription close under way before closing the connection', async (context) => {
      const b = await bus();
      const { groups, delivery } = b.transport.capabilities;
      if (!groups || delivery !== 'at-least-once') return context.skip();
      const topic = defineTopic<string>(uniqueName('ct.closeboth'));
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
      const closing = subscription.close();
      await b.close();
      await closing;
      expect(finished).toBe(true);

      const b2 = await bus();
      const again: string[] = [];
      track(await b2.subscribe(topic, { group }, async (m) => void again.push(m.payload)));
      await b2.publish(topic, 'marker', { key: 'k' });
      // A message left unacknowledged would come back before the marker (same key).
      await waitFor('the marker', () => again.includes('marker'), 30_000);
      expect(again).toEqual(['marker']);
    });

    it('gives a foreign message the time the broker took it as createdAt', async (context) => {
      const publisher = await foreign();
      const b = await bus();
      if (!publisher || !b.transport.capabilities.replay) return context.skip();
      const topic = defineTopic<string>(uniqueName('ct.foreigntime'));
      await publisher.publish(topic.name, [{ body: Buffer.from('"then"'), key: 'k' }]);
      const afterPublish = Date.now();
      await delay(50);
      const got: Message<string>[] = [];
      track(
        await b.subscribe(topic, { group: uniqueName('g'), from: 'earliest' }, async (m) => {
          got.push(m);
        }),
      );
      await waitFor('the message', () => got.length === 1);
      expect(got[0]?.createdAt.getTime()).toBeLessThanOrEqual(afterPublish);
      expect(got[0]?.createdAt.getTime()).toBeGreaterThan(afterPublish - 60_000);
    });

    it('carries header values with newlines, colons and backslashes, from ferry and from others', async () => {
      const b = await bus();
      const publisher = await foreign();
      const topic = defineTopic<string>(uniqueName('ct.headers'));
      const group = b.transport.capabilities.groups ? { group: uniqueName('g') } : {};
      const got: Message<string>[] = [];
      track(await b.subscribe(topic, group, async (m) => void got.push(m)));
      const headers = { 'x-text': 'line 1\nline 2: a\\b\\nc', 'x-colon:name': 'v:1' };
      await b.publish(topic, 'ferry', { key: 'k', headers });
      let expected = 1;
      if (publisher?.headers) {
        await publisher.publish(topic.name, [
          { body: Buffer.from('"foreign"'), key: 'k', headers },
        ]);
        expected = 2;
      }
      await waitFor('the messages', () => got.length === expected);
      for (const message of got) {
        expect(message.headers['x-text']).toBe(headers['x-text']);
        expect(message.headers['x-colon:name']).toBe(headers['x-colon:name']);
      }
    });
  });
}
