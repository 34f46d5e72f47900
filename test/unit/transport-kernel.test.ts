import { describe, expect, it } from 'vitest';
import type { Delivery, OutgoingMessage } from '../../src/core/message.js';
import {
  createTransport,
  errorReporter,
  handOut,
  Lifecycle,
  PartitionFeed,
  PartitionPump,
  Semaphore,
  type StopSubscription,
} from '../../src/transport/kernel.js';
import type { FerryError } from '../../src/core/errors.js';

const capabilities = {
  persistent: false,
  groups: false,
  order: 'channel',
  replay: false,
  delivery: 'at-most-once',
  maxMessageBytes: 10,
  identity: 'none',
} as const;

const message = (body: string): OutgoingMessage => ({
  topic: 't',
  key: undefined,
  headers: {},
  body: Buffer.from(body),
});

describe('Semaphore', () => {
  it('hands permits out first come, first served, and refuses all after close', async () => {
    const slots = new Semaphore(1);
    expect(slots.tryAcquire()).toBe(true);
    expect(slots.tryAcquire()).toBe(false);
    const order: string[] = [];
    const a = slots.acquire().then((ok) => order.push(`a${ok}`));
    const b = slots.acquire().then((ok) => order.push(`b${ok}`));
    slots.release();
    await a;
    expect(order).toEqual(['atrue']);
    expect(slots.tryAcquire()).toBe(false);
    slots.close();
    await b;
    expect(order).toEqual(['atrue', 'bfalse']);
    expect(await slots.acquire()).toBe(false);
  });
});

describe('Lifecycle', () => {
  it('runs close once, and a second close waits for the first', async () => {
    const lifecycle = new Lifecycle('thing');
    let runs = 0;
    let finish!: () => void;
    const first = lifecycle.close(async () => {
      runs++;
      await new Promise<void>((resolve) => (finish = resolve));
    });
    expect(lifecycle.state).toBe('closing');
    expect(() => lifecycle.assertOpen()).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    let secondDone = false;
    const second = lifecycle
      .close(() => Promise.reject(new Error('must not run')))
      .then(() => {
        secondDone = true;
      });
    await Promise.resolve();
    expect(secondDone).toBe(false);
    finish();
    await Promise.all([first, second]);
    expect(runs).toBe(1);
    expect(lifecycle.state).toBe('closed');
  });
});

describe('handOut', () => {
  const delivery = { topic: 't', headers: {}, body: Buffer.alloc(0) } as unknown as Delivery;

  it('hands a rejected message out again until the handler resolves', async () => {
    let calls = 0;
    const handled = await handOut(
      delivery,
      () => (++calls < 3 ? Promise.reject(new Error('again')) : Promise.resolve()),
      { slots: new Semaphore(1), redeliveryDelayMs: 1, stopped: () => false },
    );
    expect(handled).toBe(true);
    expect(calls).toBe(3);
  });

  it('gives up without acknowledging once stopped', async () => {
    let stopped = false;
    let calls = 0;
    const handled = await handOut(
      delivery,
      () => {
        calls++;
        stopped = true;
        return Promise.reject(new Error('no'));
      },
      { slots: new Semaphore(1), redeliveryDelayMs: 1000, stopped: () => stopped },
    );
    expect(handled).toBe(false);
    expect(calls).toBe(1);
  });
});

