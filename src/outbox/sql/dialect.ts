import type { Lease } from '../store.js';

/** A row as a driver returns it, column names as the statement spelled them. */
export type Row = Record<string, unknown>;

/** What one statement returned: its rows (none for a write) and how many rows it changed. */
export interface SqlResult {
  readonly rows: Row[];
  readonly count: number;
}

/** Named statement parameters: `@name` in the statement text. */
export type SqlParams = Readonly<Record<string, unknown>>;

/**
 * The store's own connection (or pool). Statements name their parameters `@name` (or, as
 * the CLI writes them, use `?`); each dialect turns them into its driver's placeholders with
 * {@link compileSql}.
 */
export interface SqlSession {
  /** `params` names the `@name` parameters, or lists the values of `?` placeholders in order. */
  query(sql: string, params?: SqlParams | readonly unknown[]): Promise<SqlResult>;
}

/** One statement, or a few run in order where a dialect needs more than one. */
export type SqlStatement = string | ((db: SqlSession, params: SqlParams) => Promise<SqlResult>);

/** One schema version: applied once, in order, and recorded in `<table>_schema`. */
export interface Migration {
  readonly version: number;
  /** Statements run in order, or steps that first look at what is there. */
  readonly up: readonly string[] | ((db: SqlSession) => Promise<void>);
}

/** A row to insert, its partition already chosen. */
export interface InsertRow {
  readonly id: string;
  readonly topic: string;
  readonly key: string | null;
  readonly partition: number;
  readonly body: Buffer;
  /** The headers as JSON text. */
  readonly headers: string;
  readonly createdAt: Date;
}

/**
 * The statements of the outbox on one database, each with named parameters. Rows read
 * back use these columns: leases `partition`, `fence` (text); pending rows `id`,
 * `seq_text`, `topic`, `key`, `partition`, `payload`, `headers`, `created_at`, `attempts`,
 * `available_at`, `ready` (available now: true or 1); counts `n`.
 */
export interface OutboxStatements {
  /** Versions in ascending order; the first creates the tables as ferry 0.1.0 did. */
  readonly migrations: readonly Migration[];
  /** Creates `<table>_schema` if missing. */
  readonly createSchemaTable: string;
  /** `@version`: records a version as applied. */
  readonly recordVersion: string;
  /** The highest applied version as `v` (null when none). */
  readonly appliedVersion: string;
  /** Lease rows as `n`: P, or 0 before the first migration. */
  readonly countLeases: string;
  /** `@partitions`: one lease row per partition, when there are none. */
  readonly seedLeases: SqlStatement;
  /** `@owner @ttlMs @forgetMs`: renews `owner`'s registration and leases, returns them. */
  readonly heartbeat: SqlStatement;
  /** `@owner @destination`: a live relay's other destination, as `destination`. */
  readonly otherDestination: string;
  /** `@owner @ttlMs @destination`: registers or renews `owner`. */
  readonly register: string;
  /** Live relays as `n`. */
  readonly liveRelays: string;
  /** `@owner @max @ttlMs`: takes up to `max` free or expired leases, returns them. */
  readonly acquire: SqlStatement;
  /** `@owner @partitions @deregister`. */
  readonly release: SqlStatement;
  /**
   * `@partition @limit @exclude`: pending rows in seq order, without those behind a dead
   * row and those whose seq is in `@exclude`.
   */
  readonly readPending: string;
  /**
   * `@partitions @skipFrom @skipTo @limit`: `readPending` of each partition in one
   * statement, without the rows whose seq lies from the partition's `@skipFrom` to its
   * `@skipTo` (the lists align with `@partitions`; 1 to 0 skips none), ordered by partition
   * then seq. Dialects without it read one partition at a time.
   */
  readonly readPendingMany?: string;
  /** `@partition @owner @fence @ids`, while the lease is held. */
  readonly markPublished: string;
  /**
   * `@owner @partitions @fences @ids`: marks the rows of every partition whose lease (at
   * the fence at the same index) is held, returning each marked row's `partition`.
   * Dialects without it mark one partition at a time.
   */
  readonly markPublishedMany?: string;
  /** `@partition @owner @fence @id @error @dead @retryInMs`, while the lease is held. */
  readonly markFailed: string;
  /**
   * Per partition: `partition owner fence expires_at pending dead blocked keys oldest_ms`.
   */
  readonly status: string;
  /** `@ids`. */
  readonly skipDead: string;
  /** `@ids`, or every dead row when `@all` is true. */
  readonly retryDead: string;
  /** `@since`. */
  readonly republish: string;
  /** `@before @limit`. */
  readonly purgePublished: SqlStatement;
}

