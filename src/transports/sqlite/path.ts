// Apart from transport/urls.ts, which loads the SQLite transport: both the transport and the CLI's
// store opener read the file of a sqlite: URL without importing each other.
import { FerryError } from '../../core/errors.js';
import { redactUrl } from '../../core/log.js';

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
