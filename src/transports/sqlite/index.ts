// `ferry/sqlite` exports the factory: the embedded SQLite log transport.
import { loadDriver } from '../../core/driver.js';
import { FerryError } from '../../core/errors.js';
import { capabilitiesOf, createTransport, errorReporter } from '../../transport/kernel.js';
import type { PartitionLag, SeekTarget, Transport } from '../../transport/transport.js';
import { sqliteDescriptor } from './descriptor.js';
import { sqliteSettings, type SqliteTransportOptions } from './options.js';
import { localPumps, subscribeSqlite, type SqliteContext } from './subscription.js';
import { SCHEMA, sqliteLog, type Database, type SqliteLog } from './wire.js';

export type { SqliteRetention, SqliteTransportOptions } from './options.js';

/**
 * The embedded durable log: a SQLite file (WAL) that several processes can share, one
 * publishing and others consuming. Topics have P partitions (by key); consumer groups keep
 * committed offsets in the file and share partitions through leases that expire when a
 * member dies (`sessionTimeoutMs`); replay by offset or time. Delivery is at-least-once: a
 * group's offset moves past a message only after its handler resolved. `publish` resolves
 * once the batch is committed to the file.
 *
 * Synchronous: `better-sqlite3` is loaded and the file opened on first use (a missing
 * driver is `DRIVER_MISSING`, a file that cannot be opened `CONNECTION_FAILED`, both from
 * that first operation). `close()` closes every subscription, then the file.
 */
export function sqlite(options: SqliteTransportOptions = {}): Transport {
  const settings = sqliteSettings(options);
  const { path } = settings;
  const capabilities = capabilitiesOf(sqliteDescriptor, settings.maxMessageBytes);
  const report = errorReporter(settings.onError);
  const watchedTopics = new Map<string, number>();
  const timers: NodeJS.Timeout[] = [];
  let opening: Promise<SqliteLog> | undefined;

  const wakeLocal = (topic: string): void => {
    for (const pump of localPumps.get(`${path}\u0000${topic}`) ?? []) pump.wake();
  };

  const start = (db: Database): void => {
    // Another process's commit changes PRAGMA data_version: a cheap way to notice its writes.
    let dataVersion = db.pragma('data_version', { simple: true }) as number;
    const poller = setInterval(() => {
      if (watchedTopics.size === 0) return;
      const version = db.pragma('data_version', { simple: true }) as number;
      if (version !== dataVersion) {
        dataVersion = version;
        for (const topic of watchedTopics.keys()) wakeLocal(topic);
      }
    }, settings.pollIntervalMs);
    timers.push(poller);
    const { maxAgeMs } = settings;
    if (maxAgeMs !== undefined) {
      const purge = db.prepare('delete from ferry_messages where created_at < ?');
      timers.push(
        setInterval(() => {
          try {
            purge.run(Date.now() - maxAgeMs);
          } catch (error) {
            report(error, 'STORE_FAILED', `Deleting old messages from ${path}`);
          }
        }, 60_000),
      );
    }
    for (const timer of timers) timer.unref();
  };

  const open = (): Promise<SqliteLog> =>
    (opening ??= (async () => {
      const { default: Sqlite } = await loadDriver(
        'better-sqlite3',
        () => import('better-sqlite3'),
      );
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
      start(db);
      return sqliteLog(db, settings.defaultPartitions);
    })());

  return createTransport({
    name: 'sqlite',
    capabilities,

    async ping() {
      (await open()).ping();
    },

    async publish(messages) {
      const log = await open();
      try {
        log.append(messages);
      } catch (cause) {
        if (cause instanceof FerryError) throw cause;
        throw new FerryError('PUBLISH_FAILED', `Could not append to the SQLite log at ${path}`, {
          cause,
        });
      }
      for (const topic of new Set(messages.map((message) => message.topic))) wakeLocal(topic);
    },

    async subscribe(subscribe, handler) {
      const context: SqliteContext = { log: await open(), settings, watchedTopics, report };
      return subscribeSqlite(context, subscribe, handler);
    },

    async seek(topic: string, group: string, target: SeekTarget) {
      (await open()).seek(topic, group, target);
    },

    async lag(topic: string, group: string): Promise<PartitionLag[]> {
      return (await open()).lag(topic, group);
    },

    async close() {
      for (const timer of timers) clearInterval(timer);
      const log = await opening?.catch(() => undefined);
      log?.close();
    },
  });
}
