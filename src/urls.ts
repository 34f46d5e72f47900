import { FerryError } from './errors.js';
import { redactUrl } from './log.js';
import type { Inbox } from './bus.js';
import type { Outbox } from './outbox/outbox.js';
import type { OutboxStore } from './outbox/store.js';
import type { Transport } from './transport.js';
import { TRANSPORTS, type TransportName } from './transports/descriptors.js';

export type TransportOpener = (url: URL) => Transport | Promise<Transport>;

/**
 * How each transport opens from a URL. Each entry loads its driver module only when used, so
 * a URL for one broker never loads another broker's client. Which schemes open which
 * transport is the descriptors' to say.
 */
const openers: Record<TransportName, () => Promise<TransportOpener>> = {
  memory: async () => (await import('./transports/memory.js')).memoryFromUrl,
  sqlite: async () => (await import('./transports/sqlite.js')).sqliteFromUrl,
  kafka: async () => (await import('./transports/kafka.js')).kafkaFromUrl,
  rabbitmq: async () => (await import('./transports/rabbitmq/index.js')).rabbitmqFromUrl,
  stomp: async () => (await import('./transports/stomp.js')).stompFromUrl,
  redis: async () => (await import('./transports/redis-pubsub.js')).redisPubSubFromUrl,
  'redis-streams': async () => (await import('./transports/redis-streams.js')).redisStreamsFromUrl,
};

const transports: Record<string, () => Promise<TransportOpener>> = Object.fromEntries(
  TRANSPORTS.flatMap(({ name, schemes }) =>
    schemes.map((scheme) => [`${scheme}:`, openers[name]] as const),
  ),
);

export const transportSchemes = (): string[] => Object.keys(transports).map((s) => s.slice(0, -1));

/**
 * Parses a connection URL; `INVALID_URL` (password redacted) when it is not one. A URL may
 * list several hosts (`kafka://h1:9092,h2:9092`); URL objects hold one, so the others are
 * passed on as repeated `host` query parameters.
 */
export function parseUrl(text: string, kind: string): URL {
  try {
    const hosts = /^([a-z][a-z0-9+.-]*:\/\/(?:[^/?#@]*@)?)([^/?#]*,[^/?#]*)(.*)$/i.exec(text);
    if (hosts) {
      const [first = '', ...others] = (hosts[2] as string).split(',');
      const url = new URL(`${hosts[1] as string}${first}${hosts[3] as string}`);
      for (const host of others) if (host.length > 0) url.searchParams.append('host', host);
      return url;
    }
    return new URL(text);
  } catch (cause) {
    throw new FerryError('INVALID_URL', `Not a valid ${kind} URL: ${redactUrl(text)}`, { cause });
  }
}

/**
 * The file a `sqlite:` URL names: `sqlite:./app.db` or `sqlite:app.db` (relative to the
 * working directory), `sqlite:///abs/app.db` or `sqlite:/abs/app.db` (absolute). Anything
 * else is `INVALID_URL`, never a fall-back file: `sqlite://app.db` would read `app.db` as a
 * host name, and `sqlite://dir/app.db` would mean `/app.db`.
 */
export function sqliteFilePath(url: URL): string {
  const path = decodeURIComponent(url.pathname);
  if (url.host !== '' || path === '') {
    const written = `${url.host}${path}` || 'app.db';
    throw new FerryError(
      'INVALID_URL',
      `A sqlite: URL names a file: write sqlite:./${written.replace(/^\/+/, '')} (relative) or sqlite:///abs/path/${written.split('/').pop() ?? 'app.db'} (absolute), not ${redactUrl(url)}`,
    );
  }
  return path;
}

/** Opens the transport a URL names: `sqlite:./ferry.db`, `kafka://host:9092`, ... */
export async function openTransport(text: string): Promise<Transport> {
  const url = parseUrl(text, 'transport');
  const load = transports[url.protocol];
  if (!load) {
    throw new FerryError(
      'INVALID_URL',
      `Unknown transport scheme ${JSON.stringify(url.protocol.slice(0, -1))} in ${redactUrl(text)}. Supported: ${transportSchemes()
        .map((s) => `${s}:`)
        .join(', ')}`,
    );
  }
  return (await load())(url);
}

/**
 * A database opened from a URL, in one shape for every dialect, for the CLI (`ferry relay`,
 * `ferry migrate`, `ferry outbox`) and the demo. `Tx` is the dialect's transaction handle.
 */
export interface OpenedStore<Tx = unknown> {
  readonly dialect: string;
  readonly store: OutboxStore<Tx>;
  readonly outbox: Outbox<Tx>;
  readonly inbox: Inbox<Tx>;
  /** The outbox and inbox table names (the lease and relay tables add `_lease`, `_relay`). */
  readonly tables: { readonly outbox: string; readonly inbox: string };
  /** Creates the outbox and inbox tables if missing (idempotent). */
  migrate(): Promise<void>;
  /** Runs `work` in one transaction of a connection of this store: commits when it resolves, rolls back when it throws. */
  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T>;
  /**
   * Runs one statement with `?` placeholders, inside `tx` or on its own (autocommit);
   * resolves with the rows it returns (lower-case column names), `[]` for other statements.
   */
  query(
    tx: Tx | undefined,
    sql: string,
    params?: readonly unknown[],
  ): Promise<Array<Record<string, unknown>>>;
  /** Closes the connections it opened. */
  close(): Promise<void>;
}

export type StoreOpener = (url: URL) => Promise<OpenedStore>;

/**
 * Database URL schemes. Query parameters: `table` (outbox table), `inbox` (inbox table),
 * `partitions` (P at first migration).
 */
const stores: Record<string, () => Promise<StoreOpener>> = {
  'sqlite:': async () => (await import('./stores/sqlite.js')).sqliteStoreFromUrl,
  'postgres:': async () => (await import('./stores/postgres.js')).postgresStoreFromUrl,
  'postgresql:': async () => (await import('./stores/postgres.js')).postgresStoreFromUrl,
  'mysql:': async () => (await import('./stores/mysql.js')).mysqlStoreFromUrl,
  'mariadb:': async () => (await import('./stores/mysql.js')).mysqlStoreFromUrl,
};

export const storeSchemes = (): string[] => Object.keys(stores).map((s) => s.slice(0, -1));

/** Opens the database a URL names: `sqlite:./app.db`, `postgres://...`, `mysql://...`. */
export async function openStore(text: string): Promise<OpenedStore> {
  const url = parseUrl(text, 'database');
  const load = stores[url.protocol];
  if (!load) {
    throw new FerryError(
      'INVALID_URL',
      `Unknown database scheme ${JSON.stringify(url.protocol.slice(0, -1))} in ${redactUrl(text)}. Supported: ${storeSchemes()
        .map((s) => `${s}:`)
        .join(', ')}`,
    );
  }
  return (await load())(url);
}
