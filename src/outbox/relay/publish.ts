// Sending outbox rows: rows to outgoing messages, one observed send per batch, and telling a
// broker that cannot be reached (an outage, never the row's fault) from one refusing a row.
import { isFerryError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { HEADER, type OutgoingMessage } from '../../core/message.js';
import type { Instrumentation } from '../../observability/instrumentation.js';
import type { Transport } from '../../transport/transport.js';
import type { OutboxRecord } from '../store.js';

/** Publishes a batch of rows through the transport, observed as one send of each row. */
export type Send = (rows: readonly OutboxRecord[]) => Promise<void>;

export function createSend(
  transport: Transport,
  instrumentation: Instrumentation,
  relay: string,
): Send {
  const toOutgoing = outgoingMessages();
  return async (rows) => {
    const observed = instrumentation.relayPublish({ transport: transport.name, relay, rows });
    try {
      await transport.publish(toOutgoing(rows));
    } catch (error) {
      observed.end(error);
      throw error;
    }
    observed.end();
  };
}

/**
 * Rows as outgoing messages: the row's headers (user headers and `content-type`) plus its id
 * and creation time. Rows enqueued together mostly share a creation millisecond, so the last
 * timestamp's text is kept instead of formatting it for every row.
 */
export function outgoingMessages(): (rows: readonly OutboxRecord[]) => OutgoingMessage[] {
  let lastMs = Number.NaN;
  let lastText = '';
  return (rows) => {
    const out = new Array<OutgoingMessage>(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i] as OutboxRecord;
      const ms = row.createdAt.getTime();
      if (ms !== lastMs) {
        lastMs = ms;
        lastText = row.createdAt.toISOString();
      }
      const headers: Record<string, string> = { ...row.headers };
      headers[HEADER.id] = row.id;
      headers[HEADER.createdAt] = lastText;
      headers[HEADER.contentType] ??= 'application/octet-stream';
      out[i] = { topic: row.topic, key: row.key, body: row.body, headers };
    }
    return out;
  };
}

/**
 * The broker's reachability as the relay sees it. While it is unreachable rows wait, uncharged,
 * and one probe (a normal publish) is let through every `delayMs`, doubling up to a cap.
 */
export interface OutageTracker {
  /** Since when the broker has been unreachable (ms since the epoch), or undefined. */
  readonly since: number | undefined;
  /** How many outages began. */
  readonly count: number;
  /** Milliseconds until publishing may be tried again: 0 while the broker is reachable. */
  waitMs(now?: number): number;
  /** A publish failed for want of the broker. */
  down(error: unknown): void;
  /** A publish went through. */
  up(): void;
}

const FIRST_PROBE_MS = 250;
/** Probes at least this often, so publishing resumes within seconds of the broker's return. */
const MAX_PROBE_MS = 2000;

export function createOutageTracker(logger: Logger, destination: string): OutageTracker {
  let outage: { since: number; delayMs: number; probeAt: number } | undefined;
  let count = 0;
  return {
    get since() {
      return outage?.since;
    },
    get count() {
      return count;
    },
    waitMs: (now = Date.now()) => (outage === undefined ? 0 : Math.max(0, outage.probeAt - now)),
    down(error) {
      const now = Date.now();
      if (outage === undefined) {
        count++;
        outage = { since: now, delayMs: FIRST_PROBE_MS, probeAt: now + FIRST_PROBE_MS };
        logger.warn(
          { event: 'relay-outage', result: 'down', destination, err: error },
          'broker unreachable: rows wait, uncharged, and the relay probes',
        );
      } else if (now >= outage.probeAt) {
        outage.delayMs = Math.min(outage.delayMs * 2, MAX_PROBE_MS);
        outage.probeAt = now + outage.delayMs;
      }
    },
    up() {
      if (outage === undefined) return;
      logger.info(
        { event: 'relay-outage', result: 'up', destination, downMs: Date.now() - outage.since },
        'broker reachable again',
      );
      outage = undefined;
    },
  };
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);
// Drivers that give no code say it in words (ioredis: "Connection is closed", "Reached the
// max retries per request limit" while it reconnects).
const NETWORK_TEXT =
  /connection (is )?closed|connection lost|socket hang up|timed? ?out|max retries per request|ECONNREFUSED|ECONNRESET|ETIMEDOUT/i;

/**
 * Whether a publish failed because the broker could not be reached (connection failure,
 * timeout), not because it refused the message: such a failure is not the row's fault.
 * Looks through the `cause` chain, since drivers wrap socket errors in their own.
 */
export function isOutage(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    if (isFerryError(current)) {
      if (['CONNECTION_FAILED', 'TIMEOUT', 'CLOSED'].includes(current.code)) return true;
      if (current.code === 'MESSAGE_TOO_LARGE') return false;
    }
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    if (current instanceof Error && NETWORK_TEXT.test(current.message)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}
