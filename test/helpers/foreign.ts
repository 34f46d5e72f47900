import amqp from 'amqplib';
import Sqlite from 'better-sqlite3';
import { Redis } from 'ioredis';
import * as kafkaLib from '@platformatic/kafka';
import { partitionFor } from '../../src/core/message.js';

/** A message as a client that is not ferry sends it: no `ferry-id`, no `ferry-created-at`. */
export interface ForeignMessage {
  readonly body: Buffer;
  readonly key?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * Publishes to the broker under test with its own raw client (not ferry), as other services
 * and command-line tools do.
 */
export interface ForeignPublisher {
  /** Headers reach consumers (false where the wire has none: Redis Pub/Sub). */
  readonly headers: boolean;
  publish(topic: string, messages: readonly ForeignMessage[]): Promise<void>;
  /** Writes a message whose envelope the transport cannot read, where the broker allows one. */
  publishUnreadable?(topic: string, key: string): Promise<void>;
  close(): Promise<void>;
}

/** An AMQP publisher (amqplib) to the exchange of `prefix + topic`, routing key = key. */
export async function amqpPublisher(url: string, prefix: string): Promise<ForeignPublisher> {
  const connection = await amqp.connect(url);
  const channel = await connection.createConfirmChannel();
  return {
    headers: true,
    async publish(topic, messages) {
      for (const message of messages) {
        channel.publish(`${prefix}${topic}`, message.key ?? '', message.body, {
          persistent: true,
          headers: {
            ...message.headers,
            ...(message.key === undefined ? {} : { 'ferry-key': message.key }),
          },
        });
      }
      await channel.waitForConfirms();
    },
    async close() {
      await connection.close();
    },
  };
}

/** `PUBLISH prefix+topic body` with ioredis, as `redis-cli PUBLISH` does. */
export function redisPublisher(url: string, prefix: string): ForeignPublisher {
  const client = new Redis(url);
  return {
    headers: false,
    async publish(topic, messages) {
      for (const message of messages) await client.publish(`${prefix}${topic}`, message.body);
    },
    async close() {
      await client.quit();
    },
  };
}

/** `XADD` with ioredis: the headers as fields, then `body`; the stream picked by ferry's key hash. */
export function redisStreamsPublisher(
  url: string,
  prefix: string,
  partitions: number,
): ForeignPublisher {
  const client = new Redis(url);
  return {
    headers: true,
    async publish(topic, messages) {
      for (const message of messages) {
        const partition =
          partitions === 1 || message.key === undefined ? 0 : partitionFor(message.key, partitions);
        const stream = partitions === 1 ? `${prefix}${topic}` : `${prefix}${topic}:${partition}`;
        const fields: Array<string | Buffer> = [];
        for (const [name, value] of Object.entries(message.headers ?? {})) fields.push(name, value);
        if (message.key !== undefined) fields.push('ferry-key', message.key);
        fields.push('body', message.body);
        await client.xadd(stream, '*', ...fields);
      }
    },
    async close() {
      await client.quit();
    },
  };
}

/** A producer of `@platformatic/kafka` with Kafka's default (murmur2) partitioner. */
export function kafkaPublisher(brokers: string, partitions: number): ForeignPublisher {
  const options = { clientId: 'foreign', bootstrapBrokers: brokers.split(',') };
  const producer = new kafkaLib.Producer<string, Buffer, string, string>({
    ...options,
    serializers: {
      key: kafkaLib.stringSerializer,
      headerKey: kafkaLib.stringSerializer,
      headerValue: kafkaLib.stringSerializer,
    },
  });
  const admin = new kafkaLib.Admin(options);
  const created = new Set<string>();
  return {
    headers: true,
    async publish(topic, messages) {
      if (!created.has(topic)) {
        await admin.createTopics({ topics: [topic], partitions }).catch((error: unknown) => {
          const exists = (error as { findBy?: (key: string, value: string) => unknown }).findBy?.(
            'apiId',
            'TOPIC_ALREADY_EXISTS',
          );
          if (exists === undefined || exists === null) throw error;
        });
        created.add(topic);
      }
      await producer.send({
        messages: messages.map((message) => ({
          topic,
          value: message.body,
          headers: { ...message.headers },
          ...(message.key === undefined ? {} : { key: message.key }),
        })),
      });
    },
    async close() {
      await Promise.all([producer.close(), admin.close()]);
    },
  };
}

/**
 * Another program appending to ferry's SQLite log file with plain SQL (the schema is
 * documented in the transport), topic rows created as the transport would.
 */
export function sqliteLogPublisher(path: string, partitions: number): ForeignPublisher {
  const db = new Sqlite(path);
  db.pragma('busy_timeout = 10000');
  const append = (topic: string, key: string | undefined, headers: string, body: Buffer): void => {
    db.transaction(() => {
      db.prepare('insert or ignore into ferry_topics (topic, partitions) values (?, ?)').run(
        topic,
        partitions,
      );
      const count = (
        db.prepare('select partitions from ferry_topics where topic = ?').get(topic) as {
          partitions: number;
        }
      ).partitions;
      for (let p = 0; p < count; p++) {
        db.prepare(
          'insert or ignore into ferry_partitions (topic, partition, next_offset) values (?, ?, 0)',
        ).run(topic, p);
      }
      const partition = key === undefined ? 0 : partitionFor(key, count);
      const { next_offset: offset } = db
        .prepare('select next_offset from ferry_partitions where topic = ? and partition = ?')
        .get(topic, partition) as { next_offset: number };
      db.prepare(
        'insert into ferry_messages (topic, partition, offset, key, headers, body, created_at) values (?, ?, ?, ?, ?, ?, ?)',
      ).run(topic, partition, offset, key ?? null, headers, body, Date.now());
      db.prepare(
        'update ferry_partitions set next_offset = ? where topic = ? and partition = ?',
      ).run(offset + 1, topic, partition);
    }).immediate();
  };
  return {
    headers: true,
    publish(topic, messages) {
      for (const message of messages) {
        append(topic, message.key, JSON.stringify(message.headers ?? {}), message.body);
      }
      return Promise.resolve();
    },
    publishUnreadable(topic, key) {
      append(topic, key, '{not json', Buffer.from('"unreadable"'));
      return Promise.resolve();
    },
    close() {
      db.close();
      return Promise.resolve();
    },
  };
}
