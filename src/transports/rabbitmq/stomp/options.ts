import { FerryError } from '../../../core/errors.js';
import type { TopologyOptions } from '../topology.js';

/** Options of `stomp()`: where the broker is, how publishing and consuming behave. */
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
  /** STOMP heart-beat in both directions, in ms. Default 10 000. */
  readonly heartbeatIntervalMs?: number;
  /** Wait before giving a rejected delivery back. Default 50 ms. */
  readonly redeliveryDelayMs?: number;
  /** Largest body `publish` accepts, in bytes. Default 16 MiB. */
  readonly maxMessageBytes?: number;
  /**
   * Told about background failures, each as a `FerryError` (the client's error in `cause`):
   * a refused or dropped STOMP connection, a STOMP ERROR frame, a subscription that could not
   * resume yet. ferry keeps trying in each case. Default: ignored.
   */
  readonly onError?: (error: FerryError) => void;
}

/** Options from `stomp://user:pass@host:61613/vhost` (`?prefix=`, `?prefetch=`, `?amqpPort=`). */
export function stompOptionsFromUrl(url: URL): StompTransportOptions {
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
  if (prefetch !== null && !(Number(prefetch) > 0)) {
    throw new FerryError('INVALID_URL', 'prefetch must be a positive number in the STOMP URL');
  }
  return {
    url: bare.href,
    ...(prefix === null ? {} : { prefix }),
    ...(prefetch === null ? {} : { prefetch: Number(prefetch) }),
    ...(amqpUrl === undefined ? {} : { amqpUrl }),
  };
}

/** Renamed options: passing the old name is an error that names the new one. */
export function refuseRenamed(options: StompTransportOptions): void {
  if ('heartbeatMs' in options) {
    throw new FerryError('INVALID_ARGUMENT', 'stomp: heartbeatMs is now heartbeatIntervalMs');
  }
}
