import type { Client, IMessage, StompHeaders } from '@stomp/stompjs';
import type { Channel } from 'amqplib';
import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { loadDriver } from '../../../core/driver.js';
import { describeError, FerryError } from '../../../core/errors.js';
import { redactSecrets, redactUrl } from '../../../core/log.js';
import { permanentConnectFailure } from '../../../transport/connect-failure.js';
import {
  HEADER,
  type Delivery,
  type Headers,
  type OutgoingMessage,
} from '../../../core/message.js';
import type {
  CloseOptions,
  DeliveryHandler,
  PartitionLag,
  SubscribeOptions,
  Subscription,
  Transport,
} from '../../../transport/transport.js';
import { Connector } from '../connection.js';
import { Lanes, type Inbound } from '../lanes.js';
import { isPermanentAmqpError, KEY_HEADER, Topology, type TopologyOptions } from '../topology.js';
import { Window } from '../window.js';
import { routingKeyOf } from '../wire.js';
import { checkSize, checkSubscribe, InFlight } from '../../../transport/shared.js';

export type {
  AmqpBinding,
  BindingMap,
  ExchangeOptions,
  ExchangeType,
  TopologyOptions,
} from '../topology.js';
import { capabilitiesOf } from '../../../transport/descriptor.js';
import { stompDescriptor } from './descriptor.js';

export interface StompTransportOptions extends TopologyOptions {
  /** `stomp://user:pass@host:61613/vhost`. Default `stomp://guest:guest@127.0.0.1:61613`. */
  readonly url?: string;
  /**
   * Where exchanges and group queues are declared. RabbitMQ's STOMP adapter cannot declare
   * an exchange or a headers binding, so ferry declares the topology over AMQP (amqplib)
   * once per topic and group, then moves every message over STOMP. Default: the same host,
   * credentials and vhost on port 5672. `false`: the topology is declared elsewhere (by the
   * AMQP transport or by operations); subscriptions then need their queue to exist.
   */
  readonly amqpUrl?: string | false;
  /** Unacknowledged messages the broker pushes to each subscription ahead. Default 100. */
  readonly prefetch?: number;
  /** Publishes awaiting their receipt at once. Default 1000. */
  readonly maxInFlight?: number;
  /** How long publish and subscribe keep trying through a lost connection. Default 30 s. */
  readonly publishTimeoutMs?: number;
  /** STOMP heart-beat in both directions. Default 10 s. */
  readonly heartbeatMs?: number;
  /** Wait before giving a rejected delivery back. Default 50 ms. */
  readonly redeliveryDelayMs?: number;
  readonly maxMessageBytes?: number;
}

/** STOMP frame headers the broker adds; not part of the message. */
const FRAME_HEADERS = new Set([
  'content-length',
  'ack',
  'message-id',
  'destination',
  'subscription',
  'redelivered',
  'persistent',
  'receipt',
  'amqp-message-id',
  'timestamp',
]);

