// `ferry/rabbitmq`: RabbitMQ over AMQP 0-9-1 (amqplib, loaded on first use).
import { FerryError } from '../../../core/errors.js';
import { capabilitiesOf, createTransport, errorReporter } from '../../../transport/kernel.js';
import type {
  PartitionLag,
  RedriveOptions,
  RedriveResult,
  Transport,
} from '../../../transport/transport.js';
import { Connector } from '../connection.js';
import { Lanes } from '../lanes.js';
import { refuseSeek, Topology } from '../topology.js';
import { amqpDescriptor } from './descriptor.js';
import type { RabbitMqOptions } from './options.js';
import { Publisher } from './publisher.js';
import { redriveQueue } from './redrive.js';
import { AmqpSubscription } from './subscription.js';

export {
  KEY_HEADER,
  ROUTING_KEY_HEADER,
  type AmqpBinding,
  type BindingMap,
  type ExchangeOptions,
  type ExchangeType,
  type TopologyOptions,
} from '../topology.js';
export type { RabbitMqOptions } from './options.js';

/** The RabbitMQ transport, with the operations only RabbitMQ has. */
export interface RabbitMqTransport extends Transport {
  /**
   * Moves dead letters of `topic` (kept in the durable queue `<topic>.dlq`) back: each to the
   * queue of the group it failed in (header `ferry-dlq-group`), or to the topic's exchange
   * when it came from a private subscription. The `ferry-dlq-*` headers are dropped; id, key
   * and the other headers stay. Each message is acked in the DLQ only after the broker
   * confirmed its copy, so a crash midway duplicates, never loses.
   */
  redrive(topic: string, options?: RedriveOptions): Promise<RedriveResult>;
}

/**
 * RabbitMQ over AMQP 0-9-1 (amqplib).
 *
 * - A topic is a durable exchange (`topic` type unless `exchanges` says otherwise); a
 *   consumer group is a durable queue `<topic>:<group>` bound to it (`bindings`), so every
 *   group gets every message it is bound for and the members of a group compete for them.
 *   A private subscription gets an exclusive, auto-deleted queue.
 * - Publishing: persistent messages on a confirm channel, up to `maxInFlight` unconfirmed
 *   at once; `publish` resolves when the broker confirmed every message of the batch. If
 *   the connection drops, unconfirmed messages are published again on the next connection
 *   (possible duplicates, never a silent loss) until `publishTimeoutMs`, then the call
 *   rejects with `CONNECTION_FAILED`. A broker nack rejects with `PUBLISH_FAILED`.
 * - Order: a queue hands messages out in order. With `concurrency` 1 (default) a
 *   subscription handles them one at a time; with `concurrency: n` up to n keys run at once,
 *   order kept per key. Several members of one group break order between them (each gets a
 *   share): use `singleActiveConsumer` where order across the whole queue matters.
 * - A rejected handler: the message is nacked with requeue and comes back before later
 *   messages of its key (see `Lanes`).
 * - A group queue exists from its first subscription: messages published before that are not
 *   in it (`from` has no effect), and no replay (`seek` is UNSUPPORTED).
 * - `<topic>.dlq` topics also keep every dead letter in the durable queue `<topic>.dlq`, for
 *   `redrive`.
 * - After a broker restart or a dropped connection the transport reconnects, declares its
 *   topology again and resumes every subscription; deliveries not acked by then come back.
 *
 * - Background failures (a dropped connection, a failed reconnect, a subscription not yet
 *   resumed) go to `onError` as `FerryError`s; the transport keeps trying.
 *
 * `close()` stops subscriptions (as `Subscription.close`), waits for publishes in flight (one
 * still retrying through a lost connection gives up with `CONNECTION_FAILED`) and closes the
 * connection. It is idempotent: a second call waits for the first.
 */
export function rabbitmq(options: RabbitMqOptions = {}): RabbitMqTransport {
  const name = 'rabbitmq';
  const capabilities = capabilitiesOf(amqpDescriptor, options.maxMessageBytes);
  const topology = new Topology(options);
  const report = errorReporter(options.onError);
  const onError = (error: FerryError): void => report(error, error.code, error.message);
  const connector = new Connector({
    url: options.url ?? 'amqp://127.0.0.1',
    ...(options.socketOptions === undefined && options.tls === undefined
      ? {}
      : { socketOptions: { ...options.socketOptions, ...options.tls } }),
    ...(options.connection === undefined ? {} : { connection: options.connection }),
    initialDelayMs: options.reconnect?.initialDelayMs ?? 100,
    maxDelayMs: options.reconnect?.maxDelayMs ?? 5000,
    onError,
  });
  const prefetch = options.prefetch ?? 100;
  const timeoutMs = options.publishTimeoutMs ?? 30_000;
  const redeliveryDelayMs = options.redeliveryDelayMs ?? 50;
  const maxInFlight = options.maxInFlight ?? 1000;
  let closing = false;
  const publisher = new Publisher({
    connector,
    topology,
    maxInFlight,
    mandatory: options.mandatory ?? false,
    timeoutMs,
    closed: () => closing,
  });

  const transport = createTransport({
    name,
    capabilities,

    async ping() {
      // Opening a channel is one round trip to the broker.
      await connector.withChannel(Date.now() + 2000, async () => undefined);
    },

    publish: (messages) => publisher.publish(messages),

    async subscribe(subscribe, handler) {
      topology.bindArgs(subscribe.topic, subscribe.group); // refuse a bad binding up front
      const subscription = new AmqpSubscription({
        connector,
        topology,
        subscribe,
        prefetch,
        lanes: new Lanes(handler, { lanes: subscribe.concurrency ?? 1, redeliveryDelayMs }),
        onError,
      });
      await subscription.start(Date.now() + timeoutMs);
      return (closeOptions) => subscription.close(closeOptions);
    },

    seek: () => refuseSeek(name),

    lag(topic: string, group: string): Promise<PartitionLag[]> {
      const queue = topology.groupQueue(topic, group);
      return connector.withChannel(Date.now() + timeoutMs, async (channel) => {
        try {
          const { messageCount } = await channel.checkQueue(queue);
          return [
            { partition: 0, committed: undefined, end: String(messageCount), lag: messageCount },
          ];
        } catch (error) {
          if ((error as { code?: unknown }).code === 404) return [];
          throw new FerryError('CONNECTION_FAILED', `Could not read the queue of ${group}`, {
            cause: error,
          });
        }
      });
    },

    redrive: (topic, redriveOptions = {}) =>
      redriveQueue(connector, topology, topic, redriveOptions, Date.now() + timeoutMs, maxInFlight),

    // A publish still retrying through a lost connection gives up once closing starts, so
    // close() does not wait out its publishTimeoutMs.
    closing() {
      closing = true;
    },

    async close() {
      await publisher.close();
      await connector.close();
    },
  });
  return transport as RabbitMqTransport;
}
