// The demo's terminal output: live progress bars and the final summary.
import { clearScreenDown, moveCursor } from 'node:readline';
import { GROUPS, type DemoSummary } from './model.js';
import type { Progress } from './reconcile.js';

export function printSummary(summary: DemoSummary): void {
  const lines = [
    '',
    'reconciliation (read from the database)',
    `  orders committed       ${summary.orders}`,
    `  published by relays    ${summary.published}  (outbox: ${summary.outbox.pending} pending, ${summary.outbox.dead} dead)`,
    ...GROUPS.map(
      (g) =>
        `  ${g.padEnd(22)} ${summary.delivered[g]} delivered, ${summary.effects[g]} effects, ${summary.duplicatesAbsorbedByGroup[g]} duplicates absorbed`,
    ),
    `  duplicates absorbed    ${summary.duplicatesAbsorbed}`,
    `  applied twice          ${summary.appliedTwice}`,
    `  lost                   ${summary.lost}`,
    `  order violations       ${summary.orderViolations}`,
    `  took                   ${(summary.durationMs / 1000).toFixed(1)} s`,
    summary.ok
      ? 'OK: every order reached every group exactly once, in order per customer'
      : 'FAILED: see the counts above',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function progressBars(total: number): {
  update(progress: Progress): void;
  log(text: string): void;
  stop(): void;
} {
  // Redrawn in place: move up over the lines drawn last time, then write them again.
  const out = process.stdout;
  const labels = ['orders', 'published', ...GROUPS];
  let values = labels.map(() => 0);
  let drawn = 0;
  const bar = (value: number): string => {
    const width = 30;
    const filled = total > 0 ? Math.round((Math.min(value, total) / total) * width) : width;
    return '█'.repeat(filled) + '░'.repeat(width - filled);
  };
  const erase = (): void => {
    if (drawn === 0) return;
    moveCursor(out, 0, -drawn);
    clearScreenDown(out);
    drawn = 0;
  };
  const draw = (): void => {
    erase();
    const lines = labels.map(
      (label, i) => `  ${label.padEnd(12)} ${bar(values[i] ?? 0)} ${values[i] ?? 0}/${total}`,
    );
    out.write(`${lines.join('\n')}\n`);
    drawn = lines.length;
  };
  return {
    update(progress) {
      values = [progress.orders, progress.published, ...GROUPS.map((g) => progress.groups[g] ?? 0)];
      draw();
    },
    log(text) {
      erase();
      out.write(`${text.replace(/\n$/, '')}\n`);
      draw();
    },
    stop: () => {
      drawn = 0;
    },
  };
}
