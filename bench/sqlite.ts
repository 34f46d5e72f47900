import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  createBus,
  createLogger,
  defineTopic,
  newMessageId,
  partitionFor,
  type Bus,
} from '../src/index.js';
import { sqlite } from '../src/transports/sqlite.js';
import type { BenchGroup } from './harness.js';

const MESSAGES = 5000;
const BATCH = 500;
const PARTITIONS = 8;

const payloads = Array.from({ length: MESSAGES }, (_, i) => ({
  key: `customer-${i % 100}`,
  payload: { orderId: `o-${i}`, amount: i % 997, currency: 'EUR' },
}));

/** Publish 5,000 messages in batches of 500, then consume them all as one group. */
export function sqliteGroups(): BenchGroup[] {
  // Made when the group runs, not when it is listed (a filtered-out group leaves nothing).
  let dir = '';
  let round = 0;
  let bus: Bus | undefined;

  const raw = {
    name: 'raw better-sqlite3 (same rows, same commits)',
    async round() {
      const db = new Database(join(dir, `raw-${round++}.db`));
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec(`create table log (partition integer, offset integer, key text, headers text, body blob, created_at integer, primary key (partition, offset)) without rowid;
               create table offsets (partition integer primary key, next_offset integer)`);
      const insert = db.prepare('insert into log values (?, ?, ?, ?, ?, ?)');
      const next = new Array<number>(PARTITIONS).fill(0);
      const append = db.transaction((batch: typeof payloads) => {
        for (const item of batch) {
          const id = newMessageId();
          const partition = partitionFor(item.key, PARTITIONS);
          const headers = JSON.stringify({ 'ferry-id': id, 'content-type': 'application/json' });
          insert.run(
            partition,
            next[partition]!++,
            item.key,
            headers,
            Buffer.from(JSON.stringify(item.payload)),
            Date.now(),
          );
        }
      });
      for (let i = 0; i < MESSAGES; i += BATCH) append.immediate(payloads.slice(i, i + BATCH));
      const read = db.prepare<[number, number], { offset: number; body: Buffer; headers: string }>(
        'select offset, body, headers from log where partition = ? and offset >= ? order by offset limit 100',
      );
      const commit = db.prepare(
        'insert into offsets values (?, ?) on conflict (partition) do update set next_offset = excluded.next_offset',
      );
      let consumed = 0;
      for (let partition = 0; partition < PARTITIONS; partition++) {
        let offset = 0;
        for (;;) {
          const rows = read.all(partition, offset);
          if (rows.length === 0) break;
          for (const row of rows) {
            JSON.parse(row.headers);
            JSON.parse(row.body.toString());
            offset = row.offset + 1;
            consumed++;
          }
          db.transaction(() => commit.run(partition, offset)).immediate();
        }
      }
      db.close();
      return consumed + MESSAGES;
    },
  };

  const ferry = {
    name: 'ferry sqlite transport',
    async round() {
      bus = createBus({
        transport: await sqlite({ path: join(dir, `ferry-${round++}.db`), partitions: PARTITIONS }),
        logger: createLogger({ level: 'silent' }),
      });
      const topic = defineTopic<(typeof payloads)[number]['payload']>('orders');
      for (let i = 0; i < MESSAGES; i += BATCH)
        await bus.publishMany(topic, payloads.slice(i, i + BATCH));
      let consumed = 0;
      let done!: () => void;
      const finished = new Promise<void>((resolve) => (done = resolve));
      await bus.subscribe(topic, { group: 'bench' }, async () => {
        if (++consumed === MESSAGES) done();
      });
      await finished;
      await bus.close();
      return consumed + MESSAGES;
    },
  };

  return [
    {
      title: 'SQLite log: publish 5,000 then consume them as a group',
      note: 'Both sides append in transactions of 500 rows and commit the group offset once per read batch of 100; ferry adds encoding, validation hooks, the consumer runtime and the audit log (silent).',
      setup: async () => {
        dir = mkdtempSync(join(tmpdir(), 'ferry-bench-'));
      },
      cases: [raw, ferry],
      teardown: async () => {
        if (dir) rmSync(dir, { recursive: true, force: true });
      },
    },
  ];
}
