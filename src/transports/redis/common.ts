import type { Redis, RedisOptions } from 'ioredis';
import { loadDriver } from '../../core/driver.js';
import { describeError, FerryError } from '../../core/errors.js';
import { redactSecrets } from '../../core/log.js';
import { permanentConnectFailure } from '../../transport/connect-failure.js';
import { caFromUrl, type TlsOptions } from '../../transport/tls.js';

/** How to reach Redis: a URL, ioredis options, or both (options win over the URL). */
export interface RedisConnectionOptions {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. Default `redis://127.0.0.1:6379`. */
  readonly url?: string;
  /**
   * TLS to the server: `true` trusts the system's CAs; node:tls options (`ca`, `cert`, `key`,
   * `servername`, ...) for a private CA or client certificates. A `rediss://` URL turns TLS on
   * with the system's CAs. Default off.
   */
  readonly tls?: boolean | TlsOptions;
  /** ioredis options (sentinels, db, retry strategy, ...); their `tls` wins over `tls` above. */
  readonly redis?: RedisOptions;
  /**
   * An ioredis client your service already configured (TLS, sentinels, ACL user, ...): ferry
   * opens its connections with `client.duplicate()`, so they share its settings, and never
   * sends commands on it, changes it or closes it. `url` is then ignored; `redis` options
   * apply over the client's for ferry's connections.
   */
  readonly client?: Redis;
  /**
   * Prepended to every Redis key and channel ferry uses (`app:` makes the topic
   * `order.created` the stream or channel `app:order.created`). Default none.
   */
  readonly prefix?: string;
  /**
   * Told about connection and background failures, each as a `FerryError` (the client's
   * error in `cause`); ferry keeps going (ioredis reconnects). Default: ignored.
   */
  readonly onError?: (error: FerryError) => void;
}

/** Opens one ioredis connection; `extra` wins over the user's options. */
export async function connectRedis(
  options: RedisConnectionOptions,
  extra: RedisOptions = {},
): Promise<Redis> {
  const { Redis } = await loadDriver('ioredis', () => import('ioredis'));
  // ioredis 6 speaks RESP3 by default and added `replyMapping`. ferry's raw stream reads
  // (XREAD, XREADGROUP, XAUTOCLAIM through callBuffer) parse RESP2's shapes, where RESP3 turns
  // the per-stream reply into a flat map, so the protocol and mapping are ferry's to set.
  // ioredis 5 ignores `protocol`, which keeps one call for 5 and 6.
  const { replyMapping, protocol, ...rest } = {
    ...tlsSettings(options.tls),
    ...options.redis,
    ...extra,
  } as RedisOptions & {
    readonly replyMapping?: unknown;
    readonly protocol?: unknown;
  };
  if (replyMapping !== undefined && replyMapping !== 'legacy') {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `ferry reads Redis replies in the classic shape; remove replyMapping: ${JSON.stringify(replyMapping)}`,
    );
  }
  if (protocol !== undefined && protocol !== 2) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `ferry speaks RESP2 to Redis; remove protocol: ${JSON.stringify(protocol)}`,
    );
  }
  const settings = { ...rest, protocol: 2 as const };
  const client = options.client
    ? options.client.duplicate(settings)
    : options.url === undefined
      ? new Redis(settings)
      : new Redis(options.url, settings);
  // Without a listener ioredis prints every reconnect failure to the console.
  client.on('error', (error: unknown) =>
    options.onError?.(redisError('CONNECTION_FAILED', 'redis connection error', error)),
  );
  await firstConnection(client, settings.connectTimeout ?? FIRST_CONNECT_MS);
  await refuseCluster(client);
  return client;
}

function tlsSettings(tls: boolean | TlsOptions | undefined): RedisOptions {
  return tls === undefined || tls === false ? {} : { tls: tls === true ? {} : tls };
}

/**
 * A Redis Cluster node answers for its own slots only: keys and channels of other slots would
 * fail or go unseen, so ferry refuses such a node instead of half working. A server that does
 * not answer `INFO cluster` (a command denied by an ACL) is taken as not a cluster.
 */
async function refuseCluster(client: Redis): Promise<void> {
  const info = await client.info('cluster').catch(() => '');
  if (!/^cluster_enabled:1\s*$/m.test(info)) return;
  client.disconnect();
  throw new FerryError(
    'UNSUPPORTED',
    'This Redis server is a Redis Cluster node (INFO cluster says cluster_enabled:1); ferry does not support Redis Cluster: connect it to a standalone Redis server',
  );
}

/** How long a new connection may take, refusals retried, before it is CONNECTION_FAILED. */
const FIRST_CONNECT_MS = 3000;

