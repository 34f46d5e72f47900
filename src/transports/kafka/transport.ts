import { randomUUID } from 'node:crypto';
import type * as KafkaLib from '@platformatic/kafka';
import { loadDriver } from '../../core/driver.js';
import { FerryError, isFerryError, type FerryErrorCode } from '../../core/errors.js';
import { redactSecrets } from '../../core/log.js';
import type { OutgoingMessage } from '../../core/message.js';
import type {
  CloseOptions,
  DeliveryHandler,
  PartitionLag,
  SeekTarget,
  SubscribeOptions,
  Transport,
} from '../../transport/transport.js';
import { KafkaSubscription } from './subscription.js';
import { assertPartitions, checkSize, Subscriptions } from '../../transport/shared.js';
import { capabilitiesOf } from '../../transport/descriptor.js';
import { caFromUrl, type TlsOptions } from '../../transport/tls.js';
import { kafkaDescriptor } from './descriptor.js';

type Lib = typeof KafkaLib;
type Producer = KafkaLib.Producer<string, Buffer, string, string>;
type ProduceRecord = KafkaLib.MessageToProduce<string, Buffer, string, string>;

/** The SASL mechanisms ferry speaks to Kafka. */
export type KafkaSaslMechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';

/** SASL credentials, as managed Kafka services hand them out. */
export interface KafkaSaslOptions {
  readonly mechanism: KafkaSaslMechanism;
  readonly username: string;
  /** The password, or a function that returns it (called on every new connection). */
  readonly password: string | (() => string | Promise<string>);
}

export interface KafkaTransportOptions {
  /** Bootstrap brokers as `host:port`, an array or a comma-separated list. */
  readonly brokers: readonly string[] | string;
  /** SASL authentication on every connection. Default none. */
  readonly sasl?: KafkaSaslOptions;
  /**
   * TLS to the brokers: `true` trusts the system's CAs; node:tls options (`ca`, `cert`,
   * `key`, `servername`, `rejectUnauthorized`, ...) for a private CA or client certificates.
   * Default off.
   */
  readonly tls?: boolean | TlsOptions;
  /**
   * Options for the `@platformatic/kafka` producer, consumers and admin ferry makes, for what
   * ferry has no option of its own (OAUTHBEARER tokens, a custom SASL authenticator,
   * `tlsServerName`, metrics, ...): the settings your service's own Kafka clients use. ferry
   * always makes its own clients (its producer needs idempotence, its serializers and one send
   * in flight); its own settings (timeouts, retries, `sasl`, `tls`) win over these.
   */
  readonly clientOptions?: Partial<Omit<KafkaLib.BaseOptions, 'clientId' | 'bootstrapBrokers'>>;
  /** Client id the brokers see (logs, quotas). Default `ferry`. */
  readonly clientId?: string;
  /** Partitions of the topics ferry creates on first use. Default 8. */
  readonly partitions?: number;
  /** Replication factor of the topics ferry creates. Default: the broker's `default.replication.factor`. */
  readonly replicationFactor?: number;
  /**
   * Largest body `publish` accepts. Default 1,000,000 bytes: the broker's default
   * `message.max.bytes` (1,048,588) bounds a whole record batch, key and headers included,
   * so this leaves room for them. Raise both together.
   */
  readonly maxMessageBytes?: number;
  /** Bound on connecting to a broker. Default 5000 ms. */
  readonly connectTimeoutMs?: number;
  /** Bound on one request. Default 10000 ms. */
  readonly requestTimeoutMs?: number;
  /** Retries of a failed request before the error surfaces. Default 3. */
  readonly retries?: number;
  /** Wait between those retries. Default 250 ms. */
  readonly retryDelayMs?: number;
  /** Group session timeout: how soon a dead member's partitions move on. Default 30000 ms (the broker's minimum is 6000). */
  readonly sessionTimeoutMs?: number;
  /** Default 1000 ms; also how soon a member notices a rebalance. */
  readonly heartbeatIntervalMs?: number;
  /** How long a rebalance waits for members to rejoin. Default 60000 ms. */
  readonly rebalanceTimeoutMs?: number;
  /** Longest a fetch waits at the broker for new records. Default 500 ms. */
  readonly maxWaitMs?: number;
  /**
   * Most bytes one fetch of a subscription brings (the broker still returns a first batch
   * that is larger). Default 1 MiB, about what `maxBufferedMessages` holds: the client's own
   * 10 MB default brings tens of thousands of records at once, all alive until handled, and
   * the time goes to garbage collection.
   */
  readonly maxFetchBytes?: number;
  /** Records fetched ahead per subscription before fetching pauses. Default 2000. */
  readonly maxBufferedMessages?: number;
  /** Wait before a rejected record is handed out again. Default 100 ms. */
  readonly redeliveryDelayMs?: number;
  /**
   * Least time between two offset commits of a subscription. Default 100 ms: what finished
   * meanwhile goes in one request. Closing and rebalances commit at once; a crash redoes at
   * most this much work.
   */
  readonly commitIntervalMs?: number;
  /** Told about errors a subscription recovers from by itself (commit retries, refetch). */
  readonly onError?: (error: FerryError) => void;
}

