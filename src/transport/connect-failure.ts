/** node:tls's codes for a server certificate the client does not trust. */
const UNTRUSTED_CERTIFICATE = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * Connection failures that waiting cannot mend: the broker refused the login, the host
 * name does not resolve, or the server's TLS certificate is not trusted. A transport that has never connected gives up on these at once
 * (`CONNECTION_FAILED` with the reason) instead of retrying until its deadline; a refused
 * port, a timeout or a dropped connection are retried, since a broker that is starting or
 * restarting heals them.
 */
export function permanentConnectFailure(error: unknown): string | undefined {
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    const text = typeof message === 'string' ? message : typeof e === 'string' ? e : '';
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || /\b(ENOTFOUND|EAI_AGAIN)\b/.test(text))
      return 'the host name does not resolve: check the host in the URL';
    if (typeof code === 'string' && UNTRUSTED_CERTIFICATE.has(code))
      return `the server's TLS certificate is not trusted (${code}): pass the CA that signed it (ca=<file> in the URL, or the tls option's ca)`;
    if (
      /ACCESS.REFUSED|\bNOAUTH\b|\bWRONGPASS\b|Access refused|Bad CONNECT|login (?:was )?refused|authentication failed/i.test(
        text,
      )
    )
      return 'the login was refused: check the user name and password in the URL';
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
