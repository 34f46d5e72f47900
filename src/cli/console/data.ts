import { listDeadLetters, type DeadLetter } from '../../core/dead-letters.js';
import { isFerryError } from '../../core/errors.js';
import { redactSecrets } from '../../core/log.js';
import type { InboxEntry, OutboxInspector, OutboxRow, RelayInfo } from '../../outbox/inspect.js';
import type { PartitionLag, Transport } from '../../transport/transport.js';
import type { OpenedStore } from '../open-store.js';

export interface PartitionView {
  readonly partition: number;
  readonly pending: number;
  readonly dead: number;
  readonly blocked: number;
  readonly oldestPendingMs: number | undefined;
  readonly owner: string | undefined;
  readonly fence: bigint | undefined;
}

export interface OutboxView {
  readonly partitions: readonly PartitionView[];
  readonly totals: { readonly pending: number; readonly dead: number; readonly blocked: number };
  readonly oldestPendingMs: number | undefined;
  /** Rows published in each of the last minutes, oldest first. */
  readonly publishedPerMinute: readonly number[];
  readonly stuck: readonly OutboxRow[];
}

export interface LagView {
  readonly topic: string;
  readonly group: string;
  readonly partitions: readonly PartitionLag[];
  readonly total: number;
}

export interface DeadLetterView {
  readonly topic: string;
  readonly letters: readonly DeadLetter[];
  /** Why the letters could not be listed (e.g. a queue broker), if so. */
  readonly unavailable: string | undefined;
}

export interface ConsumersView {
  readonly lag: readonly LagView[];
  /** Why lag is not shown, if so. */
  readonly lagUnavailable: string | undefined;
  readonly deadLetters: readonly DeadLetterView[];
}

export interface Snapshot {
  readonly at: Date;
  readonly outbox: OutboxView;
  readonly relays: readonly RelayInfo[];
  readonly consumers: ConsumersView;
}

export interface FoundMessage {
  readonly row: OutboxRow;
  readonly appliedBy: readonly InboxEntry[];
}

export interface SourcesOptions {
  readonly store: OpenedStore;
  readonly inspector: OutboxInspector;
  readonly transport: Transport;
  /** Topics and groups to show besides those the outbox and inbox tables name. */
  readonly topics: readonly string[];
  readonly groups: readonly string[];
  /** How long a dead-letter read waits for more. */
  readonly deadLetterIdleMs: number;
  /** Minutes of publish rate to show. */
  readonly rateMinutes: number;
}

const STUCK_ROWS = 200;

/** Reads what the page shows, through the store, inspector and transport APIs. */
export function createSources(options: SourcesOptions): {
  snapshot(): Promise<Snapshot>;
  find(idOrKey: string): Promise<FoundMessage[]>;
} {
  const { store, inspector, transport } = options;
  // Consumer reads (group offsets, dead-letter topics) cost a broker round trip each: one at
  // a time, and shared by the requests that arrive meanwhile.
  let consumersInFlight: Promise<ConsumersView> | undefined;

  async function outbox(): Promise<OutboxView> {
    const [status, rate, stuck] = await Promise.all([
      store.store.status(),
      inspector.publishedPerMinute(options.rateMinutes),
      inspector.stuckRows(STUCK_ROWS),
    ]);
    const partitions = status.map((s) => ({
      partition: s.partition,
      pending: s.pending,
      dead: s.dead,
      blocked: s.blocked,
      oldestPendingMs: s.oldestPendingMs,
      owner: s.owner,
      fence: s.fence,
    }));
    const ages = partitions.flatMap((p) =>
      p.oldestPendingMs === undefined ? [] : [p.oldestPendingMs],
    );
    return {
      partitions,
      totals: {
        pending: sum(partitions.map((p) => p.pending)),
        dead: sum(partitions.map((p) => p.dead)),
        blocked: sum(partitions.map((p) => p.blocked)),
      },
      oldestPendingMs: ages.length === 0 ? undefined : Math.max(...ages),
      publishedPerMinute: rate,
      stuck,
    };
  }

  async function consumers(): Promise<ConsumersView> {
    const topics = union(await inspector.topics(), options.topics);
    const deadLetters: DeadLetterView[] = [];
    for (const topic of topics) {
      try {
        deadLetters.push({
          topic,
          letters: await listDeadLetters(transport, topic, {
            idleMs: options.deadLetterIdleMs,
            limit: 200,
          }),
          unavailable: undefined,
        });
      } catch (error) {
        deadLetters.push({ topic, letters: [], unavailable: reason(error) });
      }
    }
    const groups = union(
      await inspector.inboxGroups(),
      options.groups,
      deadLetters.flatMap((d) =>
        d.letters.flatMap((l) => (l.group === undefined ? [] : [l.group])),
      ),
    );
    const lag: LagView[] = [];
    let lagUnavailable: string | undefined;
    if (!transport.lag) {
      lagUnavailable = `${transport.name} cannot tell consumer lag`;
    } else {
      for (const topic of topics) {
        for (const group of groups) {
          try {
            const partitions = await transport.lag(topic, group);
            lag.push({ topic, group, partitions, total: sum(partitions.map((p) => p.lag)) });
          } catch (error) {
            lagUnavailable = reason(error);
          }
        }
      }
    }
    return { lag, lagUnavailable, deadLetters };
  }

  return {
    async snapshot() {
      consumersInFlight ??= consumers().finally(() => (consumersInFlight = undefined));
      const [outboxView, relays, consumersView] = await Promise.all([
        outbox(),
        inspector.relays(),
        consumersInFlight,
      ]);
      return { at: new Date(), outbox: outboxView, relays, consumers: consumersView };
    },

    async find(idOrKey) {
      const rows = await inspector.findRows(idOrKey, 50);
      const applied = await inspector.appliedBy(rows.map((row) => row.id));
      return rows.map((row) => ({
        row,
        appliedBy: applied.filter((entry) => entry.messageId === row.id),
      }));
    },
  };
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function union(...lists: ReadonlyArray<readonly string[]>): string[] {
  return [...new Set(lists.flat())].sort();
}

function reason(error: unknown): string {
  if (isFerryError(error)) return redactSecrets(`${error.code}: ${error.message}`);
  return redactSecrets(error instanceof Error ? error.message : String(error));
}
