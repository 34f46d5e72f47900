/**
 * Connection failures that waiting cannot mend: the broker refused the login, or the host
 * name does not resolve. A transport that has never connected gives up on these at once
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
