import { FerryError } from '../../core/errors.js';
import { partitionFor } from '../../core/message.js';
import type { NewOutboxRecord, OutboxRecord, OutboxStore, PartitionStatus } from '../store.js';
import {
  runStatement,
  toLeases,
  type InsertRow,
  type Row,
  type SqlDialect,
  type SqlSession,
} from './dialect.js';
import {
  FORGET_RELAYS_AFTER_MS,
  MAX_ERROR_TEXT,
  checkLimit,
  checkMs,
  guarded,
  parseHeaders,
  toBigInt,
} from './shared.js';

/** The outbox store over a dialect, with what SQLite's synchronous enqueue needs. */
export interface SqlOutboxStore<Tx> extends OutboxStore<Tx> {
  /** The outbox table as configured. */
  readonly table: string;
  /**
   * The rows to insert, each with its partition (hash(key ?? id) mod P unless given), once
   * P is known; throws `STORE_FAILED` before the first migration reached this store.
   */
  rows(records: readonly NewOutboxRecord[]): InsertRow[];
  /** Whether P was read from the database yet. */
  readonly knowsPartitions: boolean;
  /** Records P read from the database by a caller that holds its own connection. */
  learnPartitions(stored: number): void;
}

const isTrue = (value: unknown): boolean =>
  value === true || value === 1 || value === '1' || value === 1n;

/** The least and greatest of `seqs`; 1 to 0 (an empty range) when there are none. */
function seqRange(seqs: readonly bigint[] | undefined): [bigint, bigint] {
  if (seqs === undefined || seqs.length === 0) return [1n, 0n];
  let from = seqs[0] as bigint;
  let to = from;
  for (const seq of seqs) {
    if (seq < from) from = seq;
    if (seq > to) to = seq;
  }
  return [from, to];
}

/**
 * One {@link OutboxStore} over any SQL dialect: the dialect brings its statements and how
 * its connection runs them; this checks arguments, reads P once, decodes rows, applies the
 * schema versions in order and turns database errors into FerryErrors (`STORE_FAILED`, or
 * `CONNECTION_FAILED` when the link broke).
 */
