import type { Headers } from '../core/message.js';

/** A message as the outbox keeps it until a relay has published it. */
export interface OutboxRecord {
  /** UUIDv7, becomes the message's `ferry-id`. */
  readonly id: string;
  /** Monotonic insert order; relays publish each partition in this order. */
  readonly seq: bigint;
  readonly topic: string;
  readonly key: string | undefined;
  /** hash(key ?? id) mod P, with P fixed when the tables were created. */
  readonly partition: number;
  /** Encoded payload. */
  readonly body: Buffer;
  /** User headers plus `content-type`. */
  readonly headers: Headers;
  readonly createdAt: Date;
  /** Failed publish attempts so far. */
  readonly attempts: number;
  /** When the row may be published (after a failure: now + backoff). */
  readonly availableAt: Date;
}

/**
 * A row to insert: the outbox fills in seq, attempts, status and times. Leave `partition`
 * out and the store computes hash(key ?? id) mod P with the P it reads from the database,
 * so a writer never needs to know P (and cannot be configured with a wrong one).
 */
export type NewOutboxRecord = Pick<
  OutboxRecord,
  'id' | 'topic' | 'key' | 'body' | 'headers' | 'createdAt'
> & { readonly partition?: number };

/** A partition lease held by one relay. */
export interface Lease {
  readonly partition: number;
  /** Incremented on every takeover; writes guarded by an older fence are refused. */
  readonly fence: bigint;
}

/** One outbox partition's backlog, counted from its rows: what `ferry outbox status` shows. */
export interface PartitionStatus {
  readonly partition: number;
  readonly pending: number;
  readonly dead: number;
  /** Pending rows held back because an earlier row of their key is dead. */
  readonly blocked: number;
  /** Keys held back by a dead row. */
  readonly blockedKeys: number;
  /** Age of the oldest pending row, in ms; undefined when none is pending. */
  readonly oldestPendingMs: number | undefined;
  readonly owner: string | undefined;
  readonly fence: bigint | undefined;
  readonly leaseExpiresAt: Date | undefined;
}

/**
 * The SQL side of the transactional outbox, one implementation per dialect (SQLite,
 * PostgreSQL, MySQL/MariaDB). The relay (`relay.ts`) is written once against this contract;
 * the outbox store contract suite holds every dialect to it.
 *
 * Times are the database's clock (`now()` inside SQL), so relays on hosts with skewed clocks
 * still agree on lease expiry.
 *
 * @typeParam Tx - the user's transaction handle (a pg client inside BEGIN, a mysql2
 *   connection, a better-sqlite3 Database), typed structurally by each dialect.
 */
export interface OutboxStore<Tx> {
  /** Dialect name for logs: `sqlite`, `postgres`, `mysql`. */
  readonly dialect: string;
  /**
   * P: fixed when the tables are created. Read back from the database by `migrate` and by
   * the first operation of a store opened without it; until then the configured value.
   */
  readonly partitions: number;

  /**
   * Creates the tables if missing and applies the schema versions an older installation
   * lacks, keeping its rows (idempotent, safe to run from many processes).
   */
  migrate(): Promise<void>;

  /** Inserts rows inside the caller's open transaction `tx`; commits nothing itself. */
  insert(tx: Tx, records: readonly NewOutboxRecord[]): Promise<void>;

  /**
   * Registers `owner` as a live relay for `ttlMs` and renews the leases it holds; returns the
   * leases still held (an expired lease another relay took over is not among them).
   */
  heartbeat(owner: string, ttlMs: number): Promise<Lease[]>;
  /**
   * Registers `owner` as a live relay publishing to `destination` (a transport's identity,
   * such as `kafka://host:9092`, never credentials) unless a live relay of another
   * destination is registered: then registers nothing and returns that destination. One
   * outbox table feeds one transport.
   */
  register(owner: string, ttlMs: number, destination: string): Promise<string | undefined>;
  /** Number of relays whose registration has not expired (including `owner`). */
  liveRelays(): Promise<number>;
  /**
   * Takes up to `max` partitions that are free or whose lease expired, each by an atomic
   * compare-and-set that increments the fence. Never returns a partition another relay holds.
   */
  acquire(owner: string, max: number, ttlMs: number): Promise<Lease[]>;
  /** Gives partitions back (and, with `deregister`, the relay's registration). */
  release(owner: string, partitions: readonly number[], deregister?: boolean): Promise<void>;

