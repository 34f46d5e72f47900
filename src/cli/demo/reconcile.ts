// What the demo checks, counted in the database: lost, applied twice, out of order.
import type { OpenedStore } from '../open-store.js';
import { GROUPS, type Names, type DemoSummary } from './model.js';

export interface Progress {
  orders: number;
  published: number;
  groups: Record<string, number>;
}

export async function readProgress(opened: OpenedStore, names: Names): Promise<Progress> {
  const [orders] = await opened.query(undefined, `SELECT count(*) AS n FROM ${names.orders}`);
  const status = await opened.store.status();
  const pending = status.reduce((sum, s) => sum + s.pending + s.dead, 0);
  const rows = await opened.query(
    undefined,
    `SELECT grp, count(DISTINCT order_id) AS n FROM ${names.effects} GROUP BY grp`,
  );
  const groups: Record<string, number> = Object.fromEntries(GROUPS.map((g) => [g, 0]));
  for (const row of rows) groups[String(row.grp)] = Number(row.n);
  const committed = Number(orders?.n ?? 0);
  return { orders: committed, published: Math.max(0, committed - pending), groups };
}

export async function reconcile(
  opened: OpenedStore,
  names: Names,
  context: { relays: number; chaos: string[]; started: number; db: string; transport: string },
): Promise<DemoSummary> {
  const number = (value: unknown): number => Number(value ?? 0);
  const [orderRow] = await opened.query(undefined, `SELECT count(*) AS n FROM ${names.orders}`);
  const orders = number(orderRow?.n);
  const effectRows = await opened.query(
    undefined,
    `SELECT grp, count(*) AS n, count(DISTINCT order_id) AS d FROM ${names.effects} GROUP BY grp`,
  );
  const duplicateRows = await opened.query(
    undefined,
    `SELECT grp, count(*) AS n FROM ${names.duplicates} GROUP BY grp`,
  );
  const [violationRow] = await opened.query(
    undefined,
    `SELECT count(*) AS n FROM ${names.effects} WHERE seq <> COALESCE(prev_seq, 0) + 1`,
  );
  // Effects for orders that were never committed would be phantom deliveries.
  const [phantomRow] = await opened.query(
    undefined,
    `SELECT count(*) AS n FROM ${names.effects} e WHERE NOT EXISTS (SELECT 1 FROM ${names.orders} o WHERE o.id = e.order_id)`,
  );
  const status = await opened.store.status();

  const effects: Record<string, number> = {};
  const delivered: Record<string, number> = {};
  const duplicatesAbsorbedByGroup: Record<string, number> = {};
  for (const group of GROUPS) {
    const row = effectRows.find((r) => r.grp === group);
    effects[group] = number(row?.n);
    delivered[group] = number(row?.d);
    duplicatesAbsorbedByGroup[group] = number(duplicateRows.find((r) => r.grp === group)?.n);
  }
  const appliedTwice = GROUPS.reduce((sum, g) => sum + (effects[g] ?? 0) - (delivered[g] ?? 0), 0);
  const lost = GROUPS.reduce((sum, g) => sum + orders - (delivered[g] ?? 0), 0);
  const orderViolations = number(violationRow?.n) + number(phantomRow?.n);
  const pending = status.reduce((sum, s) => sum + s.pending, 0);
  const dead = status.reduce((sum, s) => sum + s.dead, 0);
  return {
    ok: lost === 0 && appliedTwice === 0 && orderViolations === 0,
    orders,
    published: orders - pending - dead,
    delivered,
    effects,
    appliedTwice,
    duplicatesAbsorbed: GROUPS.reduce((sum, g) => sum + (duplicatesAbsorbedByGroup[g] ?? 0), 0),
    duplicatesAbsorbedByGroup,
    lost,
    orderViolations,
    outbox: { pending, dead },
    relays: context.relays,
    chaos: context.chaos,
    durationMs: Date.now() - context.started,
    db: context.db,
    transport: context.transport,
  };
}
