import amqp, { type ChannelModel } from 'amqplib';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createBus,
  createLogger,
  defineTopic,
  isFerryError,
  type Bus,
  type Transport,
} from '../../src/index.js';
import { kafka } from '../../src/transports/kafka/index.js';
import { rabbitmq } from '../../src/transports/rabbitmq/amqp/index.js';
import { redisPubSub, redisStreams } from '../../src/transports/redis/index.js';
import { serviceUrl } from '../helpers/services.js';
import { deferred, uniqueName, waitFor } from '../helpers/wait.js';

const redisUrl = serviceUrl('FERRY_REDIS_URL');
const amqpUrl = serviceUrl('FERRY_AMQP_URL');
const saslBrokers = serviceUrl('FERRY_KAFKA_SASL_BROKERS');
const silent = createLogger({ level: 'silent' });

/** Publishes one message through a fresh bus and resolves with what its subscriber got. */
async function roundTrip(transport: Transport, open: Array<Bus | Transport>): Promise<unknown> {
  const bus = createBus({ transport, logger: silent });
  open.push(bus);
  const topic = defineTopic<{ n: number }>(uniqueName('own'));
  const received = deferred<unknown>();
  const group = transport.capabilities.groups ? { group: uniqueName('g') } : {};
  await bus.subscribe(topic, group, async (m) => received.resolve(m.payload));
  // Redis Pub/Sub keeps nothing: publish until the subscription is surely listening.
  let got: unknown;
  void received.promise.then((value) => (got = value));
  await waitFor('the subscriber to receive', async () => {
    await bus.publish(topic, { n: 3 });
    return got !== undefined;
  });
  return received.promise;
}

describe('clients a service already has', () => {
  const open: Array<Bus | Transport> = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close({ timeoutMs: 1000 })));
  });

  describe.skipIf(redisUrl === undefined)('ioredis', () => {
    it.each([
      ['Pub/Sub', redisPubSub],
      ['Streams', redisStreams],
    ] as const)('%s works through duplicates of it and leaves it open', async (_, make) => {
      const mine = new Redis(redisUrl as string, { connectionName: 'team-client' });
      try {
        await mine.set(`${uniqueName('own')}:probe`, '1', 'EX', 60);
        const transport = make({ client: mine });
        expect(await roundTrip(transport, open)).toEqual({ n: 3 });
        await Promise.all(open.splice(0).map((c) => c.close({ timeoutMs: 1000 })));
        // Still connected, not in subscriber mode, and still usable for ordinary commands.
        expect(mine.status).toBe('ready');
        expect(await mine.ping()).toBe('PONG');
      } finally {
        mine.disconnect();
      }
    });
  });

  describe.skipIf(amqpUrl === undefined)('amqplib', () => {
    it('opens its channels on the connection and leaves it open', async () => {
      const mine: ChannelModel = await amqp.connect(amqpUrl as string);
      let closedByFerry = false;
      mine.once('close', () => (closedByFerry = true));
      try {
        const transport = rabbitmq({ connection: mine });
        expect(await roundTrip(transport, open)).toEqual({ n: 3 });
        await Promise.all(open.splice(0).map((c) => c.close({ timeoutMs: 1000 })));
        expect(closedByFerry).toBe(false);
        const channel = await mine.createChannel();
        await channel.close();
      } finally {
        await mine.close().catch(() => undefined);
      }
    });

    it('once that connection is closed, fails with CONNECTION_FAILED instead of reopening it', async () => {
      const mine = await amqp.connect(amqpUrl as string);
      const transport = rabbitmq({ connection: mine, publishTimeoutMs: 2000 });
      open.push(transport);
      await mine.close();
      const error: unknown = await transport
        .publish([
          { topic: uniqueName('own'), key: undefined, headers: {}, body: Buffer.from('x') },
        ])
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(isFerryError(error) && error.code).toBe('CONNECTION_FAILED');
      expect(String((error as Error).message)).toContain('does not reopen');
    });
  });

  describe.skipIf(saslBrokers === undefined)('@platformatic/kafka client options', () => {
    it('authenticates with a password provider passed as client options', async () => {
      let asked = 0;
      const transport = kafka({
        brokers: saslBrokers as string,
        maxWaitMs: 200,
        clientOptions: {
          sasl: {
            mechanism: 'SCRAM-SHA-256',
            username: process.env.FERRY_KAFKA_USER ?? 'ferry',
            password: async () => {
              asked++;
              return process.env.FERRY_KAFKA_PASSWORD ?? 'ferry-secret';
            },
          },
        },
      });
      expect(await roundTrip(transport, open)).toEqual({ n: 3 });
      expect(asked).toBeGreaterThan(0);
    });
  });
});
