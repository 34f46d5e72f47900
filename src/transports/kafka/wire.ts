import type * as KafkaLib from '@platformatic/kafka';
import { FerryError, isFerryError, type FerryErrorCode } from '../../core/errors.js';
import { redactSecrets } from '../../core/log.js';
import { HEADER, type Delivery, type OutgoingMessage } from '../../core/message.js';

export type Lib = typeof KafkaLib;
export type Producer = KafkaLib.Producer<string, Buffer, string, string>;
export type ProduceRecord = KafkaLib.MessageToProduce<string, Buffer, string, string>;
export type KafkaRecord = KafkaLib.Message<string, Buffer, string, string>;

/** Kafka's own default partitioner (murmur2 of the key bytes, positive, modulo partitions). */
export function keyPartitioner(lib: Lib): KafkaLib.Partitioner<string, Buffer, string, string> {
  const roundRobin = new Map<string, number>();
  return (message, key) => {
    if (key !== undefined && key.length > 0) return lib.murmur2(key) & 0x7fffffff;
    // Keyless: spread over partitions, as Kafka clients do.
    const next = roundRobin.get(message.topic) ?? 0;
    roundRobin.set(message.topic, (next + 1) & 0x7fffffff);
    return next;
  };
}

/** Largest produce request (all partitions) ferry builds; each partition's batch stays under `message.max.bytes`. */
export const MAX_REQUEST_BYTES = 1_000_000;
/** Per-record framing in a batch (lengths, varints, attributes) and per-batch header. */
const RECORD_OVERHEAD = 32;

