// The typed bus (publishMany / subscribe with a group, schema-less topic) against the raw
// client doing the same work and carrying the same three headers (ferry-id,
// ferry-created-at, content-type), on the embedded SQLite log; the bus once with the audit
// trail off and once at info, written to /dev/null. Kafka and Redis Streams: kafka.ts, redis.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createBus, defineTopic, HEADER, type Bus, type Logger } from '../src/index.js';
import { sqlite } from '../src/sqlite.js';
import {
  BATCH,
  chunks,
  counter,
  orders,
  pair,
  partitionFor,
  rawMessage,
  READ,
  silent,
  size,
  type Order,
  type Side,
} from './common.js';
import type { BenchGroup } from './harness.js';

const PARTITIONS = 8;

export function busGroups(): BenchGroup[] {
  const messages = size('BENCH_SQLITE_MESSAGES', 10_000);
  const items = orders(messages);
  let dir = '';
  let file = 0;
  const path = (): string => join(dir, `${file++}.db`);
  const schema = `create table log (partition integer, offset integer, key text, headers text, body blob, created_at integer, primary key (partition, offset)) without rowid;
    create table offsets (grp text, partition integer, next_offset integer, primary key (grp, partition))`;

  let db: Database.Database | undefined;
  const rawAppend = (target: Database.Database): void => {
    const insert = target.prepare('insert into log values (?, ?, ?, ?, ?, ?)');
    const next = new Array<number>(PARTITIONS).fill(0);
    const append = target.transaction((batch: typeof items) => {
      for (const item of batch) {
        const message = rawMessage(item);
        const partition = partitionFor(item.key, PARTITIONS);
        insert.run(
          partition,
          next[partition]!++,
          item.key,
          JSON.stringify(message.headers),
          message.body,
          Date.now(),
        );
      }
    });
    for (const batch of chunks(items, BATCH)) append.immediate(batch);
  };
  const open = (): Database.Database => {
    const opened = new Database(path());
    opened.pragma('journal_mode = WAL');
    opened.pragma('synchronous = NORMAL');
    opened.exec(schema);
    return opened;
  };
  const closeRaw = async (): Promise<void> => {
    db?.close();
    db = undefined;
  };

  let bus: Bus | undefined;
  const topic = defineTopic<Order>('orders');
  const openBus = async (logger: () => Logger, audit: boolean): Promise<Bus> =>
    (bus = createBus({
      transport: sqlite({ path: path(), partitions: PARTITIONS }),
      logger: logger(),
      audit,
    }));
  const closeBus = async (): Promise<void> => {
    await bus?.close();
    bus = undefined;
  };

  const publish: Side = {
    raw: {
      name: 'raw better-sqlite3: same rows, transactions of 500',
      setup: async () => void (db = open()),
      round: async () => {
        if (db) rawAppend(db);
        return messages;
      },
      teardown: closeRaw,
    },
    bus: (label, logger, audit) => ({
      name: `ferry bus publishMany, ${label}`,
      setup: async () => void (await openBus(logger, audit)),
      round: async () => {
        for (const batch of chunks(items, BATCH)) await bus?.publishMany(topic, batch);
        return messages;
      },
      teardown: closeBus,
    }),
  };
  const consume: Side = {
    raw: {
      name: 'raw better-sqlite3: reads of 100, one offset commit per read',
      setup: async () => {
        db = open();
        rawAppend(db);
      },
      round: async () => {
        const target = db as Database.Database;
        const read = target.prepare<
          [number, number],
          { offset: number; key: string; body: Buffer; headers: string }
        >(
          'select offset, key, body, headers from log where partition = ? and offset >= ? order by offset limit 100',
        );
        const commit = target.prepare(
          "insert into offsets values ('g', ?, ?) on conflict (grp, partition) do update set next_offset = excluded.next_offset",
        );
        const seen = counter(messages);
        for (let partition = 0; partition < PARTITIONS; partition++) {
          let offset = 0;
          for (;;) {
            const rows = read.all(partition, offset);
            if (rows.length === 0) break;
            for (const row of rows) {
              const headers = JSON.parse(row.headers) as Record<string, string>;
              if (headers[HEADER.id] === undefined) throw new Error('no id');
              JSON.parse(row.body.toString());
              offset = row.offset + 1;
              seen.seen();
            }
            target.transaction(() => commit.run(partition, offset)).immediate();
          }
        }
        return seen.done;
      },
      teardown: closeRaw,
    },
    bus: (label, logger, audit) => ({
      name: `ferry bus subscribe (group), ${label}`,
      setup: async () => {
        const opened = await openBus(logger, audit);
        const filler = createBus({ transport: opened.transport, logger: silent() });
        for (const batch of chunks(items, BATCH)) await filler.publishMany(topic, batch);
      },
      round: async () => {
        const seen = counter(messages);
        const subscription = await bus?.subscribe(
          topic,
          { group: 'g', from: 'earliest' },
          async () => seen.seen(),
        );
        const result = await seen.done;
        await subscription?.close();
        return result;
      },
      teardown: closeBus,
    }),
  };
  return pair(
    `SQLite (${messages.toLocaleString('en')} messages)`,
    `${PARTITIONS} partitions; appends in transactions of ${BATCH}; consumers read ${READ} at a time and commit the group offset once per read, timed from the first message to the last. Both sides encode/parse JSON bodies and carry the same three headers.`,
    undefined,
    publish,
    consume,
    {
      setup: async () => void (dir ||= mkdtempSync(join(tmpdir(), 'ferry-bench-bus-'))),
      teardown: async () => {
        if (dir) rmSync(dir, { recursive: true, force: true });
        dir = '';
      },
    },
  );
}
