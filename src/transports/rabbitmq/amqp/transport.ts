import type {
  Channel,
  ChannelModel,
  ConfirmChannel,
  ConsumeMessage,
  GetMessage,
  Options,
} from 'amqplib';
import { randomUUID } from 'node:crypto';
import { describeError, FerryError } from '../../../core/errors.js';
import { HEADER, type OutgoingMessage } from '../../../core/message.js';
import type {
  CloseOptions,
  DeliveryHandler,
  PartitionLag,
  RedriveOptions,
  RedriveResult,
  SubscribeOptions,
  Subscription,
  Transport,
} from '../../../transport/transport.js';
import { checkSize, checkSubscribe, InFlight, unsupported } from '../../../transport/shared.js';
import { Connector } from '../connection.js';
import { Lanes } from '../lanes.js';
import { DLQ_SUFFIX, isPermanentAmqpError, Topology, type TopologyOptions } from '../topology.js';
import { Window } from '../window.js';
import { publishOptions, routingKeyOf, toDelivery } from '../wire.js';

export {
  KEY_HEADER,
  ROUTING_KEY_HEADER,
  type AmqpBinding,
  type BindingMap,
  type ExchangeOptions,
  type ExchangeType,
  type TopologyOptions,
} from '../topology.js';
import { capabilitiesOf } from '../../../transport/descriptor.js';
import { caFromUrl, type TlsOptions } from '../../../transport/tls.js';
import { amqpDescriptor } from './descriptor.js';

export interface RabbitMqOptions extends TopologyOptions {
  /** `amqp://user:pass@host:5672/vhost` (or amqplib's connect object). Default `amqp://127.0.0.1`. */
  readonly url?: string | Options.Connect;
  /**
   * TLS settings for an `amqps:` URL, as node:tls takes them: `ca` for a private CA, `cert`
   * and `key` for a client certificate, `servername`, ... Default: the system's CAs.
   */
  readonly tls?: TlsOptions;
  /** Passed to the socket (timeouts, keep-alive, ...); `tls` wins over these. */
  readonly socketOptions?: Record<string, unknown>;
  /**
   * An amqplib connection (what `amqp.connect()` resolves to) your service already has: ferry
   * opens its channels on it instead of connecting, and leaves it open on `close()`. ferry
   * cannot reopen it, so once it drops, publishes and subscriptions fail with
   * `CONNECTION_FAILED`; reconnecting is then yours. `url` and `socketOptions` are ignored.
   */
  readonly connection?: ChannelModel;
  /** Unacknowledged messages the broker pushes to each subscription ahead. Default 100. */
  readonly prefetch?: number;
  /** Unconfirmed publishes on the wire at once, across the transport. Default 1000. */
  readonly maxInFlight?: number;
  /**
   * Publish with `mandatory`: a message no queue takes (nobody bound) fails the publish with
   * `PUBLISH_FAILED` instead of being dropped by the broker. Default false: publishing to a
   * topic nobody subscribes to is normal in pub/sub.
   */
  readonly mandatory?: boolean;
  /**
   * How long `publish` (and `subscribe`) keep trying through a lost connection before
   * rejecting with `CONNECTION_FAILED`. Default 30 s.
   */
  readonly publishTimeoutMs?: number;
  /** Reconnect backoff: first wait and cap. Default 100 ms, 5 s. */
  readonly reconnect?: { readonly initialDelayMs?: number; readonly maxDelayMs?: number };
  /** Wait before giving a rejected delivery back to the queue. Default 50 ms. */
  readonly redeliveryDelayMs?: number;
  readonly maxMessageBytes?: number;
}

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

interface Publisher {
  readonly channel: ConfirmChannel;
  readonly generation: number;
  readonly declared: Map<string, Promise<string>>;
  closed: boolean;
  readonly returned: Set<string>;
  readonly drainWaiters: Set<() => void>;
}

type Outcome = 'ok' | 'retry' | FerryError;

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
 * `close()` stops subscriptions (as `Subscription.close`), waits for publishes in flight and
 * closes the connection.
 */
