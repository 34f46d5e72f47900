// amqps: and rediss: against the TLS servers scripts/tls.sh starts (a redis-server with only a
// TLS port, a second RabbitMQ node with only an SSL listener), with a certificate signed by
// the script's own CA: trusted when the CA is passed, a CONNECTION_FAILED naming the
// certificate when it is not.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { isFerryError, type Delivery, type Transport } from '../../src/index.js';
import { openTransport } from '../../src/transport/urls.js';
import { rabbitmq } from '../../src/transports/rabbitmq/amqp/index.js';
import { redisPubSub, redisStreams } from '../../src/transports/redis/index.js';
import { serviceUrl } from '../helpers/services.js';
import { uniqueName, waitFor } from '../helpers/wait.js';

const ca = serviceUrl('FERRY_TLS_CA');
const amqpsUrl = serviceUrl('FERRY_AMQPS_URL');
const redissUrl = serviceUrl('FERRY_REDISS_URL');

const open: Transport[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close({ timeoutMs: 1000 })));
});

function track<T extends Transport>(transport: T): T {
  open.push(transport);
  return transport;
}

/** `url` with the query parameters `params` added. */
function withParams(url: string, params: Record<string, string>): string {
  const sep = url.includes('?') ? '&' : '?';
  return `${url}${sep}${new URLSearchParams(params).toString()}`;
}

/** Subscribes (in a group where there are groups), publishes three keyed messages, waits for them. */
async function roundTrip(transport: Transport): Promise<string[]> {
  const topic = uniqueName('tls');
  const seen: string[] = [];
  const group = transport.capabilities.groups ? { group: uniqueName('g') } : {};
  await transport.subscribe({ topic, ...group }, async (d: Delivery) => {
    seen.push(d.body.toString());
  });
  await transport.publish(
    ['a', 'b', 'c'].map((body) => ({ topic, key: 'k', body: Buffer.from(body), headers: {} })),
  );
  await waitFor('three messages over TLS', () => seen.length >= 3);
  return seen;
}

/** The first operation of a transport that does not trust the server's certificate. */
async function untrusted(transport: Transport): Promise<unknown> {
  return transport
    .publish([{ topic: uniqueName('tls'), key: undefined, body: Buffer.from('x'), headers: {} }])
    .then(
      () => new Error('published without trusting the certificate'),
      (error: unknown) => error,
    );
}

function expectUntrusted(error: unknown): void {
  expect(isFerryError(error)).toBe(true);
  expect(error).toMatchObject({ code: 'CONNECTION_FAILED' });
  expect((error as Error).message).toMatch(
    /TLS certificate is not trusted \([A-Z_]+\): pass the CA/,
  );
}

describe.skipIf(amqpsUrl === undefined || ca === undefined)('amqps', () => {
  const url = amqpsUrl as string;

  it('publishes and consumes through an amqps: URL with ca=<file>', async () => {
    const transport = track(await openTransport(withParams(url, { ca: ca as string })));
    expect(await roundTrip(transport)).toEqual(['a', 'b', 'c']);
  });

  it('takes the CA as the tls option', async () => {
    const transport = track(rabbitmq({ url, tls: { ca: readFileSync(ca as string, 'utf8') } }));
    expect(await roundTrip(transport)).toEqual(['a', 'b', 'c']);
  });

  it('fails with CONNECTION_FAILED naming the certificate when the CA is not trusted', async () => {
    expectUntrusted(await untrusted(track(await openTransport(url))));
  });
});

describe.skipIf(redissUrl === undefined || ca === undefined)('rediss', () => {
  const url = redissUrl as string;

  it('publishes and consumes through a rediss: URL with ca=<file>', async () => {
    const transport = track(await openTransport(withParams(url, { ca: ca as string })));
    expect(await roundTrip(transport)).toEqual(['a', 'b', 'c']);
  });

  it('reads a Redis stream over TLS: redis-streams:// with ca=<file>', async () => {
    const streams = url.replace(/^rediss:/, 'redis-streams:');
    const transport = track(await openTransport(withParams(streams, { ca: ca as string })));
    expect(await roundTrip(transport)).toEqual(['a', 'b', 'c']);
  });

  it('takes the CA as the tls option', async () => {
    const text = readFileSync(ca as string, 'utf8');
    expect(await roundTrip(track(redisPubSub({ url, tls: { ca: text } })))).toEqual([
      'a',
      'b',
      'c',
    ]);
    const plain = url.replace(/^rediss:/, 'redis:');
    expect(await roundTrip(track(redisStreams({ url: plain, tls: { ca: text } })))).toEqual([
      'a',
      'b',
      'c',
    ]);
  });

  it('fails with CONNECTION_FAILED naming the certificate when the CA is not trusted', async () => {
    expectUntrusted(await untrusted(track(await openTransport(url))));
  });
});
