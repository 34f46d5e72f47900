// `ferry/stomp`: RabbitMQ over STOMP (@stomp/stompjs, loaded on first use).
import type { Channel } from 'amqplib';
import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { loadDriver } from '../../../core/driver.js';
import { describeError, FerryError } from '../../../core/errors.js';
import { redactSecrets, redactUrl } from '../../../core/log.js';
import type { OutgoingMessage } from '../../../core/message.js';
import { permanentConnectFailure } from '../../../transport/connect-failure.js';
import {
  capabilitiesOf,
  createTransport,
  errorReporter,
  Semaphore,
} from '../../../transport/kernel.js';
import type { PartitionLag, Transport } from '../../../transport/transport.js';
import { Connector } from '../connection.js';
import { Lanes } from '../lanes.js';
import { isPermanentAmqpError, refuseSeek, routingKeyOf, Topology } from '../topology.js';
import { stompDescriptor } from './descriptor.js';
import { refuseRenamed, type StompTransportOptions } from './options.js';
import { StompSubscription, type Session } from './subscription.js';
import { escapeHeader, segment, sendHeaders } from './wire.js';

export type {
  AmqpBinding,
  BindingMap,
  ExchangeOptions,
  ExchangeType,
  TopologyOptions,
} from '../topology.js';
export type { StompTransportOptions } from './options.js';

/** How long `ping` waits for a STOMP session that is (re)connecting. */
const PING_TIMEOUT_MS = 2000;

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
 * - Background failures (a dropped or refused connection, a STOMP ERROR frame, a
 *   subscription not yet resumed) go to `onError` as `FerryError`s; the transport keeps trying.
 *
 * `close()` stops subscriptions (as `Subscription.close`), waits for publishes in flight (one
 * still retrying through a lost connection gives up with `CONNECTION_FAILED`) and closes the
 * connections. It is idempotent: a second call waits for the first.
 */
export function stomp(options: StompTransportOptions = {}): Transport {
  refuseRenamed(options);
  const name = 'stomp';
  const report = errorReporter(options.onError);
  const onError = (error: FerryError): void => report(error, error.code, error.message);
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
      : new Connector({ url: amqpUrl, initialDelayMs: 100, maxDelayMs: 5000, onError });
  const timeoutMs = options.publishTimeoutMs ?? 30_000;
  const prefetch = options.prefetch ?? 100;
  const redeliveryDelayMs = options.redeliveryDelayMs ?? 50;
  const window = new Semaphore(options.maxInFlight ?? 1000);
  const declaredExchanges = new Map<string, Promise<void>>();
  let session: Promise<Session> | undefined;
  let closing = false;
  let receiptSeq = 0;
  let lastError: unknown;

  const where = redactUrl(url);

  /** Runs `work` on a short-lived AMQP channel (declarations only). */
  const withChannel = async <T>(work: (channel: Channel) => Promise<T>): Promise<T | undefined> => {
    if (!connector) return undefined;
    try {
      return await connector.withChannel(Date.now() + timeoutMs, work);
    } catch (error) {
      if (isPermanentAmqpError(error)) {
        throw new FerryError('INVALID_ARGUMENT', `RabbitMQ refused: ${describeError(error)}`, {
          cause: error,
        });
      }
      throw error;
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
    const heartbeat = options.heartbeatIntervalMs ?? 10_000;
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
      if (state.generation > 0) {
        onError(
          new FerryError(
            'CONNECTION_FAILED',
            `RabbitMQ STOMP at ${where}: ${redactSecrets(describeError(error))}; reconnecting`,
            { cause: error },
          ),
        );
        return;
      }
      if (permanentConnectFailure(error) === undefined) return;
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
      if (closing) throw new FerryError('CLOSED', 'stomp transport is closed');
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
    if (!window.tryAcquire()) await window.acquire();
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
      if (Date.now() > deadline || closing) {
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

  const transport = createTransport({
    name,
    capabilities,

    async ping() {
      session ??= openSession({});
      await connected(session, Date.now() + PING_TIMEOUT_MS);
    },

    publish: publishBatch,

    async subscribe(subscribe, handler) {
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
        onError,
      );
      hooks.self = subscription;
      subscription.subscribe();
      return (closeOptions) => subscription.close(closeOptions);
    },

    seek: () => refuseSeek(name),

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

    // A publish still retrying through a lost connection gives up once closing starts, so
    // close() does not wait out its publishTimeoutMs.
    closing() {
      closing = true;
    },

    async close() {
      const state = await session?.catch(() => undefined);
      await state?.client.deactivate().catch(() => undefined);
      await connector?.close();
    },
  });
  return transport;
}
