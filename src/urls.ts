import { FerryError } from './errors.js';
import { redactUrl } from './log.js';
import type { OutboxStore } from './outbox/store.js';
import type { Transport } from './transport.js';

export type TransportOpener = (url: URL) => Transport | Promise<Transport>;

/**
 * Transport URL schemes. Each entry loads its driver module only when used, so a URL for
 * one broker never loads another broker's client.
 */
const transports: Record<string, () => Promise<TransportOpener>> = {
  'memory:': async () => (await import('./transports/memory.js')).memoryFromUrl,
  'sqlite:': async () => (await import('./transports/sqlite.js')).sqliteFromUrl,
};

export const transportSchemes = (): string[] => Object.keys(transports).map((s) => s.slice(0, -1));

/** Parses a connection URL; `INVALID_URL` (password redacted) when it is not one. */
export function parseUrl(text: string, kind: string): URL {
  try {
    return new URL(text);
  } catch (cause) {
    throw new FerryError('INVALID_URL', `Not a valid ${kind} URL: ${redactUrl(text)}`, { cause });
  }
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

export type StoreOpener = (url: URL) => OutboxStore<unknown> | Promise<OutboxStore<unknown>>;

/** Outbox store URL schemes, loaded on use like the transports. */
const stores: Record<string, () => Promise<StoreOpener>> = {
  'postgres:': async () => (await import('./stores/postgres.js')).postgresFromUrl,
  'postgresql:': async () => (await import('./stores/postgres.js')).postgresFromUrl,
  'mysql:': async () => (await import('./stores/mysql.js')).mysqlFromUrl,
  'mariadb:': async () => (await import('./stores/mysql.js')).mysqlFromUrl,
};

export const storeSchemes = (): string[] => Object.keys(stores).map((s) => s.slice(0, -1));

/** Opens the outbox store a URL names: `postgres://host/db`, `mysql://host/db`, ... */
export async function openStore(text: string): Promise<OutboxStore<unknown>> {
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