/**
 * Waits until a new client is ready. A refused login or an unknown host fails at once; a
 * refused port or a timeout is retried by ioredis until `timeoutMs`. Either way the failure is
 * `CONNECTION_FAILED` and the client is gone, so commands never queue behind it. After this
 * first connection, drops are ioredis's to heal (it reconnects).
 */
async function firstConnection(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return;
  if (client.status === 'wait') client.connect().catch(() => undefined);
  const where = `${client.options.host ?? '127.0.0.1'}:${client.options.port ?? 6379}`;
  let lastError: unknown;
  let settle: (error?: FerryError) => void = () => undefined;
  const outcome = new Promise<FerryError | undefined>((resolve) => (settle = resolve));
  const fail = (reason: string): void =>
    settle(
      new FerryError(
        'CONNECTION_FAILED',
        `Could not connect to Redis at ${where}: ${reason}${lastError === undefined ? '' : ` (${redactSecrets(describeError(lastError))})`}`,
        { cause: lastError },
      ),
    );
  const onReady = (): void => settle();
  const onError = (error: unknown): void => {
    lastError = error;
    const permanent = permanentConnectFailure(error);
    if (permanent !== undefined) fail(permanent);
  };
  const timer = setTimeout(() => fail(`not reachable within ${timeoutMs} ms`), timeoutMs);
  client.on('ready', onReady);
  client.on('error', onError);
  const error = await outcome;
  clearTimeout(timer);
  client.off('ready', onReady);
  client.off('error', onError);
  if (error) {
    client.disconnect();
    throw error;
  }
}

/** `opening`, after which `forget` runs if it fails: the next use then connects anew. */
export function forgetOnFailure<T>(opening: Promise<T>, forget: () => void): Promise<T> {
  opening.catch(forget);
  return opening;
}

/** Closes a connection: politely when it is up, at once when it is not. */
export async function closeRedis(client: Redis | undefined): Promise<void> {
  if (!client) return;
  if (client.status === 'ready') {
    try {
      await client.quit();
      return;
    } catch {
      // fall through: the connection is gone anyway
    }
  }
  client.disconnect();
}

/** One PING round trip; rejects at once while the connection is down and reconnecting. */
export async function pingRedis(client: Redis): Promise<void> {
  if (client.status === 'reconnecting' || client.status === 'close' || client.status === 'end') {
    throw new FerryError(
      'CONNECTION_FAILED',
      `redis is not reachable (connection ${client.status})`,
    );
  }
  try {
    await client.ping();
  } catch (cause) {
    throw redisError('CONNECTION_FAILED', 'redis PING failed', cause);
  }
}

/** A Redis failure as a FerryError with `code`, its text free of passwords. */
export function redisError(
  code: 'PUBLISH_FAILED' | 'CONNECTION_FAILED',
  what: string,
  cause: unknown,
): FerryError {
  if (cause instanceof FerryError) return cause;
  // A command that failed because the connection is down or refused is a connection failure,
  // whatever the command was.
  const connection =
    permanentConnectFailure(cause) !== undefined ||
    (cause instanceof Error &&
      (cause.name === 'MaxRetriesPerRequestError' ||
        /Connection is closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT/.test(cause.message)));
  return new FerryError(
    connection ? 'CONNECTION_FAILED' : code,
    `${what}: ${redactSecrets(describeError(cause))}`,
    { cause },
  );
}

/**
 * Connection options from a ferry URL. `redis-streams://` becomes `redis://` (add `?tls=1`
 * for TLS); `ca=<file>` trusts that CA (and implies TLS); the rest of the query string is
 * left to the caller.
 */
export function connectionFromUrl(url: URL, scheme: 'redis:' | 'rediss:'): RedisConnectionOptions {
  const tls = url.searchParams.get('tls');
  const ca = caFromUrl(url);
  const target = new URL(url.href);
  target.protocol = tls === '1' || tls === 'true' || ca !== undefined ? 'rediss:' : scheme;
  target.search = '';
  const prefix = url.searchParams.get('prefix');
  return {
    url: target.href,
    ...(prefix === null ? {} : { prefix }),
    ...(ca === undefined ? {} : { tls: ca }),
  };
}

/** A whole number from a URL query parameter, or undefined when absent. */
export function numberParam(url: URL, name: string): number | undefined {
  const text = url.searchParams.get(name);
  if (text === null) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value)) {
    throw new FerryError(
      'INVALID_URL',
      `Query parameter ${name} must be a number, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}

/** Runs a pipeline; rejects with the first command's error, if any failed. */
export async function execPipeline(pipeline: ReturnType<Redis['pipeline']>): Promise<void> {
  const results = await pipeline.exec();
  const failed = results?.find(([error]) => error);
  if (!results || failed) throw failed?.[0] ?? new Error('pipeline was not run');
}