export function rabbitmq(options: RabbitMqOptions = {}): RabbitMqTransport {
  const capabilities = capabilitiesOf(amqpDescriptor, options.maxMessageBytes);
  const topology = new Topology(options);
  const connector = new Connector({
    url: options.url ?? 'amqp://127.0.0.1',
    ...(options.socketOptions === undefined && options.tls === undefined
      ? {}
      : { socketOptions: { ...options.socketOptions, ...options.tls } }),
    ...(options.connection === undefined ? {} : { connection: options.connection }),
    initialDelayMs: options.reconnect?.initialDelayMs ?? 100,
    maxDelayMs: options.reconnect?.maxDelayMs ?? 5000,
  });
  const prefetch = options.prefetch ?? 100;
  const timeoutMs = options.publishTimeoutMs ?? 30_000;
  const mandatory = options.mandatory ?? false;
  const redeliveryDelayMs = options.redeliveryDelayMs ?? 50;
  const window = new Window(options.maxInFlight ?? 1000);
  const subscriptions = new Set<Subscription>();
  const publishing = new InFlight();
  let publisher: Publisher | undefined;
  let opening: Promise<Publisher> | undefined;
  let closed = false;

  const assertOpen = (): void => {
    if (closed) throw new FerryError('CLOSED', 'rabbitmq transport is closed');
  };

  const openPublisher = async (deadline: number): Promise<Publisher> => {
    const model = await connector.get(deadline);
    const channel = await model.createConfirmChannel();
    const state: Publisher = {
      channel,
      generation: connector.generation,
      declared: new Map(),
      closed: false,
      returned: new Set(),
      drainWaiters: new Set(),
    };
    channel.on('error', () => undefined);
    channel.on('close', () => {
      state.closed = true;
      for (const wake of state.drainWaiters) wake();
    });
    channel.on('drain', () => {
      for (const wake of state.drainWaiters) wake();
      state.drainWaiters.clear();
    });
    channel.on('return', (message: ConsumeMessage) => {
      const id = (message.properties as { messageId?: unknown }).messageId;
      if (typeof id === 'string') state.returned.add(id);
    });
    return state;
  };

  const currentPublisher = async (deadline: number): Promise<Publisher> => {
    for (;;) {
      if (publisher && !publisher.closed && publisher.generation === connector.generation) {
        return publisher;
      }
      opening ??= openPublisher(deadline).finally(() => (opening = undefined));
      publisher = await opening;
    }
  };

  const declare = (state: Publisher, topic: string): Promise<string> => {
    let declared = state.declared.get(topic);
    if (!declared) {
      declared = topology.declareExchange(state.channel, topic);
      declared.catch(() => state.declared.delete(topic));
      state.declared.set(topic, declared);
    }
    return declared;
  };

  const publishBatch = async (messages: readonly OutgoingMessage[]): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    let pending = [...messages];
    let lastError: unknown;
    while (pending.length > 0) {
      if (Date.now() > deadline || closed) {
        throw new FerryError(
          'CONNECTION_FAILED',
          `${pending.length} of ${messages.length} messages were not confirmed by RabbitMQ at ${connector.where} within ${timeoutMs} ms`,
          { cause: lastError },
        );
      }
      let state: Publisher;
      const exchanges = new Map<string, string>();
      try {
        state = await currentPublisher(deadline);
        for (const topic of new Set(pending.map((message) => message.topic))) {
          exchanges.set(topic, await declare(state, topic));
        }
      } catch (error) {
        if (isPermanentAmqpError(error)) {
          throw new FerryError(
            'PUBLISH_FAILED',
            `RabbitMQ refused the topology for ${pending[0]?.topic ?? ''}: ${describeError(error)}`,
            { cause: error },
          );
        }
        if (error instanceof FerryError) throw error;
        lastError = error;
        await sleep(50);
        continue;
      }
      const outcomes = await sendAll(state, exchanges, pending);
      const failure = outcomes.find((outcome): outcome is FerryError => outcome instanceof Error);
      if (failure) throw failure;
      pending = pending.filter((_, index) => outcomes[index] === 'retry');
      if (pending.length > 0) lastError = new Error('connection lost before confirms');
    }
  };

  // Publishes in order without waiting for confirms in between: only a full window (or a
  // full socket buffer) pauses the loop.
  const sendAll = async (
    state: Publisher,
    exchanges: Map<string, string>,
    messages: readonly OutgoingMessage[],
  ): Promise<Outcome[]> => {
    const results: Promise<Outcome>[] = [];
    for (const message of messages) {
      const wait = window.acquire();
      if (wait) await wait;
      if (state.closed) {
        window.release();
        results.push(Promise.resolve('retry'));
        continue;
      }
      let drained: Promise<void> | undefined;
      results.push(
        new Promise<Outcome>((resolve) => {
          const settle = (outcome: Outcome): void => {
            window.release();
            resolve(outcome);
          };
          drained = publishOne(state, exchanges.get(message.topic) ?? '', message, settle);
        }),
      );
      if (drained) await drained;
    }
    return Promise.all(results);
  };

  /** Sends one message; `settle` is called once with its outcome. Returns a drain wait when the socket buffer is full. */
  const publishOne = (
    state: Publisher,
    exchange: string,
    message: OutgoingMessage,
    settle: (outcome: Outcome) => void,
  ): Promise<void> | undefined => {
    const id = message.headers[HEADER.id];
    const routingKey = routingKeyOf(message);
    try {
      const more = state.channel.publish(
        exchange,
        routingKey,
        message.body,
        publishOptions(message, mandatory),
        (error: unknown) => {
          if (error) {
            // amqplib fails pending confirms from its own close listener, before ours marks
            // the channel closed: look once the close has been handled.
            setImmediate(() =>
              settle(
                state.closed
                  ? 'retry'
                  : new FerryError(
                      'PUBLISH_FAILED',
                      `RabbitMQ did not confirm a message for ${message.topic} (nack)`,
                      { cause: error, details: { topic: message.topic, id } },
                    ),
              ),
            );
          } else if (mandatory && id !== undefined && state.returned.delete(id)) {
            settle(
              new FerryError(
                'PUBLISH_FAILED',
                `No queue is bound for a message to ${message.topic} (routing key ${JSON.stringify(routingKey)}); the broker returned it`,
                { details: { topic: message.topic, id } },
              ),
            );
          } else settle('ok');
        },
      );
      if (more || state.closed) return undefined;
      return new Promise<void>((wake) => {
        const done = (): void => {
          state.drainWaiters.delete(done);
          wake();
        };
        state.drainWaiters.add(done);
      });
    } catch {
      settle('retry'); // the channel closed under us
      return undefined;
    }
  };

  const transport: RabbitMqTransport = {
    name: 'rabbitmq',
    capabilities,

    async ping() {
      assertOpen();
      // Opening and closing a channel is one round trip to the broker.
      const model = await connector.get(Date.now() + 2000);
      const channel = await model.createChannel();
      channel.on('error', () => undefined);
      await channel.close();
    },

    async publish(messages: readonly OutgoingMessage[]) {
      assertOpen();
      checkSize('rabbitmq', capabilities, messages);
      if (messages.length === 0) return;
      await publishing.run(publishBatch(messages));
    },

    async subscribe(subscribe: SubscribeOptions, handler: DeliveryHandler) {
      assertOpen();
      checkSubscribe('rabbitmq', capabilities, subscribe);
      topology.bindArgs(subscribe.topic, subscribe.group); // refuse a bad binding up front
      const subscription = new AmqpSubscription({
        connector,
        topology,
        subscribe,
        prefetch,
        lanes: new Lanes(handler, { lanes: subscribe.concurrency ?? 1, redeliveryDelayMs }),
        onClosed: (self) => subscriptions.delete(self),
      });
      await subscription.start(Date.now() + timeoutMs);
      subscriptions.add(subscription);
      return subscription;
    },

    seek() {
      return Promise.reject(
        unsupported(
          'rabbitmq',
          'replay (seek)',
          'A RabbitMQ queue forgets what it has delivered. Use kafka, sqlite or redis-streams for replay, or redrive the dead-letter queue (ferry redrive).',
        ),
      );
    },

    async lag(topic: string, group: string): Promise<PartitionLag[]> {
      assertOpen();
      const model = await connector.get(Date.now() + timeoutMs);
      const channel = await model.createChannel();
      channel.on('error', () => undefined);
      try {
        const { messageCount } = await channel.checkQueue(topology.groupQueue(topic, group));
        return [
          { partition: 0, committed: undefined, end: String(messageCount), lag: messageCount },
        ];
      } catch (error) {
        if ((error as { code?: unknown }).code === 404) return [];
        throw new FerryError('CONNECTION_FAILED', `Could not read the queue of ${group}`, {
          cause: error,
        });
      } finally {
        await channel.close().catch(() => undefined);
      }
    },

    redrive(topic: string, redriveOptions: RedriveOptions = {}) {
      assertOpen();
      return redriveQueue(
        connector,
        topology,
        topic,
        redriveOptions,
        Date.now() + timeoutMs,
        options.maxInFlight ?? 1000,
      );
    },

    async close(closeOptions?: CloseOptions) {
      if (closed) return;
      await Promise.all([...subscriptions].map((s) => s.close(closeOptions)));
      closed = true;
      await publishing.settled();
      if (publisher && !publisher.closed) await publisher.channel.close().catch(() => undefined);
      await connector.close();
    },
  };
  return transport;
}