export function createSqlOutboxStore<Tx>(
  dialect: SqlDialect<Tx>,
  configured: number,
): SqlOutboxStore<Tx> {
  const { name, table, statements: sql } = dialect;
  /** P as the database has it, once read (fixed from the first migration on). */
  let partitions: number | undefined;
  let closed = false;

  const countLeases = async (db: SqlSession): Promise<number> =>
    Number((await db.query(sql.countLeases)).rows[0]?.n ?? 0);

  const notMigrated = (): FerryError =>
    new FerryError('STORE_FAILED', `The outbox ${table} is not migrated: run migrate`);

  const known = async (db: SqlSession): Promise<void> => {
    if (partitions !== undefined) return;
    const stored = await countLeases(db);
    if (stored === 0) throw notMigrated();
    partitions = stored;
  };

  type Runner = <T>(work: (db: SqlSession) => Promise<T>) => Promise<T>;
  const via =
    (runner: Runner) =>
    <X>(operation: string, work: (db: SqlSession) => Promise<X>): Promise<X> => {
      if (closed) {
        return Promise.reject(new FerryError('CLOSED', `The ${name} outbox store is closed`));
      }
      return guarded(name, operation, () =>
        runner(async (db) => {
          await known(db);
          return work(db);
        }),
      );
    };
  const run = via((work) => dialect.use(work));
  const atomic = via((work) => dialect.atomic(work));

  const toRecord = (row: Row): OutboxRecord => ({
    id: String(row.id),
    seq: toBigInt(row.seq_text),
    topic: String(row.topic),
    key: (row.key as string | null) ?? undefined,
    partition: Number(row.partition),
    body: row.payload as Buffer,
    headers: parseHeaders(row.headers),
    createdAt: dialect.toDate(row.created_at),
    attempts: Number(row.attempts),
    availableAt: dialect.toDate(row.available_at),
  });

  const toStatus = (row: Row): PartitionStatus => {
    const held = row.owner !== null && row.owner !== undefined;
    return {
      partition: Number(row.partition),
      pending: Number(row.pending),
      dead: Number(row.dead),
      blocked: Number(row.blocked),
      blockedKeys: Number(row.keys),
      oldestPendingMs:
        row.oldest_ms === null || row.oldest_ms === undefined
          ? undefined
          : Math.max(0, Number(row.oldest_ms)),
      owner: held ? String(row.owner) : undefined,
      fence: held ? toBigInt(row.fence) : undefined,
      leaseExpiresAt: held ? dialect.toDate(row.expires_at) : undefined,
    };
  };

  const guard = (owner: string, lease: { partition: number; fence: bigint }) => ({
    partition: lease.partition,
    owner,
    fence: lease.fence.toString(),
    now: Date.now(),
  });

  const store: SqlOutboxStore<Tx> = {
    dialect: name,
    table,
    get partitions() {
      return partitions ?? configured;
    },

    get knowsPartitions() {
      return partitions !== undefined;
    },

    learnPartitions: (stored) => {
      partitions ??= stored;
    },

    rows: (records) => {
      const p = partitions;
      if (p === undefined) throw notMigrated();
      return records.map((r) => ({
        id: r.id,
        topic: r.topic,
        key: r.key ?? null,
        partition: r.partition ?? partitionFor(r.key ?? r.id, p),
        body: r.body,
        headers: JSON.stringify(r.headers),
        createdAt: r.createdAt,
      }));
    },

    migrate: () => {
      if (closed) {
        return Promise.reject(new FerryError('CLOSED', `The ${name} outbox store is closed`));
      }
      return guarded(name, `migrate ${table}`, () =>
        dialect.exclusive(`migrate.${table}`, async (db) => {
          await db.query(sql.createSchemaTable);
          // Tables of 0.1.0 have no versions recorded: their first version's tables exist
          // already, and each later version upgrades them in place.
          const applied = Number((await db.query(sql.appliedVersion)).rows[0]?.v ?? 0);
          for (const migration of sql.migrations) {
            if (migration.version <= applied) continue;
            if (typeof migration.up === 'function') await migration.up(db);
            else for (const statement of migration.up) await db.query(statement);
            await db.query(sql.recordVersion, { version: migration.version, now: Date.now() });
          }
          // One lease row per partition: their count is P, fixed from the first migration on.
          if ((await countLeases(db)) === 0) {
            await runStatement(db, sql.seedLeases, { partitions: configured });
          }
          partitions = await countLeases(db);
        }),
      );
    },

    insert: async (tx, records) => {
      if (records.length === 0) return;
      if (partitions === undefined) await run('insert', async () => undefined);
      const rows = store.rows(records);
      await guarded(name, 'insert', () => dialect.insert(tx, rows));
    },

    heartbeat: (owner, ttlMs) => {
      const params = {
        owner,
        ttlMs: checkMs(ttlMs, 'ttlMs'),
        forgetMs: FORGET_RELAYS_AFTER_MS,
        now: Date.now(),
      };
      // Its statements need no atomicity, and MySQL must not read the renewed leases from
      // a transaction's older snapshot.
      return run('heartbeat', async (db) =>
        toLeases((await runStatement(db, sql.heartbeat, params)).rows),
      );
    },

    register: (owner, ttlMs, destination) => {
      const params = { owner, ttlMs: checkMs(ttlMs, 'ttlMs'), destination, now: Date.now() };
      if (closed) {
        return Promise.reject(new FerryError('CLOSED', `The ${name} outbox store is closed`));
      }
      // Registrations of one table one at a time: two relays starting at once with
      // different transports cannot both get in.
      return guarded(name, 'register', () =>
        dialect.exclusive(`register.${table}`, async (db) => {
          await known(db);
          const other = (await db.query(sql.otherDestination, params)).rows[0];
          if (other) return String(other.destination);
          await db.query(sql.register, params);
          return undefined;
        }),
      );
    },

    liveRelays: () =>
      run('liveRelays', async (db) =>
        Number((await db.query(sql.liveRelays, { now: Date.now() })).rows[0]?.n ?? 0),
      ),

    acquire: (owner, max, ttlMs) => {
      const params = { owner, max: checkLimit(max, 'max'), ttlMs: checkMs(ttlMs, 'ttlMs') };
      return atomic('acquire', async (db) => {
        if (params.max === 0) return [];
        return toLeases((await runStatement(db, sql.acquire, { ...params, now: Date.now() })).rows);
      });
    },

    release: (owner, released, deregister = false) =>
      atomic('release', async (db) => {
        await runStatement(db, sql.release, {
          owner,
          partitions: dialect.list(released),
          count: released.length,
          deregister,
        });
      }),

    readPending: (partition, limit, exclude = []) => {
      const checked = checkLimit(limit, 'limit');
      // seq starts at 1: 0 stands for "none", so every dialect binds a list that parses.
      const skip = dialect.list(exclude.length === 0 ? ['0'] : exclude.map(String));
      return run('readPending', async (db) => {
        if (checked === 0) return [];
        const { rows } = await db.query(sql.readPending, {
          partition,
          limit: checked,
          exclude: skip,
          now: Date.now(),
        });
        const out: OutboxRecord[] = [];
        for (const row of rows) {
          // A row in backoff holds back the rows behind it.
          if (!isTrue(row.ready)) break;
          out.push(toRecord(row));
        }
        return out;
      });
    },

    readPendingMany: async (partitions, limit, skip) => {
      const checked = checkLimit(limit, 'limit');
      const many = sql.readPendingMany;
      if (many === undefined || partitions.length <= 1) {
        const lists = await Promise.all(
          partitions.map((p) => store.readPending(p, checked, skip?.get(p))),
        );
        return new Map(partitions.map((p, i) => [p, lists[i] ?? []]));
      }
      // Each partition's skip as the range from its least to its greatest seq (1..0: none).
      const bounds = partitions.map((p) => seqRange(skip?.get(p)));
      return run('readPending', async (db) => {
        const out = new Map<number, OutboxRecord[]>(partitions.map((p) => [p, []]));
        if (checked === 0) return out;
        const { rows } = await db.query(many, {
          partitions: dialect.list(partitions),
          skipFrom: dialect.list(bounds.map(([from]) => from.toString())),
          skipTo: dialect.list(bounds.map(([, to]) => to.toString())),
          limit: checked,
          now: Date.now(),
        });
        // A row in backoff holds back the rows behind it, in its partition.
        const held = new Set<number>();
        for (const row of rows) {
          const partition = Number(row.partition);
          if (held.has(partition)) continue;
          if (!isTrue(row.ready)) held.add(partition);
          else out.get(partition)?.push(toRecord(row));
        }
        return out;
      });
    },

    markPublishedMany: async (owner, batches) => {
      const many = sql.markPublishedMany;
      if (many === undefined || batches.length <= 1) {
        return Promise.all(batches.map(({ lease, ids }) => store.markPublished(owner, lease, ids)));
      }
      return run('markPublished', async (db) => {
        const { rows } = await db.query(many, {
          owner,
          partitions: dialect.list(batches.map(({ lease }) => lease.partition)),
          fences: dialect.list(batches.map(({ lease }) => lease.fence.toString())),
          ids: dialect.list(batches.flatMap(({ ids }) => ids)),
          now: Date.now(),
        });
        const marked = new Map<number, number>();
        for (const row of rows) {
          const partition = Number(row.partition);
          marked.set(partition, (marked.get(partition) ?? 0) + 1);
        }
        return batches.map(({ lease }) => marked.get(lease.partition) ?? 0);
      });
    },

    markPublished: (owner, lease, ids) =>
      run('markPublished', async (db) => {
        if (ids.length === 0) return 0;
        return (
          await db.query(sql.markPublished, { ...guard(owner, lease), ids: dialect.list(ids) })
        ).count;
      }),

    markFailed: (owner, lease, id, error, retry) => {
      const retryInMs = checkMs(retry.retryInMs, 'retryInMs');
      return run('markFailed', async (db) => {
        const { count } = await db.query(sql.markFailed, {
          ...guard(owner, lease),
          id,
          error: error.slice(0, MAX_ERROR_TEXT),
          dead: retry.dead,
          retryInMs,
        });
        return count > 0;
      });
    },

    status: () =>
      run('status', async (db) =>
        (await db.query(sql.status, { now: Date.now() })).rows.map(toStatus),
      ),

    skipDead: (ids) =>
      run('skipDead', async (db) => {
        if (ids.length === 0) return 0;
        return (await db.query(sql.skipDead, { ids: dialect.list(ids) })).count;
      }),

    retryDead: (ids) =>
      run('retryDead', async (db) => {
        if (ids !== undefined && ids.length === 0) return 0;
        const params = { all: ids === undefined, ids: dialect.list(ids ?? []), now: Date.now() };
        return (await db.query(sql.retryDead, params)).count;
      }),

    republish: (since) =>
      run('republish', async (db) => {
        const params = { since: dialect.fromDate(since), now: Date.now() };
        return (await db.query(sql.republish, params)).count;
      }),

    purgePublished: (before, limit) => {
      const checked = checkLimit(limit, 'limit');
      return run('purgePublished', async (db) => {
        if (checked === 0) return 0;
        const params = { before: dialect.fromDate(before), limit: checked };
        return (await runStatement(db, sql.purgePublished, params)).count;
      });
    },

    close: async () => {
      if (closed) return;
      closed = true;
      await dialect.close();
    },
  };
  return store;
}