/** `/` and `%` would end or escape a destination segment. */
function segment(name: string): string {
  return name.replace(/%/g, '%25').replace(/\//g, '%2F');
}

/**
 * STOMP 1.1 header escaping (`\\`, `\n`, `\c`), of names and values, in one pass. ferry
 * speaks STOMP 1.1 and escapes itself: the client library escapes only values, and its
 * unescaping in 1.2 replaces one escape after another, which corrupts values such as `a\\nb`.
 */
export function escapeHeader(text: string): string {
  return text.replace(/[\\\n:]/g, (char) =>
    char === '\\' ? '\\\\' : char === '\n' ? '\\n' : '\\c',
  );
}

/** The reverse of {@link escapeHeader}; an unknown escape is left as it is. */
export function unescapeHeader(text: string): string {
  return text.replace(/\\([\\nc])/g, (_, char: string) =>
    char === 'n' ? '\n' : char === 'c' ? ':' : '\\',
  );
}

/** A STOMP MESSAGE frame as a ferry delivery (from ferry, AMQP clients or other STOMP clients). */
export function stompToDelivery(topic: string, message: IMessage): Delivery {
  const headers: Headers = {};
  let key: string | undefined;
  for (const [escapedName, escapedValue] of Object.entries(message.headers)) {
    const name = unescapeHeader(escapedName);
    const value = unescapeHeader(escapedValue);
    if (name === KEY_HEADER) key = value;
    else if (!FRAME_HEADERS.has(name)) headers[name] = value;
  }
  const id = message.headers['amqp-message-id'];
  if (id !== undefined && headers[HEADER.id] === undefined) headers[HEADER.id] = id;
  const timestamp = Number(message.headers.timestamp);
  if (headers[HEADER.createdAt] === undefined && Number.isFinite(timestamp) && timestamp > 0) {
    headers[HEADER.createdAt] = new Date(timestamp * 1000).toISOString();
  }
  return {
    topic,
    key,
    headers,
    body: Buffer.from(message.binaryBody),
    partition: 0,
    offset: message.headers['message-id'] ?? '',
  };
}

/**
 * ferry headers as STOMP SEND headers (escaped); RabbitMQ maps them onto the same AMQP
 * properties, and every other SEND header onto an AMQP header.
 */
function sendHeaders(message: OutgoingMessage): StompHeaders {
  const headers: StompHeaders = { persistent: 'true' };
  for (const [name, value] of Object.entries(message.headers)) {
    if (name === HEADER.id) headers['amqp-message-id'] = escapeHeader(value);
    else headers[escapeHeader(name)] = escapeHeader(value);
  }
  if (message.key !== undefined) headers[KEY_HEADER] = escapeHeader(message.key);
  const created = Date.parse(message.headers[HEADER.createdAt] ?? '');
  headers.timestamp = String(Math.floor((Number.isNaN(created) ? Date.now() : created) / 1000));
  return headers;
}

interface Session {
  readonly client: Client;
  /** Increases with every STOMP connection; settles from older ones are dropped. */
  generation: number;
  connected: boolean;
  waiters: Set<() => void>;
  receipts: Map<string, (outcome: 'ok' | 'retry') => void>;
}

/**
 * RabbitMQ through its STOMP adapter (`rabbitmq-plugins enable rabbitmq_stomp`), with the
 * same topology as the AMQP transport, so both interoperate: a topic is the exchange
 * `<topic>`, a group the durable queue `<topic>:<group>`.
 *
 * - Publish: `SEND /exchange/<topic>/<routing key>` with `persistent:true` and a receipt
 *   per message; RabbitMQ sends the receipt once the message is confirmed. Many sends are
 *   in flight at once (`maxInFlight`); a dropped connection re-sends the unconfirmed ones
 *   after reconnecting, until `publishTimeoutMs`, then `CONNECTION_FAILED`.
 * - Subscribe: `SUBSCRIBE /amq/queue/<queue>` with `ack:client-individual` and
 *   `prefetch-count`; ack after the handler resolves, NACK (requeue) when it rejects.
 *   Order, redelivery and close as in the AMQP transport (`concurrency` lanes per key).
 * - Headers: user headers travel as STOMP headers (= AMQP headers), `ferry-id` as
 *   `amqp-message-id` (= AMQP message-id), key as `ferry-key`, `content-type` as is.
 * - No replay (`seek` UNSUPPORTED); `redrive` is in `ferry/rabbitmq` (same queues).
 */
/** How long `ping` waits for a STOMP session that is (re)connecting. */
const PING_TIMEOUT_MS = 2000;

export function stomp(options: StompTransportOptions = {}): Transport {
  const url = new URL(options.url ?? 'stomp://guest:guest@127.0.0.1:61613');
  const capabilities = capabilitiesOf(stompDescriptor, options.maxMessageBytes);
  const topology = new Topology(options);
  const login = decodeURIComponent(url.username || 'guest');
  const passcode = decodeURIComponent(url.password || 'guest');
  const vhost = url.pathname.length > 1 ? decodeURIComponent(url.pathname.slice(1)) : '/';
  const amqpUrl =
    options.amqpUrl === false
      ? undefined
      : (options.amqpUrl ??
        `amqp://${encodeURIComponent(login)}:${encodeURIComponent(passcode)}@${url.hostname}:5672/${encodeURIComponent(vhost)}`);
  const connector =
    amqpUrl === undefined
      ? undefined
      : new Connector({ url: amqpUrl, initialDelayMs: 100, maxDelayMs: 5000 });
  const timeoutMs = options.publishTimeoutMs ?? 30_000;
  const prefetch = options.prefetch ?? 100;
  const redeliveryDelayMs = options.redeliveryDelayMs ?? 50;
  const window = new Window(options.maxInFlight ?? 1000);
  const declaredExchanges = new Map<string, Promise<void>>();
  const subscriptions = new Set<StompSubscription>();
  const publishing = new InFlight();
  let session: Promise<Session> | undefined;
  let closed = false;
  let receiptSeq = 0;
  let lastError: unknown;

  const where = redactUrl(url);
  const assertOpen = (): void => {
    if (closed) throw new FerryError('CLOSED', 'stomp transport is closed');
  };

  /** Runs `work` on a short-lived AMQP channel (declarations only). */
  const withChannel = async <T>(work: (channel: Channel) => Promise<T>): Promise<T | undefined> => {
    if (!connector) return undefined;
    const model = await connector.get(Date.now() + timeoutMs);
    const channel = await model.createChannel();
    channel.on('error', () => undefined);
    try {
      return await work(channel);
    } catch (error) {
      if (isPermanentAmqpError(error)) {
        throw new FerryError('INVALID_ARGUMENT', `RabbitMQ refused: ${describeError(error)}`, {
          cause: error,
        });
      }
      throw error;
    } finally {
      await channel.close().catch(() => undefined);
    }
  };

  const declareExchange = (topic: string): Promise<void> => {
    let declared = declaredExchanges.get(topic);
    if (!declared) {
      declared = withChannel((channel) => topology.declareExchange(channel, topic)).then(
        () => undefined,
      );
      declared.catch(() => declaredExchanges.delete(topic));
      declaredExchanges.set(topic, declared);
    }
    return declared;
  };

  const openSession = async (hooks: {
    onConnect?: () => void;
    onDown?: () => void;
  }): Promise<Session> => {
    const [stompjs, tcp] = await Promise.all([
      loadDriver('@stomp/stompjs', () => import('@stomp/stompjs')),
      loadDriver('@stomp/tcp-wrapper', () => import('@stomp/tcp-wrapper')),
    ]);
    const port = Number(url.port || 61613);
    const heartbeat = options.heartbeatMs ?? 10_000;
    const client = new stompjs.Client({
      webSocketFactory: () => new tcp.TCPWrapper(url.hostname, port),
      connectHeaders: { login, passcode, host: vhost },
      // 1.1: headers are escaped and unescaped here (see escapeHeader).
      stompVersions: new stompjs.Versions([stompjs.Versions.V1_1]),
      heartbeatIncoming: heartbeat,
      heartbeatOutgoing: heartbeat,
      reconnectDelay: 100,
      maxReconnectDelay: 5000,
      reconnectTimeMode: stompjs.ReconnectionTimeMode.EXPONENTIAL,
      connectionTimeout: 10_000,
      debug: () => undefined,
    });
    const state: Session = {
      client,
      generation: 0,
      connected: false,
      waiters: new Set(),
      receipts: new Map(),
    };
    const down = (): void => {
      if (!state.connected) return;
      state.connected = false;
      // Unconfirmed sends are sent again on the next connection; deliveries not acked come
      // back from the broker.
      for (const settle of state.receipts.values()) settle('retry');
      state.receipts.clear();
      hooks.onDown?.();
    };
    client.onConnect = () => {
      state.generation++;
      state.connected = true;
      lastError = undefined;
      for (const wake of state.waiters) wake();
      state.waiters.clear();
      hooks.onConnect?.();
    };
    // A refused login or an unknown host before the first connection will not heal: wake
    // whoever waits, so they fail now rather than at their deadline.
    const failed = (error: unknown): void => {
      lastError = error;
      if (state.generation > 0 || permanentConnectFailure(error) === undefined) return;
      for (const wake of state.waiters) wake();
      state.waiters.clear();
    };
    client.onStompError = (frame) => {
      // A missing exchange or queue: declare again on the next try.
      declaredExchanges.clear();
      failed(new Error(`${frame.headers.message ?? 'STOMP error'}: ${frame.body.trim()}`));
    };
    client.onWebSocketClose = () => down();
    client.onWebSocketError = (event: unknown) => {
      failed((event as { message?: unknown }).message ?? event);
    };
    client.activate();
    return state;
  };

  const connected = async (opened: Promise<Session>, deadline: number): Promise<Session> => {
    const state = await opened;
    while (!state.connected) {
      if (closed) throw new FerryError('CLOSED', 'stomp transport is closed');
      const left = deadline - Date.now();
      const permanent = state.generation === 0 ? permanentConnectFailure(lastError) : undefined;
      if (permanent !== undefined) {
        throw new FerryError(
          'CONNECTION_FAILED',
          `Could not connect to RabbitMQ STOMP at ${where}: ${permanent} (${redactSecrets(describeError(lastError))})`,
          { cause: lastError },
        );
      }
      if (left <= 0) {
        throw new FerryError(
          'CONNECTION_FAILED',
          `Could not connect to RabbitMQ STOMP at ${where}${lastError === undefined ? '' : `: ${describeError(lastError)}`}`,
          { cause: lastError },
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done(): void {
          clearTimeout(timer);
          state.waiters.delete(done);
          resolve();
        }
        state.waiters.add(done);
      });
    }
    return state;
  };

  const sendOne = async (message: OutgoingMessage, state: Session): Promise<'ok' | 'retry'> => {
    const wait = window.acquire();
    if (wait) await wait;
    if (!state.connected) {
      window.release();
      return 'retry';
    }
    const receipt = `r${++receiptSeq}`;
    return new Promise((resolve) => {
      state.receipts.set(receipt, (outcome) => {
        window.release();
        resolve(outcome);
      });
      state.client.watchForReceipt(receipt, () => {
        const settle = state.receipts.get(receipt);
        state.receipts.delete(receipt);
        settle?.('ok');
      });
      try {
        // RabbitMQ hands every SEND header on to AMQP consumers: a text body goes as text
        // without content-length (the NUL ends the frame); other bodies need it.
        const text = isUtf8(message.body) && !message.body.includes(0);
        state.client.publish({
          destination: escapeHeader(
            `/exchange/${segment(topology.exchangeName(message.topic))}/${segment(routingKeyOf(message))}`,
          ),
          headers: { ...sendHeaders(message), receipt },
          ...(text
            ? { body: message.body.toString('utf8'), skipContentLengthHeader: true }
            : { binaryBody: message.body }),
        });
      } catch {
        const settle = state.receipts.get(receipt);
        state.receipts.delete(receipt);
        settle?.('retry');
      }
    });
  };

  const publishBatch = async (messages: readonly OutgoingMessage[]): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    try {
      await Promise.all([...new Set(messages.map((m) => m.topic))].map(declareExchange));
    } catch (error) {
      throw error instanceof FerryError && error.code !== 'CONNECTION_FAILED'
        ? new FerryError('PUBLISH_FAILED', error.message, { cause: error })
        : error;
    }
    let pending = [...messages];
    while (pending.length > 0) {
      if (Date.now() > deadline || closed) {
        throw new FerryError(
          'CONNECTION_FAILED',
          `${pending.length} of ${messages.length} messages got no receipt from RabbitMQ STOMP at ${where} within ${timeoutMs} ms`,
          { cause: lastError },
        );
      }
      session ??= openSession({});
      const state = await connected(session, deadline);
      const outcomes = await Promise.all(pending.map((message) => sendOne(message, state)));
      pending = pending.filter((_, index) => outcomes[index] === 'retry');
    }
  };

  const transport: Transport = {
    name: 'stomp',
    capabilities,

    async ping() {
      assertOpen();
      session ??= openSession({});
      await connected(session, Date.now() + PING_TIMEOUT_MS);
    },

    async publish(messages: readonly OutgoingMessage[]) {
      assertOpen();
      checkSize('stomp', capabilities, messages);
      if (messages.length === 0) return;
      await publishing.run(publishBatch(messages));
    },

    async subscribe(subscribe: SubscribeOptions, handler: DeliveryHandler) {
      assertOpen();
      checkSubscribe('stomp', capabilities, subscribe);
      if (subscribe.group === undefined && !connector) {
        throw new FerryError(
          'INVALID_ARGUMENT',
          'A private subscription needs a queue declared over AMQP: give amqpUrl, or a group',
        );
      }
      topology.bindArgs(subscribe.topic, subscribe.group);
      const queue =
        subscribe.group === undefined
          ? `${options.prefix ?? ''}${subscribe.topic}:private-${randomUUID()}`
          : topology.groupQueue(subscribe.topic, subscribe.group);
      const declare = async (): Promise<void> => {
        await withChannel((channel) =>
          topology.declareSubscription(channel, subscribe.topic, subscribe.group, {
            name: queue,
            // Another connection (STOMP) consumes it, so not exclusive: auto-deleted when its
            // consumer goes, expired if it never had one.
            options: { durable: true, autoDelete: true, arguments: { 'x-expires': 60_000 } },
          }),
        );
      };
      await declare();
      const hooks: { self?: StompSubscription } = {};
      // Its own connection: closing it gives every unacked delivery back to the queue, which
      // STOMP has no other way to do once a subscription is gone.
      const own = openSession({
        onConnect: () => hooks.self?.resume(),
        onDown: () => hooks.self?.lost(),
      });
      let state: Session;
      try {
        state = await connected(own, Date.now() + timeoutMs);
      } catch (error) {
        await (await own.catch(() => undefined))?.client.deactivate().catch(() => undefined);
        throw error;
      }
      const subscription = new StompSubscription(
        subscribe.topic,
        escapeHeader(`/amq/queue/${segment(queue)}`),
        prefetch,
        new Lanes(handler, {
          lanes: subscribe.concurrency ?? 1,
          redeliveryDelayMs,
          onClose: 'hold',
        }),
        state,
        declare,
        (self) => subscriptions.delete(self),
      );
      hooks.self = subscription;
      subscriptions.add(subscription);
      subscription.subscribe();
      return subscription;
    },

    seek() {
      return Promise.reject(
        new FerryError(
          'UNSUPPORTED',
          'stomp does not support replay (seek). A RabbitMQ queue forgets what it has delivered. Use kafka, sqlite or redis-streams for replay, or redrive the dead-letter queue (ferry redrive).',
        ),
      );
    },

    async lag(topic: string, group: string): Promise<PartitionLag[]> {
      const count = await withChannel(async (channel) => {
        try {
          return (await channel.checkQueue(topology.groupQueue(topic, group))).messageCount;
        } catch {
          return undefined;
        }
      });
      return count === undefined
        ? []
        : [{ partition: 0, committed: undefined, end: String(count), lag: count }];
    },

    async close(closeOptions?: CloseOptions) {
      if (closed) return;
      await Promise.all([...subscriptions].map((s) => s.close(closeOptions)));
      closed = true;
      await publishing.settled();
      const state = await session?.catch(() => undefined);
      await state?.client.deactivate().catch(() => undefined);
      await connector?.close();
    },
  };
  return transport;
}

