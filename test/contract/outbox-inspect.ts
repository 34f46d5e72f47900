import { afterEach, describe, expect, it } from 'vitest';
import { defineTopic, inspectorOf, type OutboxInspector } from '../../src/index.js';
import { openStore, type OpenedStore } from '../../src/cli/open-store.js';
import { uniqueName } from '../helpers/wait.js';

/**
 * What an operator reads from the outbox, lease, relay and inbox tables, on every dialect:
 * run with a database URL (or `undefined` when the database is not configured: skipped).
 * Each test gets its own tables through the URL's `table` and `inbox` parameters.
 */
export function outboxInspectorContract(name: string, url: (() => string) | undefined): void {
  describe.skipIf(url === undefined)(`outbox inspector: ${name}`, () => {
    let opened: OpenedStore | undefined;
    afterEach(async () => {
      const o = opened;
      opened = undefined;
      if (!o) return;
      for (const table of [
        o.tables.inbox,
        `${o.tables.outbox}_relay`,
        `${o.tables.outbox}_lease`,
        o.tables.outbox,
      ]) {
        await o.query(undefined, `DROP TABLE IF EXISTS ${table}`);
      }
      await o.close();
    });

    async function open(): Promise<{ store: OpenedStore; inspector: OutboxInspector }> {
      const base = (url as () => string)();
      const separator = base.includes('?') ? '&' : '?';
      const store = await openStore(
        `${base}${separator}table=${uniqueName('ob')}&inbox=${uniqueName('ib')}&partitions=4`,
      );
      opened = store;
      await store.migrate();
      return { store, inspector: inspectorOf(store) };
    }

    it('shows dead and blocked rows, relays, rates, and who applied a message', async () => {
      const { store, inspector } = await open();
      const orders = defineTopic<{ n: number }>('orders');
      const mails = defineTopic<{ n: number }>('mails');
      const enqueue = (topic: typeof orders, n: number, key?: string) =>
        store.transaction((tx) =>
          store.outbox.enqueue(tx, topic, { n }, key === undefined ? {} : { key }),
        );
      const poison = await enqueue(orders, 1, 'o-1');
      const behind = await enqueue(orders, 2, 'o-1');
      const sent = await enqueue(orders, 3, 'o-2');
      await enqueue(mails, 4);

      await store.store.heartbeat('relay-a', 30_000);
      const leases = await store.store.acquire('relay-a', 4, 30_000);
      expect(leases).toHaveLength(4);
      const leaseOf = async (id: string) => {
        const [row] = await inspector.findRows(id, 1);
        return leases.find((l) => l.partition === row?.partition) ?? leases[0]!;
      };
      expect(
        await store.store.markFailed('relay-a', await leaseOf(poison.id), poison.id, 'refused', {
          dead: true,
          retryInMs: 0,
        }),
      ).toBe(true);
      expect(await store.store.markPublished('relay-a', await leaseOf(sent.id), [sent.id])).toBe(1);
      await store.inbox.process('billing', sent.id, async () => undefined);
      await store.inbox.process('shipping', sent.id, async () => undefined);

      const stuck = await inspector.stuckRows(10);
      expect(stuck.map((r) => [r.id, r.status, r.blocked])).toEqual([
        [poison.id, 'dead', false],
        [behind.id, 'pending', true],
      ]);
      expect(stuck[0]).toMatchObject({
        key: 'o-1',
        topic: 'orders',
        attempts: 1,
        lastError: 'refused',
      });
      expect(JSON.parse(stuck[0]?.body.toString('utf8') ?? '')).toEqual({ n: 1 });
      const status = await store.store.status();
      expect(status.find((p) => p.partition === stuck[1]?.partition)?.blocked).toBe(1);

      const byKey = await inspector.findRows('o-1', 10);
      expect(byKey.map((r) => r.id)).toEqual([behind.id, poison.id]);
      const [published] = await inspector.findRows(sent.id, 10);
      expect(published?.status).toBe('published');
      expect(published?.publishedAt?.getTime()).toBeGreaterThan(Date.now() - 60_000);

      const [relay, ...others] = await inspector.relays();
      expect(others).toEqual([]);
      expect(relay?.owner).toBe('relay-a');
      expect(relay?.live).toBe(true);
      expect(relay?.leases.map((l) => l.partition)).toEqual([0, 1, 2, 3]);
      expect(relay?.leases.every((l) => l.fence >= 1n)).toBe(true);

      const perMinute = await inspector.publishedPerMinute(5);
      expect(perMinute).toHaveLength(5);
      expect(perMinute.reduce((a, b) => a + b, 0)).toBe(1);
      expect(await inspector.publishedPerMinute(5, new Date(Date.now() + 3_600_000))).toEqual([
        0, 0, 0, 0, 0,
      ]);

      expect(await inspector.topics()).toEqual(['mails', 'orders']);
      expect(await inspector.inboxGroups()).toEqual(['billing', 'shipping']);
      expect((await inspector.appliedBy([sent.id, poison.id])).map((e) => e.group).sort()).toEqual([
        'billing',
        'shipping',
      ]);

      // Skipped rows are neither stuck nor blocking; find still shows them.
      expect(await store.store.skipDead([poison.id, behind.id])).toBe(1);
      expect(await inspector.stuckRows(10)).toEqual([]);
      expect((await inspector.findRows('o-1', 10)).map((r) => [r.id, r.status])).toEqual([
        [behind.id, 'pending'],
        [poison.id, 'skipped'],
      ]);
    });
  });
}
