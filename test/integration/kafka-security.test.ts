import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createBus,
  createLogger,
  defineTopic,
  isFerryError,
  type Bus,
  type Transport,
} from '../../src/index.js';
import { kafka, type KafkaSaslMechanism } from '../../src/transports/kafka/index.js';
import { openTransport } from '../../src/transport/urls.js';
import { serviceUrl } from '../helpers/services.js';
import { deferred, uniqueName } from '../helpers/wait.js';

// scripts/kafka/kafka.sh opens these beside the plain listener, with this user and CA.
const sasl = serviceUrl('FERRY_KAFKA_SASL_BROKERS');
const tls = serviceUrl('FERRY_KAFKA_TLS_BROKERS');
const saslTls = serviceUrl('FERRY_KAFKA_SASL_TLS_BROKERS');
const caFile = serviceUrl('FERRY_KAFKA_CA');
const username = process.env.FERRY_KAFKA_USER ?? 'ferry';
const password = process.env.FERRY_KAFKA_PASSWORD ?? 'ferry-secret';
const quick = { retries: 1, retryDelayMs: 100, connectTimeoutMs: 3000, maxWaitMs: 200 };

describe('kafka security URLs', () => {
  it('refuses credentials without a mechanism, and names the fix without the password', async () => {
    const error: unknown = await openTransport('kafka://app:s3cret-pw@127.0.0.1:9094').catch(
      (e: unknown) => e,
    );
    expect(isFerryError(error) && error.code).toBe('INVALID_URL');
    expect(String((error as Error).message)).toContain('sasl=scram-sha-256');
    expect(String((error as Error).message)).not.toContain('s3cret-pw');
  });

  it('refuses an unknown mechanism and a mechanism without credentials', async () => {
    for (const url of [
      'kafka://app:pw@127.0.0.1:9094?sasl=gssapi',
      'kafka://127.0.0.1:9094?sasl=plain',
      'kafka://127.0.0.1:9094?tls=maybe',
      'kafka://127.0.0.1:9094?ca=/nonexistent/ca.pem',
    ]) {
      const error: unknown = await openTransport(url).catch((e: unknown) => e);
      expect(isFerryError(error) && error.code, url).toBe('INVALID_URL');
    }
  });

  it('refuses an unknown mechanism in options', () => {
    expect(() =>
      kafka({
        brokers: '127.0.0.1:9094',
        sasl: { mechanism: 'GSSAPI' as KafkaSaslMechanism, username: 'a', password: 'b' },
      }),
    ).toThrow(/PLAIN, SCRAM-SHA-256, SCRAM-SHA-512/);
  });
});

describe.skipIf(sasl === undefined || tls === undefined || saslTls === undefined || !caFile)(
  'kafka with SASL and TLS',
  () => {
    const ca = caFile ? readFileSync(caFile, 'utf8') : '';
    const open: Array<Bus | Transport> = [];
    const silent = createLogger({ level: 'silent' });

    afterEach(async () => {
      await Promise.all(open.splice(0).map((c) => c.close({ timeoutMs: 1000 })));
    });

    /** Publishes one message and resolves with the payload a group member received. */
    async function roundTrip(transport: Transport): Promise<unknown> {
      const bus = createBus({ transport, logger: silent });
      open.push(bus);
      const topic = defineTopic<{ n: number }>(uniqueName('sec'));
      const received = deferred<unknown>();
      await bus.subscribe(topic, { group: uniqueName('g'), from: 'earliest' }, async (m) => {
        received.resolve(m.payload);
      });
      await bus.publish(topic, { n: 7 });
      return received.promise;
    }

    async function failure(transport: Transport): Promise<unknown> {
      open.push(transport);
      return transport
        .publish([
          { topic: uniqueName('sec'), key: undefined, headers: {}, body: Buffer.from('x') },
        ])
        .then(
          () => undefined,
          (e: unknown) => e,
        );
    }

    it.each(['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'] as const)(
      'publishes and consumes with SASL %s',
      async (mechanism) => {
        const transport = kafka({
          brokers: sasl as string,
          sasl: { mechanism, username, password },
          ...quick,
        });
        expect(await roundTrip(transport)).toEqual({ n: 7 });
      },
    );

    it('publishes and consumes over TLS with a private CA', async () => {
      expect(await roundTrip(kafka({ brokers: tls as string, tls: { ca }, ...quick }))).toEqual({
        n: 7,
      });
    });

    it('takes SASL, TLS and the CA from the URL', async () => {
      const url = `kafka://${encodeURIComponent(username)}:${encodeURIComponent(password)}@${saslTls as string}?sasl=scram-sha-512&tls=1&ca=${encodeURIComponent(caFile as string)}`;
      expect(await roundTrip(await openTransport(url))).toEqual({ n: 7 });
    });

    it('a refused password is CONNECTION_FAILED saying so, without the password', async () => {
      const wrong = 'not-the-password-42';
      const url = `kafka://${username}:${wrong}@${sasl as string}?sasl=scram-sha-256`;
      const error = await failure(await openTransport(url));
      expect(isFerryError(error) && error.code).toBe('CONNECTION_FAILED');
      expect(String((error as Error).message)).toMatch(/invalid credentials/i);
      expect(String((error as Error).message)).not.toContain(wrong);
      expect(JSON.stringify((error as { details?: unknown }).details)).not.toContain(wrong);
    });

    it('verifies the certificate: an untrusted one fails to connect', async () => {
      const error = await failure(kafka({ brokers: tls as string, tls: true, ...quick }));
      expect(isFerryError(error) && error.code).toBe('CONNECTION_FAILED');
      expect(String((error as Error).message)).toMatch(/certificate/i);
    });
  },
);
