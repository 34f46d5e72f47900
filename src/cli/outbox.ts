import type { Command } from 'commander';
import type { PartitionStatus } from '../outbox/store.js';
import { openStore, type OpenedStore } from './open-store.js';
import { action } from './common.js';
import { dbOption, onOutboxTables, parseSince } from './db.js';
import { fromFerryParser } from './options.js';

async function withStore<T>(url: string, work: (opened: OpenedStore) => Promise<T>): Promise<T> {
  const opened = await openStore(url);
  try {
    return await onOutboxTables(url, () => work(opened));
  } finally {
    await opened.close();
  }
}

export function outboxCommand(program: Command): void {
  const outbox = program.command('outbox').description('inspect and repair the outbox');

  outbox
    .command('status')
    .description(
      'pending, dead and blocked messages (held behind a dead one of their key) and lease owners per partition',
    )
    .addOption(dbOption())
    .option(
      '--json',
      'one JSON object {partitions: [{partition, pending, dead, blocked, blockedKeys, oldestPendingMs, owner, fence, leaseExpiresAt}], total: {pending, dead, blocked}}',
    )
    .action(
      action(async (flags: { db: string; json?: boolean }) => {
        const status = await withStore(flags.db, (opened) => opened.store.status());
        if (flags.json) {
          process.stdout.write(
            `${JSON.stringify({ partitions: status.map(asJson), total: totalOf(status) })}\n`,
          );
          return;
        }
        process.stdout.write(formatStatus(status));
      }),
    );

  outbox
    .command('retry')
    .description('put dead messages (all, or these ids) back to pending')
    .argument('[ids...]', 'message ids (default: every dead message)')
    .addOption(dbOption())
    .action(
      action(async (ids: string[], flags: { db: string }) => {
        const count = await withStore(flags.db, (opened) =>
          opened.store.retryDead(ids.length > 0 ? ids : undefined),
        );
        process.stdout.write(`${count} dead message(s) back to pending\n`);
      }),
    );

  outbox
    .command('skip')
    .description(
      'give up on dead messages: never published, they stop holding back the messages of their key',
    )
    .argument('<ids...>', 'ids of dead messages')
    .addOption(dbOption())
    .action(
      action(async (ids: string[], flags: { db: string }) => {
        const count = await withStore(flags.db, (opened) => opened.store.skipDead(ids));
        process.stdout.write(`${count} dead message(s) skipped\n`);
      }),
    );

  outbox
    .command('republish')
    .description(
      'publish again the messages created since a time (consumers with an inbox skip them)',
    )
    .addOption(dbOption())
    .requiredOption(
      '--since <time>',
      'an ISO time, or how long ago (15m, 2h)',
      fromFerryParser((text) => parseSince(text)),
    )
    .action(
      action(async (flags: { db: string; since: Date }) => {
        const { since } = flags;
        const count = await withStore(flags.db, (opened) => opened.store.republish(since));
        process.stdout.write(
          `${count} published message(s) since ${since.toISOString()} back to pending\n`,
        );
      }),
    );
}

function asJson(status: PartitionStatus): Record<string, unknown> {
  return {
    partition: status.partition,
    pending: status.pending,
    dead: status.dead,
    blocked: status.blocked,
    blockedKeys: status.blockedKeys,
    oldestPendingMs: status.oldestPendingMs ?? null,
    owner: status.owner ?? null,
    fence: status.fence === undefined ? null : String(status.fence),
    leaseExpiresAt: status.leaseExpiresAt?.toISOString() ?? null,
  };
}

function totalOf(status: readonly PartitionStatus[]): {
  pending: number;
  dead: number;
  blocked: number;
} {
  return status.reduce(
    (sum, s) => ({
      pending: sum.pending + s.pending,
      dead: sum.dead + s.dead,
      blocked: sum.blocked + s.blocked,
    }),
    { pending: 0, dead: 0, blocked: 0 },
  );
}

function formatStatus(status: readonly PartitionStatus[]): string {
  const now = Date.now();
  const rows = status.map((s) => [
    String(s.partition),
    String(s.pending),
    String(s.dead),
    s.blocked === 0 ? '0' : `${s.blocked} (${s.blockedKeys} key${s.blockedKeys === 1 ? '' : 's'})`,
    s.oldestPendingMs === undefined ? '-' : `${Math.round(s.oldestPendingMs / 1000)}s`,
    s.owner ?? '-',
    s.fence === undefined ? '-' : String(s.fence),
    s.leaseExpiresAt === undefined
      ? '-'
      : s.leaseExpiresAt.getTime() > now
        ? `in ${Math.ceil((s.leaseExpiresAt.getTime() - now) / 1000)}s`
        : 'expired',
  ]);
  const header = ['partition', 'pending', 'dead', 'blocked', 'oldest', 'owner', 'fence', 'lease'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  const total = totalOf(status);
  const hint =
    total.dead > 0
      ? 'dead messages block their key: `ferry outbox retry [ids]` or `ferry outbox skip <ids>`\n'
      : '';
  return `${[line(header), ...rows.map(line)].join('\n')}\ntotal: ${total.pending} pending (${total.blocked} blocked), ${total.dead} dead\n${hint}`;
}
