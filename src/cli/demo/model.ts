// Names and shapes shared by the demo's parts.
import { parseUrl } from '../../transport/urls.js';

/** The order flow: one order service, a relay, and three consumer groups. */
export const GROUPS = ['billing', 'shipping', 'notification'] as const;

export interface OrderCreated {
  readonly orderId: string;
  readonly customer: string;
  /** 1, 2, 3, ... per customer: consumers check they apply a customer's orders in this order. */
  readonly seq: number;
  readonly amount: number;
}

export interface Names {
  readonly topic: string;
  readonly orders: string;
  readonly effects: string;
  readonly duplicates: string;
}

/** The database URL with this run's outbox and inbox tables, unless the URL names its own. */
export function ownTables(db: string, run: string): string {
  const url = parseUrl(db, 'database');
  if (!url.searchParams.has('table')) url.searchParams.set('table', `demo_${run}_outbox`);
  if (!url.searchParams.has('inbox')) url.searchParams.set('inbox', `demo_${run}_inbox`);
  return url.href;
}

export const namesOf = (run: string, topic: string): Names => ({
  topic,
  orders: `demo_${run}_orders`,
  effects: `demo_${run}_effects`,
  duplicates: `demo_${run}_duplicates`,
});

export interface DemoFlags {
  db?: string;
  transport?: string;
  orders: number;
  relays: number;
  customers: number;
  chaos?: boolean;
  json?: boolean;
  stallTimeout: number;
}

export interface DemoSummary {
  readonly ok: boolean;
  readonly orders: number;
  readonly published: number;
  /** Distinct orders each group applied. */
  readonly delivered: Record<string, number>;
  /** Effect rows each group wrote (more than `delivered` means applied twice). */
  readonly effects: Record<string, number>;
  readonly appliedTwice: number;
  /** Deliveries the inbox recognised as already processed and skipped. */
  readonly duplicatesAbsorbed: number;
  readonly duplicatesAbsorbedByGroup: Record<string, number>;
  /** (order, group) pairs with no effect. */
  readonly lost: number;
  /** Effects applied out of the customer's order. */
  readonly orderViolations: number;
  readonly outbox: { readonly pending: number; readonly dead: number };
  readonly relays: number;
  readonly chaos: readonly string[];
  readonly durationMs: number;
  readonly db: string;
  readonly transport: string;
}
