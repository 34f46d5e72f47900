import type BetterSqlite3 from 'better-sqlite3';
import { FerryError } from '../../core/errors.js';
import type { Delivery, Headers, OutgoingMessage } from '../../core/message.js';
import { partitionOf } from '../../transport/shared.js';
import type { PartitionLag, SeekTarget } from '../../transport/transport.js';

export type Database = BetterSqlite3.Database;

export const SCHEMA = `
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

export interface MessageRow {
  partition: number;
  offset: number;
  key: string | null;
  headers: string;
  body: Buffer;
  created_at: number;
}

/** The prepared statements of the log. */
function statements(db: Database) {
  return {
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
}

/**
 * The log in one SQLite file: topics of partitions, appends, reads, group offsets and
 * leases, in SQL; what a message looks like in a row and back.
 */
export interface SqliteLog {
  /** Partitions of `topic`, creating the topic with the default count on first use. */
  readonly partitionsOf: (topic: string) => number;
  /** The offset the next message of a partition gets. */
  readonly endOf: (topic: string, partition: number) => number;
  /** The oldest offset kept in a partition (its end when empty). */
  readonly firstOf: (topic: string, partition: number) => number;
  /** Appends a batch in one immediate transaction. */
  append(messages: readonly OutgoingMessage[]): void;
  /** Up to `limit` messages of a partition from `offset`, in offset order. */
  read(topic: string, partition: number, offset: number, limit: number): Delivery[];
  /** The group's stored position in a partition, if any. */
  committed(group: string, topic: string, partition: number): number | undefined;
  /** Stores a group's position, for a member that holds the lease (else `LEASE_LOST`). */
  commitHeld(group: string, topic: string, member: string, partition: number, next: number): void;
  /**
   * One heartbeat of a member: renews its membership and leases, drops the dead, and takes
   * free partitions up to a fair share. Returns the leases to keep and those just taken.
   */
  renewLeases(
    group: string,
    topic: string,
    member: string,
    sessionTimeoutMs: number,
  ): { keep: number[]; take: number[] };
  /** Gives back the member's leases other than `held`. */
  giveBack(group: string, topic: string, member: string, held: readonly number[]): void;
  /** Gives back every lease of the member and ends its membership. */
  leave(group: string, topic: string, member: string): void;
  /** Moves a group's positions (see `Transport.seek`). */
  seek(topic: string, group: string, target: SeekTarget): void;
  lag(topic: string, group: string): PartitionLag[];
  ping(): void;
  close(): void;
}

export function sqliteLog(db: Database, defaultPartitions: number): SqliteLog {
  const sql = statements(db);
  const settings = { defaultPartitions };
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
  // One object per row, of one shape: no spread copy on the read path.
  const toDelivery = (topic: string, row: MessageRow): Delivery => {
    const headers = readHeaders(row.headers);
    const delivery: Delivery = {
      topic,
      key: row.key ?? undefined,
      headers: typeof headers === 'string' ? {} : headers,
      body: row.body,
      partition: row.partition,
      offset: String(row.offset),
      brokerTime: new Date(row.created_at),
    };
    if (typeof headers === 'string') return { ...delivery, defect: headers };
    return delivery;
  };

  return {
    partitionsOf,
    endOf,
    firstOf,
    append: (messages) => publishAll.immediate(messages),
    read: (topic, partition, offset, limit) =>
      sql.read.all(topic, partition, offset, limit).map((row) => toDelivery(topic, row)),
    committed: (group, topic, partition) => sql.committed.get(group, topic, partition)?.next_offset,
    commitHeld(group, topic, member, partition, next) {
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
    renewLeases(group, topic, member, sessionTimeoutMs) {
      const partitions = partitionsOf(topic);
      const now = Date.now();
      const expires = now + sessionTimeoutMs;
      return db
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
    },
    giveBack(group, topic, member, held) {
      for (const { partition } of sql.myLeases.all(group, topic, member)) {
        if (!held.includes(partition)) sql.give.run(group, topic, partition, member);
      }
    },
    leave(group, topic, member) {
      db.transaction(() => {
        for (const { partition } of sql.myLeases.all(group, topic, member)) {
          sql.give.run(group, topic, partition, member);
        }
        sql.leave.run(group, topic, member);
      }).immediate();
    },
    seek(topic, group, target) {
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
    },
    lag(topic, group) {
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
      return lags;
    },
    ping: () => void db.prepare('select 1').get(),
    close: () => db.close(),
  };
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
  // JSON.parse made a fresh plain object: check its values in place instead of copying it.
  const headers = parsed as { [name: string]: unknown };
  for (const name in headers) {
    if (typeof headers[name] !== 'string') return `header ${name} is not a string`;
  }
  return headers as Headers;
}
