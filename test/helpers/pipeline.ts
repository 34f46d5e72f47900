import {
  createBus,
  createLogger,
  defineTopic,
  PermanentError,
  type Bus,
  type Relay,
  type Subscription,
} from '../../src/index.js';
import { openStore, type OpenedStore } from '../../src/cli/open-store.js';
import { openTransport } from '../../src/transport/urls.js';
import { uniqueName } from './wait.js';

export interface Order {
  readonly id: string;
  readonly note?: string;
}

/**
 * A small order pipeline on real databases and brokers for the console's tests: an outbox
 * with pending, dead and blocked rows, and billing and shipping groups with inboxes. Billing
 * dead-letters orders whose id starts with `bad` until `healthy` is set.
 */
export interface Pipeline {
  readonly store: OpenedStore;
  readonly bus: Bus;
  readonly topic: ReturnType<typeof defineTopic<Order>>;
  readonly state: { healthy: boolean; billed: string[]; shipped: string[] };
  /** The two consumer groups' names (unique per pipeline on shared brokers). */
  readonly groups: { readonly billing: string; readonly shipping: string };
  /** Ids of the seeded rows. */
  readonly ids: {
    readonly pending: readonly string[];
    readonly dead: string;
    readonly blocked: string;
    readonly script: string;
  };
  /** Counts straight from the outbox table. */
  counts(): Promise<{ pending: number; dead: number; published: number }>;
  startRelay(): Promise<Relay>;
  startConsumers(): Promise<void>;
  close(): Promise<void>;
}

export const SCRIPT_PAYLOAD =
  '<script>window.__pwned = true</script><img src=x onerror="window.__pwned=true">';

export async function createPipeline(
  dbUrl: string,
  transportUrl: string,
  groups = { billing: 'billing', shipping: 'shipping' },
): Promise<Pipeline> {
  const store = await openStore(dbUrl);
  await store.migrate();
  const transport = await openTransport(transportUrl);
  const bus = createBus({
    transport,
    logger: createLogger({ level: 'silent' }),
    retry: { maxAttempts: 2, initialDelayMs: 5, maxDelayMs: 20 },
  });
  const topic = defineTopic<Order>(uniqueName('orders'));
  const state = { healthy: false, billed: [] as string[], shipped: [] as string[] };
  const enqueue = (order: Order, key: string) =>
    store.transaction((tx) => store.outbox.enqueue(tx, topic, order, { key }));

  const pending = [
    (await enqueue({ id: 'o-1' }, 'o-1')).id,
    (await enqueue({ id: 'o-2' }, 'o-2')).id,
    (await enqueue({ id: 'o-3' }, 'o-3')).id,
  ];
  const dead = (await enqueue({ id: 'o-dead' }, 'o-dead')).id;
  const blocked = (await enqueue({ id: 'o-dead', note: 'second' }, 'o-dead')).id;
  const script = (await enqueue({ id: 'o-x', note: SCRIPT_PAYLOAD }, 'o-x')).id;

  // Two rows the broker "refused": marked dead under a lease, as a relay does.
  const seeder = uniqueName('seeder');
  await store.store.heartbeat(seeder, 30_000);
  const leases = await store.store.acquire(seeder, store.store.partitions, 30_000);
  const rows = await store.query(
    undefined,
    `SELECT id, ${store.dialect === 'mysql' ? '`partition`' : '"partition"'} AS p FROM ${store.tables.outbox} WHERE id IN (?, ?)`,
    [dead, script],
  );
  for (const row of rows) {
    const lease = leases.find((l) => l.partition === Number(row.p));
    if (!lease) throw new Error('seeding: no lease on the partition of a seeded row');
    await store.store.markFailed(
      seeder,
      lease,
      String(row.id),
      'broker refused: <b>too large</b>',
      {
        dead: true,
        retryInMs: 0,
      },
    );
  }
  await store.store.release(
    seeder,
    leases.map((l) => l.partition),
    true,
  );

  const relays: Relay[] = [];
  const subscriptions: Subscription[] = [];
  return {
    store,
    bus,
    topic,
    state,
    groups,
    ids: { pending, dead, blocked, script },
    async counts() {
      const result = await store.query(
        undefined,
        `SELECT status, count(*) AS n FROM ${store.tables.outbox} GROUP BY status`,
      );
      const of = (status: string) => Number(result.find((r) => r.status === status)?.n ?? 0);
      return { pending: of('pending'), dead: of('dead'), published: of('published') };
    },
    async startRelay() {
      const relay = store.outbox.relay({
        transport,
        leaseMs: 3000,
        pollMaxMs: 100,
        retention: 'keep',
        logger: createLogger({ level: 'silent' }),
      });
      await relay.start();
      relays.push(relay);
      return relay;
    },
    async startConsumers() {
      subscriptions.push(
        await bus.subscribe(
          topic,
          { group: groups.billing, inbox: store.inbox },
          async (message) => {
            if (message.payload.id.startsWith('bad') && !state.healthy) {
              throw new PermanentError(`card declined for ${message.payload.id}`);
            }
            state.billed.push(message.payload.id);
          },
        ),
        await bus.subscribe(
          topic,
          { group: groups.shipping, inbox: store.inbox },
          async (message) => {
            state.shipped.push(message.payload.id);
          },
        ),
      );
    },
    async close() {
      await Promise.all(relays.map((relay) => relay.stop({ timeoutMs: 2000 })));
      await Promise.all(subscriptions.map((s) => s.close({ timeoutMs: 2000 })));
      await bus.close({ timeoutMs: 2000 });
      await store.close();
    },
  };
}
