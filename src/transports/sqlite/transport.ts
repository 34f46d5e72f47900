import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { loadDriver } from '../../core/driver.js';
import { FerryError } from '../../core/errors.js';
import type { Delivery, Headers, OutgoingMessage } from '../../core/message.js';
import type {
  CloseOptions,
  DeliveryHandler,
  PartitionLag,
  SeekTarget,
  SubscribeOptions,
  Subscription,
  Transport,
} from '../../transport/transport.js';
import { PartitionPump } from '../../transport/partition-pump.js';
import { sqliteFilePath } from './path.js';
import { assertPartitions, checkSize, partitionOf, Subscriptions } from '../../transport/shared.js';
import { capabilitiesOf } from '../../transport/descriptor.js';
import { sqliteDescriptor } from './descriptor.js';

type Database = BetterSqlite3.Database;

export interface SqliteTransportOptions {
  /** Database file; created if missing. Default `./ferry.db`. */
  readonly path?: string;
  /** Partitions of topics this transport creates (existing topics keep theirs). Default 8. */
  readonly partitions?: number;
  /** A member that has not renewed its partition leases for this long is presumed dead. Default 10 s. */
  readonly sessionTimeoutMs?: number;
  /** How often to look for messages written by other processes. Default 20 ms. */
  readonly pollIntervalMs?: number;
  /** Delete messages older than this (checked every minute). Default: keep everything. */
  readonly retentionMs?: number;
  readonly maxMessageBytes?: number;
  /** Most partitions handled at once per subscription. Default: all. */
  readonly concurrency?: number;
  /** Told about failures it recovers from: handlers that rejected, reads and commits that failed. */
  readonly onError?: (error: unknown) => void;
}

const SCHEMA = `
  create table if not exists ferry_topics (
    topic text primary key,
    partitions integer not null
  );
  create table if not exists ferry_partitions (
    topic text not null,
    partition integer not null,
    next_offset integer not null,
    primary key (topic, partition)
  ) without rowid;
  create table if not exists ferry_messages (
    topic text not null,
    partition integer not null,
    offset integer not null,
    key text,
    headers text not null,
    body blob not null,
    created_at integer not null,
    primary key (topic, partition, offset)
  ) without rowid;
  create index if not exists ferry_messages_time on ferry_messages (topic, partition, created_at);
  create table if not exists ferry_group_offsets (
    grp text not null,
    topic text not null,
    partition integer not null,
    next_offset integer not null,
    primary key (grp, topic, partition)
  ) without rowid;
  create table if not exists ferry_group_members (
    grp text not null,
    topic text not null,
    member text not null,
    expires_at integer not null,
    primary key (grp, topic, member)
  ) without rowid;
  create table if not exists ferry_group_leases (
    grp text not null,
    topic text not null,
    partition integer not null,
    member text not null,
    expires_at integer not null,
    primary key (grp, topic, partition)
  ) without rowid;
`;

interface MessageRow {
  partition: number;
  offset: number;
  key: string | null;
  headers: string;
  body: Buffer;
  created_at: number;
}

/** Pumps of every open subscription in this process, per database file and topic. */
const localPumps = new Map<string, Set<PartitionPump>>();

/**
 * The embedded durable log: a SQLite file (WAL) that several processes can share, one
 * publishing and others consuming. Topics have P partitions (by key); consumer groups keep
 * committed offsets in the file and share partitions through leases that expire when a
 * member dies; replay by offset or time. Delivery is at-least-once: a group's offset moves
 * past a message only after its handler resolved.
 */