interface SubscriptionParts {
  readonly connector: Connector;
  readonly topology: Topology;
  readonly subscribe: SubscribeOptions;
  readonly prefetch: number;
  readonly lanes: Lanes;
  readonly onClosed: (self: AmqpSubscription) => void;
}

/** One consumer on its own channel, re-created after the channel or connection is lost. */
class AmqpSubscription implements Subscription {
  private channel: Channel | undefined;
  private consumerTag: string | undefined;
  private closed = false;
  private restarting = false;
  private done: Promise<void> | undefined;
  private readonly privateQueue: string;

  constructor(private readonly parts: SubscriptionParts) {
    this.privateQueue = `${parts.topology.options.prefix ?? ''}${parts.subscribe.topic}:private-${randomUUID()}`;
  }

  async start(deadline: number): Promise<void> {
    const { connector, topology, subscribe, prefetch, lanes } = this.parts;
    const model = await connector.get(deadline);
    const channel = await model.createChannel();
    channel.on('error', () => undefined);
    channel.on('close', () => this.lost(channel));
    try {
      await channel.prefetch(prefetch);
      const queue = await topology.declareSubscription(
        channel,
        subscribe.topic,
        subscribe.group,
        // Named (not server-named) so logs and `rabbitmqctl list_queues` show whose it is.
        { name: this.privateQueue, options: { exclusive: true, autoDelete: true } },
      );
      this.channel = channel;
      const { consumerTag } = await channel.consume(queue, (message) => {
        if (message === null) {
          // The broker cancelled us (queue deleted): start over.
          void channel.close().catch(() => undefined);
          return;
        }
        let settled = false;
        const live = (): boolean => !settled && this.channel === channel && (settled = true);
        lanes.push({
          delivery: toDelivery(subscribe.topic, message),
          redelivered: message.fields.redelivered,
          ack: () => {
            if (live()) channel.ack(message);
          },
          nack: () => {
            if (live()) channel.nack(message, false, true);
          },
        });
      });
      this.consumerTag = consumerTag;
    } catch (error) {
      this.channel = undefined;
      await channel.close().catch(() => undefined);
      if (isPermanentAmqpError(error)) {
        throw new FerryError(
          'INVALID_ARGUMENT',
          `RabbitMQ refused the subscription to ${subscribe.topic}: ${describeError(error)}`,
          { cause: error },
        );
      }
      throw error instanceof FerryError
        ? error
        : new FerryError('CONNECTION_FAILED', `Could not subscribe to ${subscribe.topic}`, {
            cause: error,
          });
    }
  }