describe('createTransport', () => {
  it('checks sizes and subscriptions, closes once and refuses work after close', async () => {
    const sent: string[] = [];
    let stops = 0;
    let closes = 0;
    const transport = createTransport({
      name: 'wire',
      capabilities,
      publish: (messages) => {
        sent.push(...messages.map((m) => m.body.toString()));
        return Promise.resolve();
      },
      subscribe: (): Promise<StopSubscription> =>
        Promise.resolve(() => {
          stops++;
          return Promise.resolve();
        }),
      close: () => {
        closes++;
        return Promise.resolve();
      },
    });
    await transport.publish([message('small')]);
    await expect(transport.publish([message('far too large')])).rejects.toMatchObject({
      code: 'MESSAGE_TOO_LARGE',
    });
    await expect(
      transport.subscribe({ topic: 't', group: 'g' }, () => Promise.resolve()),
    ).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    await expect(transport.seek('t', 'g', { position: 'earliest' })).rejects.toMatchObject({
      code: 'UNSUPPORTED',
    });
    const subscription = await transport.subscribe({ topic: 't' }, () => Promise.resolve());
    await Promise.all([transport.close(), transport.close(), subscription.close()]);
    expect(sent).toEqual(['small']);
    expect(stops).toBe(1);
    expect(closes).toBe(1);
    await expect(transport.publish([message('x')])).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(
      transport.subscribe({ topic: 't' }, () => Promise.resolve()),
    ).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('stops a subscription that became live while the transport closed', async () => {
    let live!: () => void;
    let stopped = false;
    const transport = createTransport({
      name: 'wire',
      capabilities,
      publish: () => Promise.resolve(),
      subscribe: () =>
        new Promise<StopSubscription>((resolve) => {
          live = () =>
            resolve(() => {
              stopped = true;
              return Promise.resolve();
            });
        }),
    });
    const subscribing = transport.subscribe({ topic: 't' }, () => Promise.resolve());
    await Promise.resolve();
    const closing = transport.close();
    live();
    await expect(subscribing).rejects.toMatchObject({ code: 'CLOSED' });
    await closing;
    expect(stopped).toBe(true);
  });
  it('tells the wire that closing started before it waits for a publish in flight', async () => {
    const events: string[] = [];
    let giveUp!: () => void;
    const transport = createTransport({
      name: 'wire',
      capabilities,
      publish: () =>
        new Promise<void>((_resolve, reject) => {
          giveUp = () => reject(new Error('gave up'));
        }),
      subscribe: () => Promise.resolve(() => Promise.resolve()),
      closing: () => {
        events.push('closing');
        giveUp();
      },
      close: () => {
        events.push('close');
        return Promise.resolve();
      },
    });
    const publishing = transport.publish([message('x')]);
    await Promise.resolve();
    await Promise.all([transport.close(), transport.close()]);
    await expect(publishing).rejects.toThrow('gave up');
    expect(events).toEqual(['closing', 'close']);
  });
});

describe('errorReporter', () => {
  it('passes every failure on as a FerryError with the given code', () => {
    const seen: FerryError[] = [];
    const report = errorReporter((error) => seen.push(error));
    report(new Error('boom'), 'CONNECTION_FAILED', 'Reading');
    expect(seen[0]).toMatchObject({ code: 'CONNECTION_FAILED', message: 'Reading: Error: boom' });
    errorReporter(undefined)(new Error('ignored'), 'CONNECTION_FAILED', 'x');
  });
});

describe('PartitionFeed', () => {
  const delivery = (partition: number, offset: number): Delivery => ({
    topic: 't',
    key: undefined,
    headers: {},
    body: Buffer.from(`${partition}:${offset}`),
    partition,
    offset: String(offset),
  });

  it('hands pushed messages out in order per partition, reports each handled, and pushes back while full', async () => {
    const events: string[] = [];
    const handled: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let failOnce = true;
    const feed: PartitionFeed = new PartitionFeed({
      maxHeld: 4,
      onFull: () => events.push('full'),
      onRoom: () => events.push('room'),
      wake: (partition) => target.wake(partition),
      handled: (partition, next) => handled.push(`${partition}<${next}`),
    });
    const seen: string[] = [];
    const pump = new PartitionPump(
      feed,
      async (d) => {
        await gate;
        if (d.partition === 1 && d.offset === '11' && failOnce) {
          failOnce = false;
          throw new Error('again');
        }
        seen.push(d.body.toString());
      },
      { concurrency: 2, idleWaitMs: 60_000, redeliveryDelayMs: 1 },
    );
    let target = pump;
    await pump.assign([0, 1]);
    for (const offset of [10, 11, 12]) feed.push(1, offset, delivery(1, offset));
    feed.push(0, 5, delivery(0, 5));
    expect(events).toEqual(['full']);
    // A refetch of what was queued already is dropped.
    feed.push(1, 11, delivery(1, 11));
    release();
    await expect.poll(() => seen.length).toBe(4);
    expect(seen.filter((s) => s.startsWith('1:'))).toEqual(['1:10', '1:11', '1:12']);
    expect(handled.filter((h) => h.startsWith('1<'))).toEqual(['1<11', '1<12', '1<13']);
    expect(events).toEqual(['full', 'room']);

    // A revoked partition's queued messages go; nothing of it is handed out after.
    let block!: () => void;
    const blocked = new Promise<void>((resolve) => (block = resolve));
    const late: string[] = [];
    const second = new PartitionPump(
      feed,
      async (d) => {
        late.push(d.body.toString());
        await blocked;
      },
      { concurrency: 1, idleWaitMs: 60_000, redeliveryDelayMs: 1 },
    );
    expect(await pump.close(1000)).toBe(true);
    target = second;
    await second.assign([2]);
    feed.push(2, 0, delivery(2, 0));
    feed.push(2, 1, delivery(2, 1));
    await expect.poll(() => late.length).toBe(1);
    const stopping = second.assign([]);
    feed.drop(2);
    block();
    await stopping;
    expect(late).toEqual(['2:0']);
    expect(await second.close(1000)).toBe(true);
  });
});

describe('PartitionPump', () => {
  it('commits the positions a source gives for offsets that are not numbers', async () => {
    const entries = ['1-0', '1-1', '2-0'].map((offset): Delivery => ({
      topic: 't',
      key: undefined,
      headers: {},
      body: Buffer.from(offset),
      partition: 0,
      offset,
    }));
    const commits: number[] = [];
    let given = false;
    let stuck = 0;
    const pump = new PartitionPump(
      {
        position: () => 0,
        read: () => (given ? [] : ((given = true), entries)),
        offsetAfter: (d) => entries.indexOf(d) + 1,
        commit: (_partition, next) => void commits.push(next),
      },
      (d) => {
        if (d.offset !== '2-0') return Promise.resolve();
        stuck++;
        return new Promise<void>(() => undefined);
      },
      { concurrency: 1, idleWaitMs: 60_000, redeliveryDelayMs: 1 },
    );
    await pump.assign([0]);
    await expect.poll(() => stuck).toBe(1);
    // The last entry's handler never resolves: only the two before it are committed.
    expect(await pump.close(50)).toBe(false);
    expect(commits).toEqual([2]);
  });
});