/** Kafka's own default partitioner (murmur2 of the key bytes, positive, modulo partitions). */
function keyPartitioner(lib: Lib): KafkaLib.Partitioner<string, Buffer, string, string> {
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
const MAX_REQUEST_BYTES = 1_000_000;
/** Per-record framing in a batch (lengths, varints, attributes) and per-batch header. */
const RECORD_OVERHEAD = 32;

interface PendingSend {
  readonly records: ProduceRecord[];
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Kafka through `@platformatic/kafka`: a durable, partitioned log.
 *
 * - Publish: idempotent producer, acks from all in-sync replicas; a message's key picks its
 *   partition with Kafka's murmur2 partitioner (the one Java, librdkafka and kcat clients
 *   use), keyless messages are spread round robin. ferry headers travel as Kafka record
 *   headers, the body as the record value. `publish` resolves once every message is acked.
 *   Publishes overlapping in time are sent together in one produce request; one request is
 *   in flight per transport, because the client's idempotent sequence numbers are only kept
 *   right for sends that do not overlap.
 * - Topics are created on first use with `partitions` partitions (`<topic>.dlq` included).
 * - Groups are Kafka consumer groups of the same name; offsets are committed only after the
 *   handler resolved (at-least-once). Order is per partition. A private subscription is a
 *   group of its own that starts at the end and commits nothing.
 * - `seek` and `lag` use the group's committed offsets.
 */
export function kafka(options: KafkaTransportOptions): Transport {
  const brokers = (
    typeof options.brokers === 'string' ? options.brokers.split(',') : [...options.brokers]
  )
    .map((broker) => broker.trim())
    .filter((broker) => broker.length > 0);
  if (brokers.length === 0) {
    throw new FerryError('INVALID_ARGUMENT', 'kafka needs at least one broker (host:port)');
  }
  const partitions = options.partitions ?? 8;
  assertPartitions(partitions);
  const clientId = options.clientId ?? 'ferry';
  const security = securityOptions(options);
  const capabilities = capabilitiesOf(kafkaDescriptor, options.maxMessageBytes);
  const clientOptions = {
    ...options.clientOptions,
    clientId,
    bootstrapBrokers: brokers,
    connectTimeout: options.connectTimeoutMs ?? 5000,
    timeout: options.requestTimeoutMs ?? 10_000,
    retries: options.retries ?? 3,
    retryDelay: options.retryDelayMs ?? 250,
    ...security,
  };
  const where = brokers.join(',');
  const onError = options.onError ?? (() => undefined);

  let lib: Promise<Lib> | undefined;
  let producer: Promise<Producer> | undefined;
  let admin: Promise<KafkaLib.Admin> | undefined;
  const topics = new Map<string, Promise<void>>();
  const subscriptions = new Subscriptions();
  const queue: PendingSend[] = [];
  let sending: Promise<void> | undefined;
  let closed = false;
  let done: Promise<void> | undefined;

  const load = (): Promise<Lib> =>
    (lib ??= loadDriver('@platformatic/kafka', () => import('@platformatic/kafka')));
  const adminClient = (): Promise<KafkaLib.Admin> =>
    (admin ??= load().then((k) => new k.Admin(clientOptions)));
  const producerClient = (): Promise<Producer> =>
    (producer ??= load().then(
      (k) =>
        new k.Producer<string, Buffer, string, string>({
          ...clientOptions,
          idempotent: true,
          acks: k.ProduceAcks.ALL,
          partitioner: keyPartitioner(k),
          serializers: {
            key: k.stringSerializer,
            headerKey: k.stringSerializer,
            headerValue: k.stringSerializer,
          },
        }),
    ));

  const assertOpen = (): void => {
    if (closed) throw new FerryError('CLOSED', 'kafka transport is closed');
  };

  const fail = (error: unknown, code: FerryErrorCode, what: string): FerryError =>
    toFerryError(error, code, what, where);

  /** Creates the topic once per transport; an existing topic is fine as it is. */
  const ensureTopic = (topic: string): Promise<void> => {
    let ready = topics.get(topic);
    if (!ready) {
      ready = (async () => {
        const client = await adminClient();
        try {
          await client.createTopics({
            topics: [topic],
            partitions,
            ...(options.replicationFactor === undefined
              ? {}
              : { replicas: options.replicationFactor }),
          });
        } catch (error) {
          if (!hasApiError(error, 'TOPIC_ALREADY_EXISTS')) throw error;
        }
      })().catch((error: unknown) => {
        topics.delete(topic);
        throw fail(error, 'CONNECTION_FAILED', `Could not create topic ${topic}`);
      });
      topics.set(topic, ready);
    }
    return ready;
  };

  // One produce request in flight; publishes that arrive meanwhile go out together next.
  const drain = async (): Promise<void> => {
    try {
      const client = await producerClient();
      while (queue.length > 0) {
        const batch: PendingSend[] = [];
        let bytes = 0;
        while (queue.length > 0) {
          const next = queue[0] as PendingSend;
          if (batch.length > 0 && bytes + next.bytes > MAX_REQUEST_BYTES) break;
          batch.push(next);
          bytes += next.bytes;
          queue.shift();
        }
        try {
          await client.send({
            messages:
              batch.length === 1
                ? (batch[0] as PendingSend).records
                : batch.flatMap((p) => p.records),
          });
          for (const pending of batch) pending.resolve();
        } catch (error) {
          for (const pending of batch) pending.reject(error);
        }
      }
    } catch (error) {
      for (const pending of queue.splice(0)) pending.reject(error);
    } finally {
      // Synchronously with the loop's last look at the queue: a later publish starts anew.
      sending = undefined;
    }
  };

  const enqueue = (records: ProduceRecord[], bytes: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      queue.push({ records, bytes, resolve, reject });
      sending ??= drain();
    });

  const toRecord = (message: OutgoingMessage): [ProduceRecord, number] => {
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
  };

  const partitionCount = async (topic: string): Promise<number> => {
    const client = await adminClient();
    const metadata = await client.metadata({ topics: [topic] });
    return metadata.topics.get(topic)?.partitionsCount ?? 0;
  };

  /** Offsets per partition at `timestamp` (-1: end, -2: start, else ms: first at or after it). */
  const listOffsets = async (topic: string, timestamp: bigint): Promise<Map<number, bigint>> => {
    const client = await adminClient();
    const count = await partitionCount(topic);
    const listed = await client.listOffsets({
      topics: [
        {
          name: topic,
          partitions: Array.from({ length: count }, (_, partitionIndex) => ({
            partitionIndex,
            timestamp,
          })),
        },
      ],
    });
    const offsets = new Map<number, bigint>();
    for (const entry of listed.find((t) => t.name === topic)?.partitions ?? []) {
      offsets.set(entry.partitionIndex, entry.offset);
    }
    return offsets;
  };

  return {
    name: 'kafka',
    capabilities,

    async ping() {
      assertOpen();
      // A metadata request for no topic: the cluster answers with its brokers.
      await (await adminClient()).metadata({ topics: [] });
    },

    async publish(messages: readonly OutgoingMessage[]) {
      assertOpen();
      checkSize('kafka', capabilities, messages);
      if (messages.length === 0) return;
      await Promise.all([...new Set(messages.map((m) => m.topic))].map(ensureTopic));
      // Requests stay under the broker's size limit; parts go out in order, one after another.
      const parts: Promise<void>[] = [];
      let records: ProduceRecord[] = [];
      let bytes = 0;
      for (const message of messages) {
        const [record, size] = toRecord(message);
        if (records.length > 0 && bytes + size > MAX_REQUEST_BYTES) {
          parts.push(enqueue(records, bytes));
          records = [];
          bytes = 0;
        }
        records.push(record);
        bytes += size;
      }
      parts.push(enqueue(records, bytes));
      const results = await Promise.allSettled(parts);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        throw fail(
          failed.reason,
          'PUBLISH_FAILED',
          `Kafka did not ack ${messages.length} message(s)`,
        );
      }
    },

    async subscribe(subscribe: SubscribeOptions, handler: DeliveryHandler) {
      assertOpen();
      const [k] = await Promise.all([load(), ensureTopic(subscribe.topic)]);
      const group = subscribe.group;
      const groupId = group ?? `ferry-private-${randomUUID()}`;
      const subscription = await KafkaSubscription.start(
        k,
        {
          topic: subscribe.topic,
          groupId,
          commits: group !== undefined,
          from: subscribe.from ?? (group === undefined ? 'latest' : 'earliest'),
          concurrency: subscribe.concurrency ?? 64,
          maxBufferedMessages: options.maxBufferedMessages ?? 2000,
          redeliveryDelayMs: options.redeliveryDelayMs ?? 100,
          commitIntervalMs: options.commitIntervalMs ?? 100,
          clientOptions: {
            ...clientOptions,
            clientId: `${clientId}-consumer`,
            // A JoinGroup request waits for the whole rebalance.
            timeout: Math.max(clientOptions.timeout, (options.rebalanceTimeoutMs ?? 60_000) + 5000),
          },
          sessionTimeoutMs: options.sessionTimeoutMs ?? 30_000,
          heartbeatIntervalMs: options.heartbeatIntervalMs ?? 1000,
          rebalanceTimeoutMs: options.rebalanceTimeoutMs ?? 60_000,
          maxWaitMs: options.maxWaitMs ?? 500,
          maxFetchBytes: options.maxFetchBytes ?? 1_048_576,
          toFerryError: (error, code, what) => fail(error, code, what),
          onError,
          ...(group === undefined
            ? {
                afterClose: async () => {
                  const client = await adminClient();
                  await client.deleteGroups({ groups: [groupId] });
                },
              }
            : {}),
        },
        handler,
      );
      return subscriptions.add((closeOptions?: CloseOptions) => subscription.close(closeOptions));
    },

    async seek(topic: string, group: string, target: SeekTarget) {
      assertOpen();
      await ensureTopic(topic);
      const client = await adminClient();
      try {
        const described = await client.describeGroups({ groups: [group] });
        const live = described.get(group)?.members.size ?? 0;
        if (live > 0) {
          throw new FerryError(
            'INVALID_ARGUMENT',
            `Cannot move group ${group} on ${topic}: it has ${live} live member(s). Close its subscriptions (on every topic the group reads) first.`,
            { details: { topic, group, members: live } },
          );
        }
        let offsets: Map<number, bigint>;
        if ('position' in target) {
          offsets = await listOffsets(topic, target.position === 'earliest' ? -2n : -1n);
        } else if ('timestamp' in target) {
          const at = await listOffsets(topic, BigInt(target.timestamp.getTime()));
          const end = await listOffsets(topic, -1n);
          offsets = new Map(
            [...end].map(([partition, last]) => {
              const found = at.get(partition);
              return [partition, found === undefined || found < 0n ? last : found];
            }),
          );
        } else {
          offsets = new Map();
          for (const [partition, offset] of Object.entries(target.offsets)) {
            if (!/^\d+$/.test(offset)) {
              throw new FerryError('INVALID_ARGUMENT', `Not a Kafka offset: ${offset}`);
            }
            offsets.set(Number(partition), BigInt(offset));
          }
        }
        if (offsets.size === 0) return;
        await client.alterConsumerGroupOffsets({
          groupId: group,
          topics: [
            {
              name: topic,
              partitionOffsets: [...offsets].map(([partition, offset]) => ({ partition, offset })),
            },
          ],
        });
      } catch (error) {
        if (isFerryError(error)) throw error;
        if (hasApiError(error, 'UNKNOWN_MEMBER_ID') || hasApiError(error, 'ILLEGAL_GENERATION')) {
          throw new FerryError(
            'INVALID_ARGUMENT',
            `Cannot move group ${group} on ${topic}: it has live members. Close its subscriptions first.`,
            { cause: error, details: { topic, group } },
          );
        }
        throw fail(error, 'CONNECTION_FAILED', `Could not move group ${group} on ${topic}`);
      }
    },

    async lag(topic: string, group: string): Promise<PartitionLag[]> {
      assertOpen();
      const client = await adminClient();
      try {
        const [committedGroups, ends, starts] = await Promise.all([
          client.listConsumerGroupOffsets({ groups: [group] }),
          listOffsets(topic, -1n),
          listOffsets(topic, -2n),
        ]);
        const committed = new Map<number, bigint>();
        const mine = committedGroups.find((g) => g.groupId === group);
        for (const entry of mine?.topics.find((t) => t.name === topic)?.partitions ?? []) {
          if (entry.committedOffset >= 0n)
            committed.set(entry.partitionIndex, entry.committedOffset);
        }
        return [...ends]
          .sort(([a], [b]) => a - b)
          .map(([partition, end]) => {
            const at = committed.get(partition);
            const from = at ?? starts.get(partition) ?? 0n;
            return {
              partition,
              committed: at?.toString(),
              end: end.toString(),
              lag: Number(end > from ? end - from : 0n),
            };
          });
      } catch (error) {
        throw fail(error, 'CONNECTION_FAILED', `Could not read the lag of ${group} on ${topic}`);
      }
    },

    close(closeOptions?: CloseOptions) {
      done ??= (async () => {
        closed = true;
        await subscriptions.closeAll(closeOptions);
        await sending;
        const clients: Array<Promise<{ close(): Promise<void> } | undefined>> = [
          producer?.catch(() => undefined) ?? Promise.resolve(undefined),
          admin?.catch(() => undefined) ?? Promise.resolve(undefined),
        ];
        await Promise.all(
          clients.map(async (client) => (await client)?.close().catch(() => undefined)),
        );
      })();
      return done;
    },
  };
}

