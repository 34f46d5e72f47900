import type { FerryError } from '../../core/errors.js';
import { numberParam } from '../../transport/parse-url.js';
import type { MemoryBroker } from './wire.js';

/** How long a partition keeps messages (see {@link MemoryBrokerOptions.retention}). */
export interface MemoryRetention {
  /**
   * Messages kept per partition at most, default 10 000: beyond it the oldest are dropped
   * even if unread, and a reader behind them goes on from the oldest kept.
   */
  readonly maxCount?: number;
  /** Not supported in process (`UNSUPPORTED`): `maxCount` bounds memory instead. */
  readonly maxAgeMs?: number;
}

/** Options of a {@link createMemoryBroker}: partitions per topic and how much it keeps. */
export interface MemoryBrokerOptions {
  /** Partitions per topic; default 8. */
  readonly partitions?: number;
  /**
   * Retention. Of the messages every known reader of a topic has read (every group that ever
   * subscribed, every live subscription without a group), a partition keeps the last
   * `keepRead` (default 1000) for replay and drops the rest; a topic nobody has subscribed to
   * keeps what it is sent, for a later `from: 'earliest'`. On top of that a partition keeps
   * at most `retention.maxCount` messages (default 10 000). Memory therefore stays bounded
   * however long a process runs.
   */
  readonly retention?: MemoryRetention;
  /** Read messages kept per partition for replay; default 1000 (see {@link retention}). */
  readonly keepRead?: number;
}

/** Options of {@link memory}: which in-process broker it uses (a private one by default). */
export interface MemoryTransportOptions {
  /**
   * `memory:?partitions=8&maxCount=10000&keepRead=1000`: a new private broker with these
   * settings. Not together with `broker`.
   */
  readonly url?: string;
  /** Shared broker state; default a new one private to this transport. */
  readonly broker?: MemoryBroker;
  readonly maxMessageBytes?: number;
  /**
   * Told about background failures the transport recovers from by itself, as FerryErrors.
   * A handler that rejects is not one: its message is handed out again.
   */
  readonly onError?: (error: FerryError) => void;
}

/** The broker settings a `memory:` URL names. */
export function memoryBrokerOptionsFromUrl(url: URL): MemoryBrokerOptions {
  const partitions = numberParam(url, 'partitions');
  const maxCount = numberParam(url, 'maxCount');
  const keepRead = numberParam(url, 'keepRead');
  return {
    ...(partitions === undefined ? {} : { partitions }),
    ...(maxCount === undefined ? {} : { retention: { maxCount } }),
    ...(keepRead === undefined ? {} : { keepRead }),
  };
}