export async function sqlite(options: SqliteTransportOptions = {}): Promise<Transport> {
  const { default: Sqlite } = await loadDriver('better-sqlite3', () => import('better-sqlite3'));
  const path = options.path === ':memory:' ? ':memory:' : resolve(options.path ?? 'ferry.db');
  const defaultPartitions = options.partitions ?? 8;
  assertPartitions(defaultPartitions);
  const sessionTimeoutMs = options.sessionTimeoutMs ?? 10_000;
  const pollIntervalMs = options.pollIntervalMs ?? 20;

  let db: Database;
  try {
    db = new Sqlite(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 10000');
    db.exec(SCHEMA);
  } catch (cause) {
    throw new FerryError('CONNECTION_FAILED', `Cannot open SQLite log at ${path}`, { cause });
  }
  return createSqliteTransport(db, path, {
    defaultPartitions,
    sessionTimeoutMs,
    pollIntervalMs,
    retentionMs: options.retentionMs,
    maxMessageBytes: options.maxMessageBytes ?? sqliteDescriptor.capabilities.maxMessageBytes,
    concurrency: options.concurrency,
    onError: options.onError,
  });
}

interface Settings {
  defaultPartitions: number;
  sessionTimeoutMs: number;
  pollIntervalMs: number;
  retentionMs: number | undefined;
  maxMessageBytes: number;
  concurrency: number | undefined;
  onError: ((error: unknown) => void) | undefined;
}

function createSqliteTransport(db: Database, path: string, settings: Settings): Transport {
  const capabilities = capabilitiesOf(sqliteDescriptor, settings.maxMessageBytes);
  const sql = {
    topic: db.prepare<[string], { partitions: number }>(
      'select partitions from ferry_topics where topic = ?',
    ),
    createTopic: db.prepare('insert or ignore into ferry_topics (topic, partitions) values (?, ?)'),
    createPartition: db.prepare(
      'insert or ignore into ferry_partitions (topic, partition, next_offset) values (?, ?, 0)',
    ),
    setEnd: db.prepare(
      'update ferry_partitions set next_offset = ? where topic = ? and partition = ?',
    ),
    insert: db.prepare(
      'insert into ferry_messages (topic, partition, offset, key, headers, body, created_at) values (?, ?, ?, ?, ?, ?, ?)',
    ),
    read: db.prepare<[string, number, number, number], MessageRow>(
      'select partition, offset, key, headers, body, created_at from ferry_messages where topic = ? and partition = ? and offset >= ? order by offset limit ?',
    ),
    end: db.prepare<[string, number], { next_offset: number }>(
      'select next_offset from ferry_partitions where topic = ? and partition = ?',
    ),
    first: db.prepare<[string, number], { offset: number | null }>(
      'select min(offset) as offset from ferry_messages where topic = ? and partition = ?',
    ),
    firstSince: db.prepare<[string, number, number], { offset: number | null }>(
      'select min(offset) as offset from ferry_messages where topic = ? and partition = ? and created_at >= ?',
    ),
    committed: db.prepare<[string, string, number], { next_offset: number }>(
      'select next_offset from ferry_group_offsets where grp = ? and topic = ? and partition = ?',
    ),
    commit: db.prepare(
      `insert into ferry_group_offsets (grp, topic, partition, next_offset) values (?, ?, ?, ?)
       on conflict (grp, topic, partition) do update set next_offset = excluded.next_offset`,
    ),
    holds: db.prepare<[string, string, number, string], { member: string }>(
      'select member from ferry_group_leases where grp = ? and topic = ? and partition = ? and member = ?',
    ),
    upsertMember: db.prepare(
      `insert into ferry_group_members (grp, topic, member, expires_at) values (?, ?, ?, ?)
       on conflict (grp, topic, member) do update set expires_at = excluded.expires_at`,
    ),
    expireMembers: db.prepare(
      'delete from ferry_group_members where grp = ? and topic = ? and expires_at < ?',
    ),
    expireLeases: db.prepare(
      'delete from ferry_group_leases where grp = ? and topic = ? and expires_at < ?',
    ),
    liveMembers: db.prepare<[string, string], { n: number }>(
      'select count(*) as n from ferry_group_members where grp = ? and topic = ?',
    ),
    myLeases: db.prepare<[string, string, string], { partition: number }>(
      'select partition from ferry_group_leases where grp = ? and topic = ? and member = ? order by partition',
    ),
    takenLeases: db.prepare<[string, string], { partition: number }>(
      'select partition from ferry_group_leases where grp = ? and topic = ?',
    ),
    renew: db.prepare(
      'update ferry_group_leases set expires_at = ? where grp = ? and topic = ? and member = ?',
    ),
    take: db.prepare(
      'insert into ferry_group_leases (grp, topic, partition, member, expires_at) values (?, ?, ?, ?, ?)',
    ),
    give: db.prepare(
      'delete from ferry_group_leases where grp = ? and topic = ? and partition = ? and member = ?',
    ),
    leave: db.prepare('delete from ferry_group_members where grp = ? and topic = ? and member = ?'),
    purge: db.prepare('delete from ferry_messages where created_at < ?'),
  };

  const partitionCounts = new Map<string, number>();
  const partitionsOf = (topic: string): number => {
    let count = partitionCounts.get(topic);
    if (count === undefined) {
      count = sql.topic.get(topic)?.partitions;
      if (count === undefined) {
        db.transaction(() => {
          sql.createTopic.run(topic, settings.defaultPartitions);
          count = sql.topic.get(topic)?.partitions ?? settings.defaultPartitions;
          for (let p = 0; p < count; p++) sql.createPartition.run(topic, p);
        }).immediate();
      }
      count ??= settings.defaultPartitions;
      partitionCounts.set(topic, count);
    }
    return count;
  };
  const endOf = (topic: string, partition: number): number =>
    sql.end.get(topic, partition)?.next_offset ?? 0;
  const firstOf = (topic: string, partition: number): number =>
    sql.first.get(topic, partition)?.offset ?? endOf(topic, partition);

  // One read and one write of each partition's end per batch, not an UPDATE per message:
  // the immediate transaction holds the write lock, so nobody else appends in between.
  const publishAll = db.transaction((messages: readonly OutgoingMessage[]) => {
    const now = Date.now();
    const ends = new Map<string, Array<number | undefined>>();
    for (const message of messages) {
      const { topic } = message;
      const partition = partitionOf(message, partitionsOf(topic));
      let topicEnds = ends.get(topic);
      if (!topicEnds) ends.set(topic, (topicEnds = []));
      const offset = topicEnds[partition] ?? sql.end.get(topic, partition)?.next_offset;
      if (offset === undefined)
        throw new FerryError('PUBLISH_FAILED', `Partition ${partition} of ${topic} is missing`);
      sql.insert.run(
        topic,
        partition,
        offset,
        message.key ?? null,
        JSON.stringify(message.headers),
        message.body,
        now,
      );
      topicEnds[partition] = offset + 1;
    }
    for (const [topic, topicEnds] of ends) {
      for (const [partition, end] of topicEnds.entries()) {
        if (end !== undefined) sql.setEnd.run(end, topic, partition);
      }
    }
  });

  // A row written by another program may hold headers that are not a JSON object of
  // strings: it is delivered with what can be read, and the defect, to be dead-lettered.
  const toDelivery = (topic: string, row: MessageRow): Delivery => {
    const delivery = {
      topic,
      key: row.key ?? undefined,
      body: row.body,
      partition: row.partition,
      offset: String(row.offset),
      brokerTime: new Date(row.created_at),
    };
    const headers = readHeaders(row.headers);
    return typeof headers === 'string'
      ? { ...delivery, headers: {}, defect: headers }
      : { ...delivery, headers };
  };

  const wakeLocal = (topic: string): void => {
    for (const pump of localPumps.get(`${path}\u0000${topic}`) ?? []) pump.wake();
  };

  // Another process's commit changes PRAGMA data_version: a cheap way to notice its writes.
  let dataVersion = db.pragma('data_version', { simple: true }) as number;
  const watchedTopics = new Map<string, number>();
  const poller = setInterval(() => {
    if (watchedTopics.size === 0) return;
    const version = db.pragma('data_version', { simple: true }) as number;
    if (version !== dataVersion) {
      dataVersion = version;
      for (const topic of watchedTopics.keys()) wakeLocal(topic);
    }
  }, settings.pollIntervalMs);
  poller.unref();

  const retention =
    settings.retentionMs === undefined
      ? undefined
      : setInterval(() => {
          sql.purge.run(Date.now() - (settings.retentionMs ?? 0));
        }, 60_000);
  retention?.unref();

  const subscriptions = new Subscriptions();
  let closed = false;
  const assertOpen = (): void => {
    if (closed) throw new FerryError('CLOSED', 'sqlite transport is closed');
  };

  async function subscribe(
    options: SubscribeOptions,
    handler: DeliveryHandler,
  ): Promise<Subscription> {
    assertOpen();
    const { topic, group } = options;
    const partitions = partitionsOf(topic);
    const from = options.from ?? (group === undefined ? 'latest' : 'earliest');
    const member = randomUUID();
    const privatePositions = new Map<number, number>();
    const startOf = (partition: number): number =>
      from === 'earliest' ? firstOf(topic, partition) : endOf(topic, partition);

    const pump = new PartitionPump(
      {
        position: (partition) => {
          if (group === undefined) return privatePositions.get(partition) ?? startOf(partition);
          return sql.committed.get(group, topic, partition)?.next_offset ?? startOf(partition);
        },
        read: (partition, offset, limit) =>
          sql.read.all(topic, partition, offset, limit).map((row) => toDelivery(topic, row)),
        commit: (partition, next) => {
          if (group === undefined) {
            privatePositions.set(partition, next);
            return;
          }
          db.transaction(() => {
            if (!sql.holds.get(group, topic, partition, member)) {
              throw new FerryError(
                'LEASE_LOST',
                `Partition ${partition} of ${topic} moved to another member`,
              );
            }
            sql.commit.run(group, topic, partition, next);
          }).immediate();
        },
      },
      handler,
      {
        concurrency: options.concurrency ?? settings.concurrency ?? partitions,
        idleWaitMs: 1000,
        redeliveryDelayMs: 50,
        ...(settings.onError === undefined ? {} : { onError: settings.onError }),
      },
    );
    const pumpKey = `${path}\u0000${topic}`;
    let pumps = localPumps.get(pumpKey);
    if (!pumps) localPumps.set(pumpKey, (pumps = new Set()));
    pumps.add(pump);
    watchedTopics.set(topic, (watchedTopics.get(topic) ?? 0) + 1);

    // Group membership: renew our leases, drop the dead, take a fair share, give back extras.
    const balance = async (): Promise<void> => {
      if (group === undefined) return;
      const now = Date.now();
      const expires = now + settings.sessionTimeoutMs;
      const { keep, take } = db
        .transaction(() => {
          sql.upsertMember.run(group, topic, member, expires);
          sql.expireMembers.run(group, topic, now);
          sql.expireLeases.run(group, topic, now);
          sql.renew.run(expires, group, topic, member);
          const live = Math.max(1, sql.liveMembers.get(group, topic)?.n ?? 1);
          const fair = Math.ceil(partitions / live);
          const mine = sql.myLeases.all(group, topic, member).map((row) => row.partition);
          const taken = new Set(sql.takenLeases.all(group, topic).map((row) => row.partition));
          const wanted: number[] = [];
          for (let p = 0; p < partitions && mine.length + wanted.length < fair; p++) {
            if (!taken.has(p)) wanted.push(p);
          }
          for (const p of wanted) sql.take.run(group, topic, p, member, expires);
          return { keep: mine.slice(0, fair), take: wanted };
        })
        .immediate();
      const held = [...keep, ...take];
      // Stop work on extras before letting them go, so no partition is read by two members.
      await pump.assign(held);
      const extras = sql.myLeases
        .all(group, topic, member)
        .filter((row) => !held.includes(row.partition));
      for (const { partition } of extras) sql.give.run(group, topic, partition, member);
    };

    let heartbeat: NodeJS.Timeout | undefined;
    let balancing: Promise<void> = Promise.resolve();
    const rebalance = (): Promise<void> =>
      (balancing = balancing.catch(() => undefined).then(balance));
    if (group === undefined) {
      for (let p = 0; p < partitions; p++) privatePositions.set(p, startOf(p));
      await pump.assign(Array.from({ length: partitions }, (_, p) => p));
    } else {
      await rebalance();
      heartbeat = setInterval(
        () => {
          rebalance().catch(() => undefined);
        },
        Math.max(50, Math.floor(settings.sessionTimeoutMs / 3)),
      );
    }

    return subscriptions.add(async (closeOptions?: CloseOptions) => {
      clearInterval(heartbeat);
      await balancing.catch(() => undefined);
      await pump.close(closeOptions?.timeoutMs ?? 30_000);
      pumps.delete(pump);
      const watchers = (watchedTopics.get(topic) ?? 1) - 1;
      if (watchers === 0) watchedTopics.delete(topic);
      else watchedTopics.set(topic, watchers);
      if (group !== undefined) {
        db.transaction(() => {
          for (const { partition } of sql.myLeases.all(group, topic, member)) {
            sql.give.run(group, topic, partition, member);
          }
          sql.leave.run(group, topic, member);
        }).immediate();
      }
    });
  }

  return {
    name: 'sqlite',
    capabilities,

    async ping() {
      assertOpen();
      db.prepare('select 1').get();
    },

    publish(messages) {
      assertOpen();
      checkSize('sqlite', capabilities, messages);
      try {
        publishAll.immediate(messages);
      } catch (cause) {
        if (cause instanceof FerryError) throw cause;
        throw new FerryError('PUBLISH_FAILED', `Could not append to the SQLite log at ${path}`, {
          cause,
        });
      }
      for (const topic of new Set(messages.map((message) => message.topic))) wakeLocal(topic);
      return Promise.resolve();
    },

    subscribe,

    seek(topic: string, group: string, target: SeekTarget) {
      assertOpen();
      const partitions = partitionsOf(topic);
      db.transaction(() => {
        for (let partition = 0; partition < partitions; partition++) {
          let next: number;
          if ('position' in target) {
            next =
              target.position === 'earliest' ? firstOf(topic, partition) : endOf(topic, partition);
          } else if ('timestamp' in target) {
            next =
              sql.firstSince.get(topic, partition, target.timestamp.getTime())?.offset ??
              endOf(topic, partition);
          } else {
            const offset = target.offsets[partition];
            if (offset === undefined) continue;
            next = Number(offset);
          }
          sql.commit.run(group, topic, partition, next);
        }
      }).immediate();
      return Promise.resolve();
    },

    lag(topic: string, group: string): Promise<PartitionLag[]> {
      const lags: PartitionLag[] = [];
      for (let partition = 0; partition < partitionsOf(topic); partition++) {
        const committed = sql.committed.get(group, topic, partition)?.next_offset;
        const end = endOf(topic, partition);
        lags.push({
          partition,
          committed: committed === undefined ? undefined : String(committed),
          end: String(end),
          lag: end - (committed ?? firstOf(topic, partition)),
        });
      }
      return Promise.resolve(lags);
    },

    async close(closeOptions?: CloseOptions) {
      if (closed) return;
      closed = true;
      await subscriptions.closeAll(closeOptions);
      clearInterval(poller);
      clearInterval(retention);
      db.close();
    },
  };
}

/** `sqlite:./ferry.db`, `sqlite:///abs/path.db`; query `partitions`, `retentionMs`, `sessionTimeoutMs`. */
export function sqliteFromUrl(url: URL): Promise<Transport> {
  const path = sqliteFilePath(url);
  const partitions = url.searchParams.get('partitions');
  const retention = url.searchParams.get('retentionMs');
  const sessionTimeout = url.searchParams.get('sessionTimeoutMs');
  return sqlite({
    path,
    ...(partitions === null ? {} : { partitions: Number(partitions) }),
    ...(retention === null ? {} : { retentionMs: Number(retention) }),
    ...(sessionTimeout === null ? {} : { sessionTimeoutMs: Number(sessionTimeout) }),
  });
}

/** A headers column as headers, or what is wrong with it. */
function readHeaders(text: string): Headers | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return `headers are not JSON (${error instanceof Error ? error.message : String(error)})`;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return 'headers are not a JSON object';
  }
  const headers: Headers = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (typeof value !== 'string') return `header ${name} is not a string`;
    headers[name] = value;
  }
  return headers;
}
