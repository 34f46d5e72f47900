import { FerryError } from '../core/errors.js';
import { redactUrl } from '../core/log.js';
import { parseUrl } from './parse-url.js';
import type { Transport } from './transport.js';
import { TRANSPORTS, type TransportName } from './descriptors.js';

export { parseUrl } from './parse-url.js';

export type TransportOpener = (url: URL) => Transport | Promise<Transport>;

/**
 * How each transport opens from a URL. Each entry loads its driver module only when used, so
 * a URL for one broker never loads another broker's client. Which schemes open which
 * transport is the descriptors' to say.
 */
const openers: Record<TransportName, () => Promise<TransportOpener>> = {
  memory: async () => {
    const { memory } = await import('../transports/memory/index.js');
    return (url) => memory({ url: url.href });
  },
  sqlite: async () => {
    const { sqlite } = await import('../transports/sqlite/index.js');
    return (url) => sqlite({ url: url.href });
  },
  kafka: async () => {
    const { kafka } = await import('../transports/kafka/index.js');
    return (url) => kafka({ url: url.href });
  },
  rabbitmq: async () => {
    const [{ rabbitmq }, { rabbitmqOptionsFromUrl }] = await Promise.all([
      import('../transports/rabbitmq/amqp/index.js'),
      import('../transports/rabbitmq/amqp/options.js'),
    ]);
    return (url) => rabbitmq(rabbitmqOptionsFromUrl(url));
  },
  stomp: async () => {
    const [{ stomp }, { stompOptionsFromUrl }] = await Promise.all([
      import('../transports/rabbitmq/stomp/index.js'),
      import('../transports/rabbitmq/stomp/options.js'),
    ]);
    return (url) => stomp(stompOptionsFromUrl(url));
  },
  redis: async () => {
    const [{ redisPubSub }, { redisPubSubOptionsFromUrl }] = await Promise.all([
      import('../transports/redis/pubsub/index.js'),
      import('../transports/redis/pubsub/options.js'),
    ]);
    return (url) => redisPubSub(redisPubSubOptionsFromUrl(url));
  },
  'redis-streams': async () => {
    const [{ redisStreams }, { redisStreamsOptionsFromUrl }] = await Promise.all([
      import('../transports/redis/streams/index.js'),
      import('../transports/redis/streams/options.js'),
    ]);
    return (url) => redisStreams(redisStreamsOptionsFromUrl(url));
  },
};

const transports: Record<string, () => Promise<TransportOpener>> = Object.fromEntries(
  TRANSPORTS.flatMap(({ name, schemes }) =>
    schemes.map((scheme) => [`${scheme}:`, openers[name]] as const),
  ),
);

export const transportSchemes = (): string[] => Object.keys(transports).map((s) => s.slice(0, -1));

/** `INVALID_URL` for a URL whose scheme is none of `schemes`, naming those it could be. */
export function unknownScheme(kind: string, text: string, schemes: readonly string[]): FerryError {
  const scheme = JSON.stringify(text.slice(0, Math.max(0, text.indexOf(':'))).toLowerCase());
  const supported = schemes.map((s) => `${s}:`).join(', ');
  return new FerryError(
    'INVALID_URL',
    `Unknown ${kind} scheme ${scheme} in ${redactUrl(text)}. Supported: ${supported}`,
  );
}

/** Opens the transport a URL names: `sqlite:./ferry.db`, `kafka://host:9092`, ... */
export async function openTransport(text: string): Promise<Transport> {
  const url = parseUrl(text, 'transport');
  const load = transports[url.protocol];
  if (!load) throw unknownScheme('transport', text, transportSchemes());
  return (await load())(url);
}
