import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { permanentConnectFailure } from '../../src/transport/connect-failure.js';
import { stomp } from '../../src/transports/rabbitmq/stomp/index.js';
import { ferry } from '../helpers/cli.js';
import { serviceUrl } from '../helpers/services.js';

const amqp = serviceUrl('FERRY_AMQP_URL');
const stompUrl = serviceUrl('FERRY_STOMP_URL');
const redis = serviceUrl('FERRY_REDIS_URL');

const withPassword = (url: string, password: string): string => {
  const parsed = new URL(url);
  parsed.password = password;
  return parsed.href;
};

/** A port nothing listens on: bound, read, released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `ferry publish` to `url`: it must fail with CONNECTION_FAILED, the reason, and no password. */
async function expectConnectionFailed(url: string, reason: RegExp, secret?: string): Promise<void> {
  const { code, stderr } = await ferry(['publish', 'connect.failures', '{}', '-t', url], {
    env: { FERRY_LOG_LEVEL: 'silent' },
    timeoutMs: 60_000,
  });
  expect(code).toBe(1);
  expect(stderr).toMatch(/^ferry: CONNECTION_FAILED: /);
  expect(stderr).toMatch(reason);
  expect(stderr).not.toMatch(/PUBLISH_FAILED|^\s+at /m);
  if (secret) expect(stderr).not.toContain(secret);
}

describe('a login the broker refuses fails at once, with the reason', () => {
  it.skipIf(!amqp)('AMQP 403 ACCESS_REFUSED', async () => {
    await expectConnectionFailed(
      withPassword(amqp ?? '', 'Wrong-Pw-1'),
      /login was refused: check the user name and password/,
      'Wrong-Pw-1',
    );
  });

  it.skipIf(!stompUrl)(
    'STOMP, through its AMQP declarations and on its own connection',
    async () => {
      const url = withPassword(stompUrl ?? '', 'Wrong-Pw-2');
      await expectConnectionFailed(url, /login was refused/, 'Wrong-Pw-2');
      const transport = stomp({ url, amqpUrl: false });
      try {
        const error = await transport
          .publish([
            { topic: 'connect.failures', key: undefined, body: Buffer.from('{}'), headers: {} },
          ])
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(error).toMatchObject({ code: 'CONNECTION_FAILED' });
        expect((error as Error).message).toMatch(/STOMP .*login was refused/);
      } finally {
        await transport.close();
      }
    },
  );

  describe.skipIf(!redis)('Redis with a password (a private redis-server)', () => {
    let server: ChildProcess | undefined;
    let port = 0;
    beforeAll(async () => {
      port = await closedPort();
      server = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', 'Right-Pw', '--save', ''],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await new Promise<void>((resolve, reject) => {
        server?.once('error', reject);
        server?.stdout?.on('data', (chunk: Buffer) => {
          if (chunk.toString().includes('Ready to accept connections')) resolve();
        });
      });
    });
    afterAll(() => {
      server?.kill();
    });

    it.each([
      ['WRONGPASS', 'redis', 'Wrong-Pw-3'],
      ['WRONGPASS', 'redis-streams', 'Wrong-Pw-4'],
      ['NOAUTH', 'redis', ''],
    ])('%s on %s', async (_reply, scheme, password) => {
      const url = `${scheme}://${password ? `:${password}@` : ''}127.0.0.1:${port}`;
      await expectConnectionFailed(url, /login was refused/, password || undefined);
    });

    it('and the right password publishes', async () => {
      const { code } = await ferry(
        ['publish', 'connect.failures', '{}', '-t', `redis://:Right-Pw@127.0.0.1:${port}`],
        { env: { FERRY_LOG_LEVEL: 'silent' } },
      );
      expect(code).toBe(0);
    });
  });
});

describe('a closed port is CONNECTION_FAILED, not a publish failure', () => {
  it.each(['redis', 'redis-streams'])('%s', async (scheme) => {
    await expectConnectionFailed(`${scheme}://127.0.0.1:${await closedPort()}`, /ECONNREFUSED/);
  });
});

describe('which connection failures cannot heal', () => {
  it.each([
    [
      Object.assign(new Error('getaddrinfo ENOTFOUND broker.example'), { code: 'ENOTFOUND' }),
      /does not resolve/,
    ],
    [
      Object.assign(new Error('getaddrinfo EAI_AGAIN broker'), { code: 'EAI_AGAIN' }),
      /does not resolve/,
    ],
    ['getaddrinfo ENOTFOUND broker.example', /does not resolve/],
    [new Error('Handshake terminated by server: 403 (ACCESS-REFUSED)'), /login was refused/],
    [new Error('Bad CONNECT: Access refused for user'), /login was refused/],
    [
      new Error('outer', { cause: new Error('WRONGPASS invalid username-password pair') }),
      /login was refused/,
    ],
  ])('%s: %s', (error, reason) => {
    expect(permanentConnectFailure(error)).toMatch(reason);
  });

  it.each([
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' }),
    new Error('Connection is closed.'),
    Object.assign(new Error('read ETIMEDOUT'), { code: 'ETIMEDOUT' }),
  ])('%s is retried', (error) => {
    expect(permanentConnectFailure(error)).toBeUndefined();
  });
});