  private lost(channel: Channel): void {
    if (channel !== this.channel) return;
    this.channel = undefined;
    this.parts.lanes.reset();
    if (!this.closed) void this.restart();
  }

  private async restart(): Promise<void> {
    if (this.restarting) return;
    this.restarting = true;
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        await this.start(Date.now() + 60_000);
        break;
      } catch {
        await sleep(Math.min(5000, 100 * 2 ** attempt));
      }
    }
    this.restarting = false;
    if (this.closed && this.channel) await this.channel.close().catch(() => undefined);
  }

  close(options?: CloseOptions): Promise<void> {
    this.done ??= (async () => {
      this.closed = true;
      const channel = this.channel;
      if (channel && this.consumerTag !== undefined) {
        await channel.cancel(this.consumerTag).catch(() => undefined);
      }
      const finished = await this.parts.lanes.drain(options?.timeoutMs ?? 30_000);
      if (!finished) this.parts.lanes.abandon();
      // Closing the channel gives every unacked delivery (abandoned handlers) back.
      this.channel = undefined;
      await channel?.close().catch(() => undefined);
      this.parts.onClosed(this);
    })();
    return this.done;
  }
}

async function redriveQueue(
  connector: Connector,
  topology: Topology,
  topic: string,
  options: RedriveOptions,
  deadline: number,
  batch: number,
): Promise<RedriveResult> {
  const source = topology.keeperQueue(`${topic}${DLQ_SUFFIX}`);
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const model = await connector.get(deadline);
  const channel = await model.createConfirmChannel();
  channel.on('error', () => undefined);
  const held: GetMessage[] = [];
  let moved = 0;
  try {
    await channel.checkQueue(source).catch((error: unknown) => {
      throw new FerryError('INVALID_ARGUMENT', `No dead-letter queue ${source} on the broker`, {
        cause: error,
      });
    });
    const exchange = await topology.declareExchange(channel, topic);
    const queues = new Map<string, boolean>();
    const queueExists = async (queue: string): Promise<boolean> => {
      let known = queues.get(queue);
      if (known === undefined) {
        const probe = await model.createChannel();
        probe.on('error', () => undefined);
        known = await probe.checkQueue(queue).then(
          () => true,
          () => false,
        );
        await probe.close().catch(() => undefined);
        queues.set(queue, known);
      }
      return known;
    };
    for (;;) {
      const taken: GetMessage[] = [];
      while (taken.length < batch && moved + taken.length < limit) {
        const message = await channel.get(source, { noAck: false });
        if (message === false) break;
        const delivery = toDelivery(topic, message);
        const group = delivery.headers[HEADER.dlqGroup];
        if (options.group !== undefined && group !== options.group) {
          held.push(message);
          continue;
        }
        const headers = { ...(message.properties.headers as Record<string, unknown>) };
        for (const name of Object.keys(headers)) {
          if (name.startsWith('ferry-dlq-')) delete headers[name];
        }
        const properties: Options.Publish = {
          ...(message.properties as Options.Publish),
          headers,
          persistent: true,
        };
        const target = group === undefined ? undefined : topology.groupQueue(topic, group);
        if (target !== undefined && (await queueExists(target))) {
          channel.sendToQueue(target, message.content, properties);
        } else {
          channel.publish(exchange, message.fields.routingKey, message.content, properties);
        }
        taken.push(message);
      }
      if (taken.length === 0) break;
      await channel.waitForConfirms();
      for (const message of taken) channel.ack(message);
      moved += taken.length;
      if (moved >= limit) break;
    }
    for (const message of held) channel.nack(message, false, true);
    return { moved, kept: held.length };
  } catch (error) {
    throw error instanceof FerryError
      ? error
      : new FerryError('PUBLISH_FAILED', `Redrive of ${topic} failed after ${moved} messages`, {
          cause: error,
        });
  } finally {
    await channel.close().catch(() => undefined);
  }
}

