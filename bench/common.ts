// What the bus-vs-raw groups share: the orders both sides send, the three headers the raw
// side writes itself, the two audit settings, a first-to-last delivery timer, and the pair of
// publish/consume groups every transport is measured with. Imports only public entry points.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  createLogger,
  HEADER,
  newMessageId,
  type Logger,
  type OutgoingMessage,
} from '../src/index.js';
// Not public: how ferry assigns a key to a partition and builds a message's headers. Used by
// the raw sides to write the same rows; kept to this one import so a move is a one-line fix.
export { buildOutgoing, partitionFor } from '../src/core/message.js';
// `ferry/postgres` and `ferry/sqlite`: the subpath entries, wherever their files live.
export { postgresInbox, postgresOutbox, type PostgresOutbox } from '../src/postgres.js';
import { sleep, type BenchCase, type BenchGroup, type RoundResult } from './harness.js';

/** A workload size, overridable from the environment (e.g. BENCH_KAFKA_MESSAGES=2000). */
export const size = (name: string, fallback: number): number =>
  Number(process.env[name] ?? fallback);

export const BATCH = 500;
export const READ = 100;

/** A name no other run or helper uses. */
export const unique = (prefix: string): string =>
  `bench.${prefix}.${Date.now().toString(36)}.${randomBytes(3).toString('hex')}`;

export function chunks<T>(items: readonly T[], length: number = BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += length) out.push(items.slice(i, i + length));
  return out;
}

export interface Order {
  orderId: string;
  customer: string;
  amount: number;
  note: string;
}
export type OrderItem = { key: string; payload: Order };

export const orders = (count: number): OrderItem[] =>
  Array.from({ length: count }, (_, i) => ({
    key: `customer-${i % 500}`,
    payload: { orderId: `o-${i}`, customer: `c-${i % 97}`, amount: i % 997, note: 'x'.repeat(100) },
  }));

/** What the raw side writes per message: the body and ferry's three headers, made per round. */
export function rawMessage(item: OrderItem): {
  key: string;
  body: Buffer;
  headers: Record<string, string>;
} {
  return {
    key: item.key,
    body: Buffer.from(JSON.stringify(item.payload)),
    headers: {
      [HEADER.id]: newMessageId(),
      [HEADER.createdAt]: new Date().toISOString(),
      [HEADER.contentType]: 'application/json',
    },
  };
}

/** The same message as the transport takes it, for the transport-alone rows. */
export const outgoing = (topic: string, item: OrderItem): OutgoingMessage => ({
  topic,
  ...rawMessage(item),
});

export const silent = (): Logger => createLogger({ level: 'silent' });
export const audited = (): Logger => createLogger({ level: 'info', destination: '/dev/null' });
export const trails = [
  ['audit trail off', silent, false],
  ['audit trail on (info → /dev/null)', audited, true],
] as const;

/** Counts deliveries and times the first to the last, leaving out joins and assignment. */
export function counter(expected: number): { seen: () => void; done: Promise<RoundResult> } {
  let count = 0;
  let first = 0;
  let finish!: (result: RoundResult) => void;
  const done = new Promise<RoundResult>((resolve) => (finish = resolve));
  return {
    seen() {
      if (count === 0) first = performance.now();
      if (++count === expected) {
        finish({ operations: expected - 1, seconds: (performance.now() - first) / 1000 });
      }
    },
    done,
  };
}

/** Waits for `check`, polling every millisecond; throws after `timeoutMs`. */
export async function until(check: () => boolean, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('benchmark stalled');
    await sleep(1);
  }
}

/** One direction (publish or consume) of a transport: the raw client and the bus. */
export interface Side {
  readonly raw: BenchCase;
  /** The transport alone, without the bus (optional). */
  readonly transport?: BenchCase;
  bus(label: string, logger: () => Logger, audit: boolean): BenchCase;
}

/**
 * The publish and the consume group of one transport: raw client first (the baseline), the
 * bus with the audit trail off and on, then the transport alone where given.
 */
export function pair(
  title: string,
  note: string,
  requires: string | undefined,
  publish: Side,
  consume: Side,
  hooks: { setup?: () => Promise<void>; teardown?: () => Promise<void> } = {},
): [BenchGroup, BenchGroup] {
  const make = (what: string, side: Side): BenchGroup => ({
    title: `Bus vs raw client, ${title}: ${what}`,
    note,
    ...(requires ? { requires } : {}),
    ...hooks,
    cases: [
      side.raw,
      ...trails.map(([label, logger, audit]) => side.bus(label, logger, audit)),
      ...(side.transport ? [side.transport] : []),
    ],
  });
  return [make('publish', publish), make('consume', consume)];
}
