import type { Channel, Options } from 'amqplib';
import { FerryError } from '../../core/errors.js';
import type { OutgoingMessage } from '../../core/message.js';

/** The AMQP exchange types a topic can map to. */
export type ExchangeType = 'topic' | 'direct' | 'fanout' | 'headers';

/** How ferry declares a topic's exchange (for topics listed in `exchanges`): its type. */
export interface ExchangeOptions {
  /** Default `topic`. */
  readonly type?: ExchangeType;
}

/**
 * How a group's queue is bound to its topic's exchange.
 *
 * - `topic` exchanges: `routingKeys` are patterns (`order.*` one word, `order.#` zero or more);
 *   default `['#']` (everything).
 * - `direct` exchanges: `routingKeys` are exact keys; there is no default (a direct exchange
 *   without a binding routes nothing, so ferry refuses it with `INVALID_ARGUMENT`).
 * - `headers` exchanges: `headers.match` `all` (every value must match) or `any` (one is
 *   enough) against the message headers; default: everything.
 * - `fanout` exchanges ignore both: every bound queue gets every message.
 *
 * A message's routing key is its `ferry-routing-key` header if set, else its key, else ''.
 */
export interface AmqpBinding {
  readonly routingKeys?: readonly string[];
  readonly headers?: {
    readonly match: 'all' | 'any';
    readonly values: Readonly<Record<string, string | number | boolean>>;
  };
}

/**
 * Bindings per topic and group: `{ 'order.created': { billing: { routingKeys: ['eu.#'] } } }`.
 * The group `*` is the fallback for every group of that topic and for private
 * subscriptions. Or a function of `(topic, group)`; `undefined` means the default binding.
 */
export type BindingMap =
  | Readonly<Record<string, Readonly<Record<string, AmqpBinding>>>>
  | ((topic: string, group: string | undefined) => AmqpBinding | undefined);

/** Where topics and groups live on the broker, shared by the AMQP and STOMP transports. */
export interface TopologyOptions {
  /** Exchange type per topic; topics not listed use a `topic` exchange. */
  readonly exchanges?: Readonly<Record<string, ExchangeOptions>>;
  /** Queue bindings per topic and group (see {@link AmqpBinding}). */
  readonly bindings?: BindingMap;
  /** Prepended to every exchange and queue name ferry declares (a namespace per environment). */
  readonly prefix?: string;
  /**
   * Group queues with `x-single-active-consumer`: one member of a group receives at a time,
   * the others stand by and take over when it goes away. Keeps the whole queue in order
   * across members, at the price of members no longer sharing the work. Default false.
   * RabbitMQ refuses to change this on an existing queue (delete the queue first).
   */
  readonly singleActiveConsumer?: boolean;
  /** `quorum` queues are replicated (Raft) and survive the loss of a node. Default `classic`. */
  readonly queueType?: 'classic' | 'quorum';
  /** Extra arguments for group queues (`x-expires`, `x-max-length`, ...). */
  readonly queueArguments?: Readonly<Record<string, unknown>>;
}

/** Header that overrides the routing key a message is published with. */
export const ROUTING_KEY_HEADER = 'ferry-routing-key';
/** Header that carries the message key on AMQP (which has no key of its own). */
export const KEY_HEADER = 'ferry-key';

/** The routing key a message is published with: `ferry-routing-key`, else its key, else ''. */
export function routingKeyOf(message: OutgoingMessage): string {
  return message.headers[ROUTING_KEY_HEADER] ?? message.key ?? '';
}

/** Topics ending so are dead-letter topics; their exchange also feeds a keeper queue. */
export const DLQ_SUFFIX = '.dlq';

const MAX_NAME_BYTES = 255;

function checkName(name: string, what: string): string {
  if (name.length === 0 || Buffer.byteLength(name) > MAX_NAME_BYTES) {
    throw new FerryError(
      'INVALID_NAME',
      `${what} ${JSON.stringify(name)} must be 1 to ${MAX_NAME_BYTES} bytes`,
    );
  }
  if (name.startsWith('amq.')) {
    throw new FerryError('INVALID_NAME', `${what} ${JSON.stringify(name)}: amq.* is reserved`);
  }
  return name;
}

/** Names and bindings of a topology, and the calls that declare them. */
export class Topology {
  constructor(readonly options: TopologyOptions) {}

  exchangeName(topic: string): string {
    return checkName(`${this.options.prefix ?? ''}${topic}`, 'Exchange');
  }

  /** The durable queue of a consumer group. */
  groupQueue(topic: string, group: string): string {
    return checkName(`${this.options.prefix ?? ''}${topic}:${group}`, 'Queue');
  }

