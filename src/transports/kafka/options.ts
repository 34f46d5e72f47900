import type * as KafkaLib from '@platformatic/kafka';
import { FerryError } from '../../core/errors.js';
import { transportUrl } from '../../transport/parse-url.js';
import { caFromUrl, type TlsOptions } from '../../transport/tls.js';
import { kafkaDescriptor } from './descriptor.js';

/** The SASL mechanisms ferry speaks to Kafka. */
export type KafkaSaslMechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';

/** SASL credentials, as managed Kafka services hand them out. */
export interface KafkaSaslOptions {
  readonly mechanism: KafkaSaslMechanism;
  readonly username: string;
  /** The password, or a function that returns it (called on every new connection). */
  readonly password: string | (() => string | Promise<string>);
}

/**
 * Options of {@link kafka}: where the brokers are (`brokers` or `url`), how to authenticate
 * (`sasl`, `tls`), topic creation defaults, and the consumer group's timing. Every field but
 * the address has a default.
 */
export interface KafkaTransportOptions {
  /**
   * `kafka://[user:password@]host:9092[,host2:9092]?partitions=8&clientId=app&sasl=scram-sha-512&tls=1&ca=/path/ca.pem`:
   * the alternative to `brokers` (with `sasl` and `tls`); options given beside it win.
   */
  readonly url?: string;
  /** Bootstrap brokers as `host:port`, an array or a comma-separated list. Required without `url`. */
  readonly brokers?: readonly string[] | string;
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

const MECHANISMS: readonly KafkaSaslMechanism[] = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'];

/** The client's `sasl` and `tls` options, after checking what a JavaScript caller passed. */
export function securityOptions(
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
 * The options a `kafka://` URL names. Hosts after the first may also be given as repeated
 * `host=` parameters.
 */
function kafkaOptionsFromUrl(url: URL): KafkaTransportOptions {
  const brokers = [url.host, ...url.searchParams.getAll('host')].filter((h) => h.length > 0);
  const partitions = url.searchParams.get('partitions');
  const clientId = url.searchParams.get('clientId');
  return {
    brokers,
    ...securityFromUrl(url),
    ...(partitions === null ? {} : { partitions: Number(partitions) }),
    ...(clientId === null ? {} : { clientId }),
  };
}

/** The options with `url` read (explicit options win over it) and the brokers as a list. */
export function resolveKafkaOptions(
  given: KafkaTransportOptions,
): KafkaTransportOptions & { readonly brokerList: string[] } {
  const options =
    given.url === undefined
      ? given
      : { ...kafkaOptionsFromUrl(transportUrl(given.url, kafkaDescriptor.schemes)), ...given };
  const brokers = options.brokers ?? [];
  const brokerList = (typeof brokers === 'string' ? brokers.split(',') : [...brokers])
    .map((broker) => broker.trim())
    .filter((broker) => broker.length > 0);
  if (brokerList.length === 0) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      'kafka needs at least one broker (host:port) or a url',
    );
  }
  return { ...options, brokerList };
}