/** Whether a client error (or one it wraps) is the broker error `apiId`. */
function hasApiError(error: unknown, apiId: string): boolean {
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

/** A client error as a FerryError: unreachable brokers, oversized records, else `code`. */
export function toFerryError(
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
  if (isNetworkError(error)) {
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

const MECHANISMS: readonly KafkaSaslMechanism[] = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'];

/** The client's `sasl` and `tls` options, after checking what a JavaScript caller passed. */
function securityOptions(
  options: KafkaTransportOptions,
): Pick<KafkaLib.BaseOptions, 'sasl' | 'tls'> {
  const { sasl, tls } = options;
  if (sasl !== undefined && !MECHANISMS.includes(sasl.mechanism)) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `kafka sasl.mechanism must be one of ${MECHANISMS.join(', ')}, got ${JSON.stringify(sasl.mechanism)}`,
    );
  }
  if (sasl !== undefined && (typeof sasl.username !== 'string' || sasl.username === '')) {
    throw new FerryError('INVALID_ARGUMENT', 'kafka sasl needs a username');
  }
  return {
    ...(sasl === undefined
      ? {}
      : { sasl: { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password } }),
    ...(tls === undefined || tls === false ? {} : { tls: tls === true ? {} : tls }),
  };
}

/** A yes/no query parameter: `1`, `true`, `0`, `false`, or absent. */
function flagParam(url: URL, name: string): boolean | undefined {
  const text = url.searchParams.get(name);
  if (text === null) return undefined;
  if (/^(1|true|yes)$/i.test(text)) return true;
  if (/^(0|false|no)$/i.test(text)) return false;
  throw new FerryError(
    'INVALID_URL',
    `Query parameter ${name} must be 1 or 0, got ${JSON.stringify(text)}`,
  );
}

/**
 * SASL and TLS from a URL: credentials in the user part, the mechanism in `sasl=`
 * (`plain`, `scram-sha-256`, `scram-sha-512`), `tls=1` for TLS and `ca=<file>` for a private CA
 * (which implies TLS). Credentials without a mechanism, or the reverse, are refused: guessing
 * would send a password where the broker did not ask for one.
 */
function securityFromUrl(url: URL): Pick<KafkaTransportOptions, 'sasl' | 'tls'> {
  const mechanism = url.searchParams.get('sasl');
  const username = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  let sasl: KafkaSaslOptions | undefined;
  if (mechanism !== null) {
    const upper = mechanism.toUpperCase() as KafkaSaslMechanism;
    if (!MECHANISMS.includes(upper)) {
      throw new FerryError(
        'INVALID_URL',
        `Query parameter sasl must be plain, scram-sha-256 or scram-sha-512, got ${JSON.stringify(mechanism)}`,
      );
    }
    if (username === '') {
      throw new FerryError(
        'INVALID_URL',
        `sasl=${mechanism} needs credentials in the URL: kafka://user:password@host:port`,
      );
    }
    sasl = { mechanism: upper, username, password };
  } else if (username !== '' || password !== '') {
    throw new FerryError(
      'INVALID_URL',
      'A kafka URL with credentials needs the SASL mechanism: add ?sasl=plain, ?sasl=scram-sha-256 or ?sasl=scram-sha-512',
    );
  }
  const ca = caFromUrl(url);
  let tls: boolean | TlsOptions | undefined = flagParam(url, 'tls');
  if (ca !== undefined) {
    if (tls === false) throw new FerryError('INVALID_URL', 'ca= needs TLS; drop tls=0');
    tls = ca;
  }
  return { ...(sasl === undefined ? {} : { sasl }), ...(tls === undefined ? {} : { tls }) };
}

/**
 * `kafka://[user:password@]host:9092[,host2:9092]?partitions=8&clientId=app&sasl=scram-sha-512&tls=1&ca=/path/ca.pem`.
 * Hosts after the first may also be given as repeated `host=` parameters.
 */
export function kafkaFromUrl(url: URL): Transport {
  const brokers = [url.host, ...url.searchParams.getAll('host')].filter((h) => h.length > 0);
  const partitions = url.searchParams.get('partitions');
  const clientId = url.searchParams.get('clientId');
  return kafka({
    brokers,
    ...securityFromUrl(url),
    ...(partitions === null ? {} : { partitions: Number(partitions) }),
    ...(clientId === null ? {} : { clientId }),
  });
}