export interface PendingSend {
  readonly records: ProduceRecord[];
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** Whether a client error (or one it wraps) is the broker error `apiId`. */
export function hasApiError(error: unknown, apiId: string): boolean {
  const found = (error as { findBy?: (key: string, value: unknown) => unknown } | null)?.findBy?.(
    'apiId',
    apiId,
  );
  return found !== null && found !== undefined;
}

function isNetworkError(error: unknown): boolean {
  const e = error as { findBy?: (key: string, value: unknown) => unknown; code?: unknown } | null;
  if (!e) return false;
  if (e.code === 'PLT_KFK_NETWORK' || e.code === 'PLT_KFK_TIMEOUT') return true;
  return Boolean(e.findBy?.('code', 'PLT_KFK_NETWORK') ?? e.findBy?.('code', 'PLT_KFK_TIMEOUT'));
}

/** The innermost reason along the first of `errors` and `cause`: the broker's own text if it sent one. */
function rootReason(error: unknown): string | undefined {
  let reason: string | undefined;
  let current: unknown = error;
  for (let depth = 0; depth < 8 && typeof current === 'object' && current !== null; depth++) {
    const e = current as {
      message?: unknown;
      cause?: unknown;
      errors?: unknown[];
      response?: { errorMessage?: unknown };
    };
    if (typeof e.response?.errorMessage === 'string') return e.response.errorMessage;
    if (typeof e.message === 'string') reason = e.message;
    current = e.cause ?? e.errors?.[0];
  }
  return reason === undefined ? undefined : redactSecrets(reason);
}

/**
 * What brokers answer while a partition's leadership moves (a broker died or came back):
 * the cluster is unavailable for a moment, not refusing the records.
 */
const FAILOVER_ERRORS = [
  'NOT_LEADER_OR_FOLLOWER',
  'LEADER_NOT_AVAILABLE',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'REQUEST_TIMED_OUT',
  'NETWORK_EXCEPTION',
  'COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR',
  'KAFKA_STORAGE_ERROR',
];

/**
 * A client error as a FerryError: unreachable brokers and a cluster failing over
 * (`CONNECTION_FAILED`), oversized records, else `code`.
 */
export function kafkaError(
  error: unknown,
  code: FerryErrorCode,
  what: string,
  brokers: string,
): FerryError {
  if (isFerryError(error)) return error;
  const reason = error instanceof Error ? error.message : String(error);
  if (hasApiError(error, 'MESSAGE_TOO_LARGE') || hasApiError(error, 'RECORD_LIST_TOO_LARGE')) {
    return new FerryError('MESSAGE_TOO_LARGE', `${what}: the broker refused the size (${reason})`, {
      cause: error,
    });
  }
  if (isNetworkError(error) || FAILOVER_ERRORS.some((apiId) => hasApiError(error, apiId))) {
    // "Cannot connect to any broker" alone hides a refused password or an untrusted certificate.
    const root = rootReason(error);
    return new FerryError(
      'CONNECTION_FAILED',
      `${what}: cannot reach Kafka at ${brokers} (${root === undefined || root === reason ? reason : `${reason} ${root}`})`,
      {
        cause: error,
        details: { brokers },
      },
    );
  }
  return new FerryError(code, `${what}: ${reason}`, { cause: error, details: { brokers } });
}

/** A message as a produce record, with its estimated size in a request. */
export function toRecord(message: OutgoingMessage): [ProduceRecord, number] {
  let bytes = message.body.length + RECORD_OVERHEAD + (message.key?.length ?? 0);
  for (const [name, value] of Object.entries(message.headers)) {
    bytes += name.length + value.length + 4;
  }
  const record: ProduceRecord = {
    topic: message.topic,
    value: message.body,
    headers: message.headers,
    ...(message.key === undefined ? {} : { key: message.key }),
  };
  return [record, bytes];
}

const EMPTY = Buffer.alloc(0);

/** A fetched record as a delivery: record headers are ferry's headers, the value the body. */
export function toDelivery(record: KafkaRecord): Delivery {
  const headers: { [name: string]: string } = {};
  // forEach, not for-of: no entry array per header.
  record.headers.forEach((value, name) => {
    if (name !== undefined && value !== undefined) headers[name] = value;
  });
  return {
    topic: record.topic,
    key: record.key ?? undefined,
    headers,
    body: record.value ?? EMPTY,
    partition: record.partition,
    offset: record.offset.toString(),
    // Records from other producers carry no ferry-created-at: their own timestamp stands in.
    brokerTime:
      headers[HEADER.createdAt] === undefined ? new Date(Number(record.timestamp)) : undefined,
  };
}

/**
 * Round robin over the members subscribed to each topic. The client's default gives every
 * member a share of the leader's topics only, which starves members of one group that
 * consume different topics (a ferry group reading `orders` and `orders.dlq`).
 */
export const subscriptionAssigner: KafkaLib.GroupPartitionsAssigner = (
  _current,
  members,
  _topics,
  metadata,
) => {
  const ids = [...members.keys()].sort();
  const result = ids.map((memberId) => ({
    memberId,
    assignments: new Map<string, KafkaLib.GroupAssignment>(),
  }));
  const topics = new Set<string>();
  for (const member of members.values()) for (const topic of member.topics ?? []) topics.add(topic);
  for (const topic of [...topics].sort()) {
    const count = metadata.topics.get(topic)?.partitionsCount ?? 0;
    const subscribers = result.filter((entry) =>
      members.get(entry.memberId)?.topics?.includes(topic),
    );
    for (let partition = 0; partition < count && subscribers.length > 0; partition++) {
      const member = subscribers[partition % subscribers.length];
      if (!member) continue;
      let assignment = member.assignments.get(topic);
      if (!assignment) {
        assignment = { topic, partitions: [] };
        member.assignments.set(topic, assignment);
      }
      assignment.partitions.push(partition);
    }
  }
  return result;
};

/**
 * Makes a client's lookup of a broker missing from its cached metadata a retriable error
 * that drops the cache, instead of a TypeError thrown inside the client (1.x), after which
 * the heartbeat, commit or fetch that asked would never call back: that happens when a
 * group coordinator the client looked up earlier has gone. (The subscription replaces a
 * client that keeps failing, which finds the current coordinator.)
 */
export function guardBrokerLookups(client: object): void {
  let owner: object | null = client;
  let lookup: symbol | undefined;
  while (owner !== null && lookup === undefined) {
    lookup = Object.getOwnPropertySymbols(owner).find(
      (symbol) => symbol.description === 'plt.kafka.base.getConnection',
    );
    owner = Object.getPrototypeOf(owner) as object | null;
  }
  if (lookup === undefined) return;
  const target = client as Record<symbol, unknown> & { clearMetadata?: () => void };
  const original = target[lookup];
  if (typeof original !== 'function') return;
  target[lookup] = function (
    this: unknown,
    broker: unknown,
    callback: (error: Error | null, connection?: unknown) => void,
  ): unknown {
    if (broker === undefined || broker === null) {
      target.clearMetadata?.();
      callback(new Error('Broker not in the cached metadata (refreshing it)'));
      return undefined;
    }
    return (original as (...args: unknown[]) => unknown).call(this, broker, callback);
  };
}
