import type { ChannelModel, Options } from 'amqplib';
import { FerryError } from '../../../core/errors.js';
import { caFromUrl, type TlsOptions } from '../../../transport/tls.js';
import type { TopologyOptions } from '../topology.js';

/** Options of `rabbitmq()`: where the broker is, how publishing and consuming behave. */
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
  /** Largest body `publish` accepts, in bytes. Default 16 MiB. */
  readonly maxMessageBytes?: number;
  /**
   * Told about background failures, each as a `FerryError` (the client's error in `cause`):
   * a dropped connection, a failed reconnect, a subscription that could not resume yet.
   * ferry keeps trying in each case. Default: ignored.
   */
  readonly onError?: (error: FerryError) => void;
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
 * Options from `amqp://user:pass@host:5672/vhost` or `amqps://...`, with optional `prefix`,
 * `prefetch`, `maxInFlight`, `mandatory`, `queueType` (`classic`|`quorum`),
 * `singleActiveConsumer`, `publishTimeoutMs`, and `ca=<file>` (a PEM file) to trust a
 * private CA, which implies TLS (`amqps:`); amqplib's own (`heartbeat`, `frameMax`, ...)
 * pass through in `url`.
 */
export function rabbitmqOptionsFromUrl(url: URL): RabbitMqOptions {
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
    prefix: params.get('prefix') ?? undefined,
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
  return {
    ...(defined as RabbitMqOptions),
    url: connectUrl.href,
    ...(ca === undefined ? {} : { tls: ca }),
  };
}
