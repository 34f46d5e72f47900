import { afterEach, describe, expect, it } from 'vitest';
import type { Inbox } from '../../src/index.js';
import { delay } from '../helpers/wait.js';

export interface InboxSubject<Tx> {
  readonly inbox: Inbox<Tx> & {
    migrate(): Promise<void>;
    close(): Promise<void>;
    /** Deletes up to `limit` rows processed before `before`. */
    purge(before: Date, limit: number): Promise<number>;
  };
  /** Writes an effect row through the handler's transaction. */
  readonly writeEffect: (tx: Tx, messageId: string, group: string) => Promise<void>;
  /** Every effect row, sorted by message id then group. */
  readonly readEffects: () => Promise<Array<{ message_id: string; grp: string }>>;
  /** Drops what `create` made. */
  readonly cleanup: () => Promise<void>;
}

/**
 * The idempotent-consumer promise every inbox keeps, run by each dialect's test file with
 * fresh tables per test (or `undefined` when its database is not configured: skipped).
 */
export function inboxContract<Tx>(
  name: string,
  create: (() => Promise<InboxSubject<Tx>>) | undefined,
): void {
  describe.skipIf(create === undefined)(`inbox contract: ${name}`, () => {
    let subject: InboxSubject<Tx> | undefined;
    const open = async (): Promise<InboxSubject<Tx>> => {
      subject = await (create as () => Promise<InboxSubject<Tx>>)();
      await Promise.all([subject.inbox.migrate(), subject.inbox.migrate()]);
      return subject;
    };
    afterEach(async () => {
      await subject?.inbox.close();
      await subject?.cleanup();
      subject = undefined;
    });

    it('runs the work once per group and message', async () => {
      const { inbox, writeEffect, readEffects } = await open();
      const effect = (id: string, group: string) => (tx: Tx) => writeEffect(tx, id, group);
      expect(await inbox.process('billing', 'm1', effect('m1', 'billing'))).toEqual({
        duplicate: false,
      });
      expect(await inbox.process('billing', 'm1', effect('m1', 'billing'))).toEqual({
        duplicate: true,
      });
      expect(await inbox.process('shipping', 'm1', effect('m1', 'shipping'))).toEqual({
        duplicate: false,
      });
      expect(await readEffects()).toEqual([
        { message_id: 'm1', grp: 'billing' },
        { message_id: 'm1', grp: 'shipping' },
      ]);
    });

    it('rolls back the effects and the inbox row together when the work throws', async () => {
      const { inbox, writeEffect, readEffects } = await open();
      const failure = new Error('handler failed');
      await expect(
        inbox.process('billing', 'm2', async (tx) => {
          await writeEffect(tx, 'm2', 'billing');
          throw failure;
        }),
      ).rejects.toBe(failure);
      expect(await readEffects()).toEqual([]);
      // Not recorded as processed: the redelivery runs.
      expect(
        await inbox.process('billing', 'm2', (tx) => writeEffect(tx, 'm2', 'billing')),
      ).toEqual({
        duplicate: false,
      });
      expect(await readEffects()).toEqual([{ message_id: 'm2', grp: 'billing' }]);
    });

    it('runs the work of concurrent deliveries of one message exactly once', async () => {
      const { inbox, writeEffect, readEffects } = await open();
      const results = await Promise.all(
        Array.from({ length: 5 }, () =>
          inbox.process('billing', 'm3', async (tx) => {
            await delay(20);
            await writeEffect(tx, 'm3', 'billing');
          }),
        ),
      );
      expect(results.filter((result) => !result.duplicate)).toHaveLength(1);
      expect(await readEffects()).toEqual([{ message_id: 'm3', grp: 'billing' }]);
    });

    it('tells apart ids and groups that differ only in case, accents or trailing spaces', async () => {
      const { inbox, writeEffect, readEffects } = await open();
      const pairs: Array<[string, string]> = [
        ['billing', 'm-a'],
        ['billing', 'M-A'],
        ['billing', 'm-\u00e1'],
        ['billing', 'm-a '],
        ['Billing', 'm-a'],
        ['billing ', 'm-a'],
      ];
      for (const [group, id] of pairs) {
        expect(await inbox.process(group, id, (tx) => writeEffect(tx, id, group))).toEqual({
          duplicate: false,
        });
      }
      for (const [group, id] of pairs) {
        expect(await inbox.process(group, id, (tx) => writeEffect(tx, id, group))).toEqual({
          duplicate: true,
        });
      }
      const effects = (await readEffects()).map((e) => `${e.grp}|${e.message_id}`).sort();
      expect(effects).toEqual(pairs.map(([group, id]) => `${group}|${id}`).sort());
    });

    it('purges old rows, at most the limit at a time', async () => {
      const { inbox, writeEffect } = await open();
      for (const id of ['p1', 'p2', 'p3'])
        await inbox.process('billing', id, (tx) => writeEffect(tx, id, 'billing'));
      expect(await inbox.purge(new Date(Date.now() + 60_000), 2)).toBe(2);
      expect(await inbox.purge(new Date(Date.now() + 60_000), 2)).toBe(1);
      expect(await inbox.purge(new Date(Date.now() + 60_000), 2)).toBe(0);
      // Purged ids are forgotten: a late redelivery runs again (purge only what is old).
      expect(await inbox.process('billing', 'p1', async () => {})).toEqual({ duplicate: false });
    });
  });
}
