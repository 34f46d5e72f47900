import { describe, expect, it } from 'vitest';
import type { Delivery, OutgoingMessage } from '../../src/core/message.js';
import {
  createTransport,
  errorReporter,
  handOut,
  Lifecycle,
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