/** One STOMP subscription; SUBSCRIBEs again on every new connection. */
class StompSubscription implements Subscription {
  private readonly id = `sub-${randomUUID()}`;
  private active = false;
  private closed = false;
  private done: Promise<void> | undefined;

  constructor(
    private readonly topic: string,
    private readonly destination: string,
    private readonly prefetch: number,
    private readonly lanes: Lanes,
    private readonly session: Session,
    /** Declares the queue again (a private queue is gone once its consumer went away). */
    private readonly declare: () => Promise<void>,
    private readonly onClosed: (self: StompSubscription) => void,
  ) {}

  /** After a reconnect: declare the queue again, then subscribe. */
  resume(): void {
    void (async () => {
      for (let attempt = 0; !this.closed && this.session.connected; attempt++) {
        try {
          await this.declare();
          this.subscribe();
          return;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 100 * 2 ** attempt)));
        }
      }
    })();
  }

  subscribe(): void {
    if (this.closed || !this.session.connected || this.active) return;
    const generation = this.session.generation;
    this.session.client.subscribe(
      this.destination,
      (message) => {
        let settled = false;
        const live = (): boolean =>
          !settled &&
          this.session.connected &&
          this.session.generation === generation &&
          (settled = true);
        const inbound: Inbound = {
          delivery: stompToDelivery(this.topic, message),
          redelivered: message.headers.redelivered === 'true',
          ack: () => {
            if (live()) message.ack();
          },
          nack: () => {
            if (live()) message.nack({ requeue: 'true' });
          },
        };
        this.lanes.push(inbound);
      },
      { id: this.id, ack: 'client-individual', 'prefetch-count': String(this.prefetch) },
    );
    this.active = true;
  }

  lost(): void {
    this.active = false;
    this.lanes.reset();
  }

  close(options?: CloseOptions): Promise<void> {
    this.done ??= (async () => {
      this.closed = true;
      // Stays subscribed while draining: RabbitMQ ignores acks for a subscription that is gone.
      await this.lanes.drain(options?.timeoutMs ?? 30_000);
      this.active = false;
      // Handlers still running are abandoned: closing the connection requeues their messages.
      await this.session.client.deactivate().catch(() => undefined);
      this.onClosed(this);
    })();
    return this.done;
  }
}

/** `stomp://user:pass@host:61613/vhost` (`?prefix=`, `?prefetch=`, `?amqpPort=`). */
export function stompFromUrl(url: URL): Transport {
  const params = url.searchParams;
  const prefix = params.get('prefix');
  const prefetch = params.get('prefetch');
  const amqpPort = params.get('amqpPort');
  const bare = new URL(url.href);
  bare.search = '';
  let amqpUrl: string | undefined;
  if (amqpPort !== null) {
    const vhost = url.pathname.length > 1 ? url.pathname.slice(1) : '%2F';
    amqpUrl = `amqp://${url.username || 'guest'}:${url.password || 'guest'}@${url.hostname}:${amqpPort}/${vhost}`;
  }
  return stomp({
    url: bare.href,
    ...(prefix === null ? {} : { prefix }),
    ...(prefetch === null ? {} : { prefetch: Number(prefetch) }),
    ...(amqpUrl === undefined ? {} : { amqpUrl }),
  });
}
