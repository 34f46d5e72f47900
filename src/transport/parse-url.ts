import { FerryError } from '../core/errors.js';
import { redactUrl } from '../core/log.js';

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
 * The URL a factory's `url` option names, checked against the schemes of its transport
 * (`INVALID_URL` for another scheme).
 */
export function transportUrl(text: string, schemes: readonly string[]): URL {
  const url = parseUrl(text, 'transport');
  if (!schemes.includes(url.protocol.slice(0, -1))) {
    throw new FerryError(
      'INVALID_URL',
      `Expected a ${schemes.map((s) => `${s}:`).join(' or ')} URL, got ${redactUrl(text)}`,
    );
  }
  return url;
}

/** A number from a URL query parameter, or undefined when absent; `INVALID_URL` if not one. */
export function numberParam(url: URL, name: string): number | undefined {
  const text = url.searchParams.get(name);
  if (text === null) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) {
    throw new FerryError(
      'INVALID_URL',
      `Query parameter ${name} must be a number, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}
