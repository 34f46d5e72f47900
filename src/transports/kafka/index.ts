// `ferry/kafka`: the Kafka transport (@platformatic/kafka, loaded on first use).
import { randomUUID } from 'node:crypto';
import type * as KafkaLib from '@platformatic/kafka';
import { loadDriver } from '../../core/driver.js';
import { FerryError, isFerryError, type FerryErrorCode } from '../../core/errors.js';
import type { OutgoingMessage } from '../../core/message.js';
import {
  assertPartitions,
  capabilitiesOf,
  createTransport,
  errorReporter,
} from '../../transport/kernel.js';
import type {
  CloseOptions,
  DeliveryHandler,
  PartitionLag,
  SeekTarget,
  SubscribeOptions,
  Transport,
} from '../../transport/transport.js';
import { kafkaDescriptor } from './descriptor.js';
import { resolveKafkaOptions, securityOptions, type KafkaTransportOptions } from './options.js';
import { KafkaSubscription } from './subscription.js';
import {
  hasApiError,
  kafkaError,
  keyPartitioner,
  MAX_REQUEST_BYTES,
  toRecord,
  type Lib,
  type PendingSend,
  type Producer,
  type ProduceRecord,
} from './wire.js';

export type { KafkaSaslMechanism, KafkaSaslOptions, KafkaTransportOptions } from './options.js';

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
export function kafka(given: KafkaTransportOptions): Transport {
  const options = resolveKafkaOptions(given);
  const brokers = options.brokerList;
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
  const report = errorReporter(options.onError);
  const onError = (error: FerryError): void => report(error, error.code, 'kafka');

  let lib: Promise<Lib> | undefined;
  let producer: Promise<Producer> | undefined;
  let admin: Promise<KafkaLib.Admin> | undefined;
  const topics = new Map<string, Promise<void>>();
  const queue: PendingSend[] = [];
  let sending: Promise<void> | undefined;

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

  const fail = (error: unknown, code: FerryErrorCode, what: string): FerryError =>
    kafkaError(error, code, what, where);

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

  return createTransport({
    name: 'kafka',
    capabilities,

    async ping() {
      // A metadata request for no topic: the cluster answers with its brokers.
      await (await adminClient()).metadata({ topics: [] });
    },

    async publish(messages: readonly OutgoingMessage[]) {
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
      return (closeOptions?: CloseOptions) => subscription.close(closeOptions);
    },

    async seek(topic: string, group: string, target: SeekTarget) {
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

    async close() {
      await sending;
      const clients: Array<Promise<{ close(): Promise<void> } | undefined>> = [
        producer?.catch(() => undefined) ?? Promise.resolve(undefined),
        admin?.catch(() => undefined) ?? Promise.resolve(undefined),
      ];
      await Promise.all(
        clients.map(async (client) => (await client)?.close().catch(() => undefined)),
      );
    },
  });
}
