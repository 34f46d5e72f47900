import { parseUrl, unknownScheme } from '../transport/urls.js';
import type { OpenedStore } from './opened-store.js';

export type { OpenedStore } from './opened-store.js';

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
  if (!load) throw unknownScheme('database', text, storeSchemes());
  return (await load())(url);
}