/**
 * Moves dead letters of `topic` back (see {@link RabbitMqTransport.redrive}). Takes the
 * transport, or a URL to open one for the call.
 */
export async function redrive(
  target: RabbitMqTransport | string,
  topic: string,
  options: RedriveOptions & { readonly prefix?: string } = {},
): Promise<RedriveResult> {
  if (typeof target !== 'string') return target.redrive(topic, options);
  const transport = rabbitmqFromUrl(new URL(target), options.prefix);
  try {
    return await transport.redrive(topic, options);
  } finally {
    await transport.close();
  }
}

const OUR_PARAMS = [
  'prefix',
  'prefetch',
  'maxInFlight',
  'mandatory',
  'queueType',
  'singleActiveConsumer',
  'publishTimeoutMs',
  'ca',
] as const;

/**
 * `amqp://user:pass@host:5672/vhost` or `amqps://...`, with optional `prefix`, `prefetch`,
 * `maxInFlight`, `mandatory`, `queueType` (`classic`|`quorum`), `singleActiveConsumer`,
 * `publishTimeoutMs`, and `ca=<file>` (a PEM file) to trust a private CA, which implies TLS
 * (`amqps:`); amqplib's own (`heartbeat`, `frameMax`, ...) pass through.
 */
export function rabbitmqFromUrl(url: URL, prefix?: string): RabbitMqTransport {
  const params = url.searchParams;
  const number = (name: string): number | undefined => {
    const text = params.get(name);
    if (text === null) return undefined;
    const value = Number(text);
    if (!Number.isFinite(value) || value <= 0) {
      throw new FerryError('INVALID_URL', `${name} must be a positive number in the AMQP URL`);
    }
    return value;
  };
  const flag = (name: string): boolean | undefined =>
    params.has(name) ? params.get(name) !== 'false' : undefined;
  const queueType = params.get('queueType');
  if (queueType !== null && queueType !== 'classic' && queueType !== 'quorum') {
    throw new FerryError('INVALID_URL', 'queueType must be classic or quorum');
  }
  const options: Record<string, unknown> = {
    prefix: prefix ?? params.get('prefix') ?? undefined,
    prefetch: number('prefetch'),
    maxInFlight: number('maxInFlight'),
    publishTimeoutMs: number('publishTimeoutMs'),
    mandatory: flag('mandatory'),
    singleActiveConsumer: flag('singleActiveConsumer'),
    queueType: queueType ?? undefined,
  };
  const ca = caFromUrl(url);
  const connectUrl = new URL(url.href);
  for (const name of OUR_PARAMS) connectUrl.searchParams.delete(name);
  if (ca !== undefined) connectUrl.protocol = 'amqps:';
  const defined = Object.fromEntries(
    Object.entries(options).filter(([, value]) => value !== undefined),
  );
  return rabbitmq({
    ...(defined as RabbitMqOptions),
    url: connectUrl.href,
    ...(ca === undefined ? {} : { tls: ca }),
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