  /**
   * Up to `limit` pending rows of `partition` in `seq` order, stopping before the first row
   * that is not yet available (so a row in backoff holds back the rows behind it), and
   * leaving out rows behind a dead row of the same key (a dead row blocks its key until it
   * is retried or skipped; a dead row without a key blocks nothing). Rows whose `seq` is in
   * `exclude` are left out: a relay reads its next batch while the rows it sent are still
   * being marked. (Not a cursor: a row that commits late with a lower `seq` must still be
   * read.) A store may ignore `exclude`; the relay then leaves those rows out itself.
   */
  readPending(
    partition: number,
    limit: number,
    exclude?: readonly bigint[],
  ): Promise<OutboxRecord[]>;
  /**
   * Marks rows published in one statement, only while `owner` still holds `lease` (same
   * fence, not expired). Returns how many rows it marked: fewer than `ids.length` means the
   * lease was lost and nothing more may be done on that partition.
   */
  markPublished(owner: string, lease: Lease, ids: readonly string[]): Promise<number>;
  /**
   * What `readPending(partition, limit, skip.get(partition))` returns for each of
   * `partitions`, read together (one statement where the database allows it), by partition.
   * `skip` names, per partition, rows a relay has sent or is marking: they are left out. A
   * store may also leave out other rows whose `seq` lies between the least and the greatest
   * of a partition's `skip` (a row committed late among them): a later read without that
   * skip returns them. Optional: without it a relay reads each partition on its own, and
   * does not read ahead while it publishes.
   */
  readPendingMany?(
    partitions: readonly number[],
    limit: number,
    skip?: ReadonlyMap<number, readonly bigint[]>,
  ): Promise<ReadonlyMap<number, OutboxRecord[]>>;
  /**
   * `markPublished` of several leases' rows together (one statement where the database
   * allows it): how many rows of each entry it marked, in the order of `batches`; fewer than
   * an entry's `ids` means that lease was lost. Optional: without it a relay marks each
   * partition on its own.
   */
  markPublishedMany?(
    owner: string,
    batches: readonly { readonly lease: Lease; readonly ids: readonly string[] }[],
  ): Promise<number[]>;
  /**
   * Records a failed publish of one row (guarded by the lease like `markPublished`):
   * attempts + 1, `last_error`, and either `available_at = now + retryInMs` or, with
   * `dead`, status dead. Returns false when the lease was lost.
   */
  markFailed(
    owner: string,
    lease: Lease,
    id: string,
    error: string,
    retry: { readonly dead: boolean; readonly retryInMs: number },
  ): Promise<boolean>;

  /** Per-partition counts and lease owners, for `ferry outbox status`. */
  status(): Promise<PartitionStatus[]>;
  /** Dead rows (all, or these ids) back to pending with attempts reset; returns how many. */
  retryDead(ids?: readonly string[]): Promise<number>;
  /** Dead rows with these ids become `skipped`: never published, no longer blocking their key. */
  skipDead(ids: readonly string[]): Promise<number>;
  /** Published rows created at or after `since` back to pending (publish again); returns how many. */
  republish(since: Date): Promise<number>;
  /** Deletes up to `limit` published rows published before `before`; returns how many. */
  purgePublished(before: Date, limit: number): Promise<number>;
  /** Releases connections the store opened itself (never the user's). */
  close(): Promise<void>;
}
