import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { exited, ready, runFixture } from '../helpers/child.js';
import { waitFor } from '../helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-processes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sqlite transport across processes', () => {
  it('loses nothing when the consumer process is SIGKILLed mid-stream and restarted', async () => {
    const log = join(dir, 'log.db');
    const handledPath = join(dir, 'handled.db');
    const count = 2000;
    const consumer = runFixture('sqlite-consumer.ts', [log, 'orders', handledPath]);
    await ready(consumer);
    const publisher = runFixture('sqlite-publisher.ts', [log, 'orders', String(count)]);

    const handled = new Database(handledPath, { readonly: true });
    handled.pragma('busy_timeout = 10000');
    const distinct = (): number =>
      (handled.prepare('select count(distinct seq) as n from handled').get() as { n: number }).n;

    await waitFor('the consumer to be mid-stream', () => distinct() >= 300, 30_000);
    consumer.kill('SIGKILL');
    await exited(consumer);
    const handledBeforeKill = distinct();
    expect(handledBeforeKill).toBeLessThan(count);

    const restarted = runFixture('sqlite-consumer.ts', [log, 'orders', handledPath]);
    await ready(restarted);
    expect(await exited(publisher)).toBe(0);
    await waitFor('every message to be handled', () => distinct() === count, 45_000);

    const rows = handled.prepare('select seq, count(*) as n from handled group by seq').all() as {
      seq: number;
      n: number;
    }[];
    expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: count }, (_, i) => i));
    restarted.kill('SIGTERM');
    expect(await exited(restarted)).toBe(0);
    handled.close();
  });
});
