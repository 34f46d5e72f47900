// Handing rows to the transport: rows as messages, the observed send, the audit lines, and
// how a broker outage is told apart from a refused row and waited out.
import { isFerryError } from '../../core/errors.js';
import type { InfoLines, Logger } from '../../core/log.js';
import { buildOutgoing, HEADER, type OutgoingMessage } from '../../core/message.js';
import type { Instrumentation } from '../../observability/instrumentation.js';
import { traceIdOf } from '../../observability/tracing.js';
import type { Transport } from '../../transport/transport.js';
import type { OutboxRecord } from '../store.js';
import type { RelayCounters } from './options.js';

/** Publishes rows through the transport; throws what the transport threw. */
export type Send = (rows: readonly OutboxRecord[]) => Promise<void>;

/** One log line per row: `ok` lines only with audit on, every other result as a warning. */
export type Audit = (row: OutboxRecord, result: string, extra?: Record<string, unknown>) => void;

const toOutgoing = (row: OutboxRecord): OutgoingMessage =>
  buildOutgoing({
    id: row.id,
    topic: row.topic,
    key: row.key,
    body: row.body,
    contentType: row.headers[HEADER.contentType] ?? 'application/octet-stream',
    createdAt: row.createdAt,
    headers: row.headers,
  });

/** A {@link Send} observed as one send of each row. */
export function sender(
  transport: Transport,
  owner: string,
  instrumentation: Instrumentation,
): Send {
  return async (rows) => {
    const observed = instrumentation.relayPublish({
      transport: transport.name,
      relay: owner,
      rows,
    });
    try {
      await transport.publish(rows.map(toOutgoing));
    } catch (error) {
      observed.end(error);
      throw error;
    }
    observed.end();
  };
}

/**
 * An {@link Audit} writing `ok` lines to `okLines` (`relay` and `event` bound), when the
 * audit trail is on, and every other result to `logger` as a warning.
 */
export function auditor(logger: Logger, okLines: InfoLines | undefined): Audit {
  return (row, result, extra = {}) => {
    const ok = result === 'ok';
    if (ok && !okLines?.isLevelEnabled('info')) return;
    const line = {
      id: row.id,
      traceId: traceIdOf(row.headers),
      topic: row.topic,
      key: row.key,
      partition: row.partition,
      attempt: row.attempts + 1,
      result,
    };
    if (ok) okLines?.info(line, 'relayed');
    else logger.warn({ event: 'relay-publish', ...line, ...extra }, `relay ${result}`);
  };
}

/** While the broker is unreachable: rows wait uncharged and a probe runs every so often. */
export interface OutageTracker {
  /** A publish failed for want of the broker. */
  down(error: unknown): void;
  /** A publish went through. */
  up(): void;
  /** How long publishing still waits for the next probe: 0 when it may go ahead. */
  probeInMs(): number;
  /** When the outage began (epoch ms), or undefined while the broker is reachable. */
  since(): number | undefined;
}

/**
 * An {@link OutageTracker}: the first probe 250 ms after the broker went away, then at doubling
 * intervals up to 2 s; the outage is logged when it begins and when it ends.
 */
export function outageTracker(
  logger: Logger,
  destination: string,
  counters: RelayCounters,
): OutageTracker {
  let outage: { since: number; delayMs: number; probeAt: number } | undefined;
  return {
    down(error) {
      const now = Date.now();
      if (outage === undefined) {
        counters.outages++;
        outage = {
          since: now,
          delayMs: OUTAGE_FIRST_PROBE_MS,
          probeAt: now + OUTAGE_FIRST_PROBE_MS,
        };
        logger.warn(
          { event: 'relay-outage', result: 'down', destination, err: error },
          'broker unreachable: rows wait, uncharged, and the relay probes',
        );
      } else if (now >= outage.probeAt) {
        outage.delayMs = Math.min(outage.delayMs * 2, OUTAGE_MAX_PROBE_MS);
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
    probeInMs: () => (outage === undefined ? 0 : Math.max(0, outage.probeAt - Date.now())),
    since: () => outage?.since,
  };
}

const OUTAGE_FIRST_PROBE_MS = 250;
/** Probes at least this often, so publishing resumes within seconds of the broker's return. */
const OUTAGE_MAX_PROBE_MS = 2000;

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
