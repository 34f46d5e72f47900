import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { FerryError } from '../core/errors.js';

/**
 * TLS settings of a broker connection, as node:tls takes them: `ca` (PEM) for a private CA,
 * `cert` and `key` for a client certificate, `servername`, `rejectUnauthorized`, ...
 */
export type TlsOptions = ConnectionOptions;

/**
 * The CA a URL names with `ca=<file>` (a PEM file, read now), as TLS options; undefined
 * without the parameter. A file that cannot be read is `INVALID_URL`.
 */
export function caFromUrl(url: URL): TlsOptions | undefined {
  const file = url.searchParams.get('ca');
  if (file === null) return undefined;
  try {
    return { ca: readFileSync(file, 'utf8') };
  } catch (cause) {
    throw new FerryError('INVALID_URL', `Cannot read the CA file ca=${file}`, { cause });
  }
}
