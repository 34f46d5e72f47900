import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Delivery } from '../../src/core/message.js';
import { sqlite } from '../../src/sqlite.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('SQLite log rows written by other programs', () => {
  it('delivers rows whose headers are not a JSON object of strings with the defect named', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-sqlite-headers-'));
    dirs.push(dir);
    const path = join(dir, 'log.db');
    const topic = 'headers-defects';
    const transport = sqlite({ path, partitions: 1 });
    await transport.publish([
      { topic, key: undefined, headers: { 'ferry-id': 'good', x: 'y' }, body: Buffer.from('0') },
    ]);
    const db = new Database(path);
    const insert = db.prepare(
      'insert into ferry_messages (topic, partition, offset, key, headers, body, created_at) values (?, 0, ?, null, ?, ?, ?)',
    );
    const rows = ['{"a":1}', '[1]', 'nope'];
    rows.forEach((headers, index) =>
      insert.run(topic, index + 1, headers, Buffer.from(`${index + 1}`), Date.now()),
    );
    db.prepare('update ferry_partitions set next_offset = ? where topic = ? and partition = 0').run(
      rows.length + 1,
      topic,
    );
    db.close();

    const seen: Delivery[] = [];
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    const subscription = await transport.subscribe(
      { topic, from: 'earliest' },
      async (delivery) => {
        seen.push(delivery);
        if (seen.length === rows.length + 1) done();
      },
    );
    await all;
    await subscription.close();
    await transport.close();

    expect(seen.map((d) => d.body.toString())).toEqual(['0', '1', '2', '3']);
    expect(seen[0]).toMatchObject({ headers: { 'ferry-id': 'good', x: 'y' } });
    expect(seen[0]?.defect).toBeUndefined();
    expect(seen[1]).toMatchObject({ headers: {}, defect: 'header a is not a string' });
    expect(seen[2]).toMatchObject({ headers: {}, defect: 'headers are not a JSON object' });
    expect(seen[3]?.defect).toMatch(/^headers are not JSON/);
  });
});