/**
 * What one SQL database supplies to the outbox store (`outbox-store.ts`): its statements,
 * how its driver binds and returns values, and how the store's own connection runs them.
 * Everything else (argument checks, partitioning, leases, row decoding, migrations in
 * order, error mapping) is written once in the store.
 *
 * @typeParam Tx - the user's transaction handle.
 */
export interface SqlDialect<Tx> {
  /** `postgres`, `mysql` or `sqlite`. */
  readonly name: string;
  /** The outbox table as given (unquoted), for messages and lock names. */
  readonly table: string;
  readonly statements: OutboxStatements;
  /**
   * Runs `work` on the store's own connection, opened on first use. A dialect adds what
   * its database needs around it (SQLite: one operation at a time per file; MySQL: run
   * again after InnoDB picked the statement as a deadlock victim).
   */
  use<T>(work: (db: SqlSession) => Promise<T>): Promise<T>;
  /** As `use`, atomically: one transaction (SQLite: `BEGIN IMMEDIATE`). */
  atomic<T>(work: (db: SqlSession) => Promise<T>): Promise<T>;
  /** As `atomic`, also holding a lock named after `name` so concurrent callers run one by one. */
  exclusive<T>(name: string, work: (db: SqlSession) => Promise<T>): Promise<T>;
  /** Inserts rows inside the caller's transaction `tx`. */
  insert(tx: Tx, rows: readonly InsertRow[]): Promise<void>;
  /** A time the database returned, as a Date. */
  toDate(value: unknown): Date;
  /** A Date as the driver binds it (`@since`, `@before`). */
  fromDate(date: Date): unknown;
  /** A list of ids or partitions as the driver binds it (`@ids`, `@partitions`). */
  list(values: readonly (string | number)[]): unknown;
  /** Releases the connection the dialect opened itself (never the user's). */
  close(): Promise<void>;
}

/** A statement text with `@name` or `?` parameters, compiled for one driver. */
export interface CompiledSql {
  readonly text: string;
  /** The parameter each placeholder takes, in order (a `?` is named by its position: `0`, `1`, ...). */
  readonly names: readonly string[];
}

/** A quoted literal or identifier (left as is), an `@name` parameter, or a `?` parameter. */
const PARAMETER = /'(?:[^']|'')*'|"(?:[^"]|"")*"|`(?:[^`]|``)*`|@([A-Za-z_][A-Za-z0-9_]*)|\?/g;

/**
 * Turns `@name` and `?` parameters outside quotes into `$1, $2, ...` (`numbered`: a name
 * used twice keeps its number, as PostgreSQL allows) or `?` (positional: the value is bound
 * once per use). The n-th `?` takes the parameter named `n - 1`, so a statement written with
 * `?` binds a list: `bind(compiled, [a, b])`.
 */
export function compileSql(sql: string, numbered: boolean): CompiledSql {
  const names: string[] = [];
  let positional = 0;
  const text = sql.replace(PARAMETER, (match, named: string | undefined) => {
    if (named === undefined && match !== '?') return match;
    const name = named ?? String(positional++);
    if (!numbered) {
      names.push(name);
      return '?';
    }
    let index = names.indexOf(name);
    if (index < 0) index = names.push(name) - 1;
    return `$${index + 1}`;
  });
  return { text, names };
}

/** Statement texts compiled once each; text built at run time (CLI queries) may pass by. */
const CACHED_TEXTS = 512;

/**
 * Compiles each statement text once and binds `params` in placeholder order: named
 * parameters, or a list for `?` placeholders.
 */
export function sqlCompiler(numbered: boolean) {
  const cache = new Map<string, CompiledSql>();
  return (
    sql: string,
    params: SqlParams | readonly unknown[] = {},
  ): { text: string; values: unknown[] } => {
    let compiled = cache.get(sql);
    if (!compiled) {
      compiled = compileSql(sql, numbered);
      if (cache.size < CACHED_TEXTS) cache.set(sql, compiled);
    }
    const source = params as Readonly<Record<string, unknown>>;
    return { text: compiled.text, values: compiled.names.map((name) => source[name]) };
  };
}

/** Runs `statement` (text or steps) on `db`. */
export function runStatement(
  db: SqlSession,
  statement: SqlStatement,
  params: SqlParams = {},
): Promise<SqlResult> {
  return typeof statement === 'string' ? db.query(statement, params) : statement(db, params);
}

/** Leases as rows `partition`, `fence` give them, in partition order. */
export function toLeases(rows: readonly Row[]): Lease[] {
  return rows
    .map((row) => ({ partition: Number(row.partition), fence: BigInt(String(row.fence)) }))
    .sort((a, b) => a.partition - b.partition);
}