  /** The queue that keeps every dead letter of a `<topic>.dlq` topic, consumers or not. */
  keeperQueue(dlqTopic: string): string {
    return checkName(`${this.options.prefix ?? ''}${dlqTopic}`, 'Queue');
  }

  exchangeType(topic: string): ExchangeType {
    return this.options.exchanges?.[topic]?.type ?? 'topic';
  }

  binding(topic: string, group: string | undefined): AmqpBinding | undefined {
    const { bindings } = this.options;
    if (bindings === undefined) return undefined;
    if (typeof bindings === 'function') return bindings(topic, group);
    const forTopic = bindings[topic];
    return (group === undefined ? undefined : forTopic?.[group]) ?? forTopic?.['*'];
  }

  /** `[routingKey, arguments]` pairs binding a queue of `topic` for `group`. */
  bindArgs(
    topic: string,
    group: string | undefined,
  ): Array<[string, Record<string, unknown> | undefined]> {
    const type = this.exchangeType(topic);
    const binding = this.binding(topic, group);
    switch (type) {
      case 'fanout':
        return [['', undefined]];
      case 'headers': {
        const headers = binding?.headers;
        return [['', { 'x-match': headers?.match ?? 'all', ...headers?.values }]];
      }
      case 'topic':
      case 'direct': {
        const keys = binding?.routingKeys ?? (type === 'topic' ? ['#'] : undefined);
        if (keys === undefined || keys.length === 0) {
          throw new FerryError(
            'INVALID_ARGUMENT',
            `Topic ${topic} uses a direct exchange: give routingKeys for group ${group ?? '(private)'} in the bindings option`,
          );
        }
        return keys.map((key) => [key, undefined]);
      }
    }
  }

  /** Binding that routes every message of the exchange (for the dead-letter keeper queue). */
  private everything(topic: string): [string, Record<string, unknown> | undefined] {
    const type = this.exchangeType(topic);
    if (type === 'headers') return ['', { 'x-match': 'all' }];
    return [type === 'topic' ? '#' : '', undefined];
  }

  groupQueueOptions(): Options.AssertQueue {
    const args: Record<string, unknown> = { ...this.options.queueArguments };
    if (this.options.queueType === 'quorum') args['x-queue-type'] = 'quorum';
    if (this.options.singleActiveConsumer === true) args['x-single-active-consumer'] = true;
    return { durable: true, arguments: args };
  }

  async declareExchange(channel: Channel, topic: string): Promise<string> {
    const name = this.exchangeName(topic);
    await channel.assertExchange(name, this.exchangeType(topic), { durable: true });
    if (topic.endsWith(DLQ_SUFFIX)) {
      const keeper = this.keeperQueue(topic);
      await channel.assertQueue(keeper, this.groupQueueOptions());
      const [key, args] = this.everything(topic);
      await channel.bindQueue(keeper, name, key, args);
    }
    return name;
  }

  /**
   * Declares the exchange, the group's durable queue (or, without a group, `privateQueue`)
   * and its bindings. Returns the queue name.
   */
  async declareSubscription(
    channel: Channel,
    topic: string,
    group: string | undefined,
    privateQueue: { name: string; options: Options.AssertQueue } | undefined,
  ): Promise<string> {
    const bindings = this.bindArgs(topic, group); // refuse a bad binding before declaring
    const exchange = await this.declareExchange(channel, topic);
    let queue: string;
    if (group !== undefined) {
      queue = (await channel.assertQueue(this.groupQueue(topic, group), this.groupQueueOptions()))
        .queue;
    } else {
      const spec = privateQueue ?? { name: '', options: { exclusive: true, autoDelete: true } };
      queue = (await channel.assertQueue(spec.name, spec.options)).queue;
    }
    for (const [key, args] of bindings) await channel.bindQueue(queue, exchange, key, args);
    return queue;
  }
}

/** Reply codes that mean the request is wrong, not the moment: retrying cannot help. */
export function isPermanentAmqpError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === 403 || code === 404 || code === 406 || code === 530;
}

/** Why `seek` fails on RabbitMQ (AMQP and STOMP alike), and what to use instead. */
export function refuseSeek(name: string): Promise<never> {
  return Promise.reject(
    new FerryError(
      'UNSUPPORTED',
      `${name} does not support replay (seek). A RabbitMQ queue forgets what it has delivered. Use kafka, sqlite or redis-streams for replay, or redrive the dead-letter queue (ferry redrive).`,
    ),
  );
}
