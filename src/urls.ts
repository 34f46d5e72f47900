import { FerryError } from './errors.js';
import { redactUrl } from './log.js';
import type { Transport } from './transport.js';

export type TransportOpener = (url: URL) => Transport | Promise<Transport>;

/**
 * Transport URL schemes. Each entry loads its driver module only when used, so a URL for
 * one broker never loads another broker's client.
 */
const transports: Record<string, () => Promise<TransportOpener>> = {
  'memory:': async () => (await import('./transports/memory.js')).memoryFromUrl,
  'redis:': async () => (await import('./transports/redis.js')).redisPubSubFromUrl,
  'rediss:': async () => (await import('./transports/redis.js')).redisPubSubFromUrl,
  'redis-streams:': async () => (await import('./transports/redis.js')).redisStreamsFromUrl,
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
