import { afterAll } from 'vitest';
import { redisPubSub, redisStreams } from '../../src/transports/redis/index.js';
import { deleteKeys } from '../helpers/redis.js';
import { redisPublisher, redisStreamsPublisher } from '../helpers/foreign.js';
import { serviceUrl } from '../helpers/services.js';
import { uniqueName } from '../helpers/wait.js';
import { deadLetterContract } from './dead-letters.js';
import { transportContract } from './transport.js';

const url = serviceUrl('FERRY_REDIS_URL');
const prefix = `${uniqueName('ferry-contract')}:`;

transportContract(
  'redis (Pub/Sub)',
  url === undefined
    ? undefined
    : {
        create: () => redisPubSub({ url, prefix }),
        foreign: () => redisPublisher(url, prefix),
      },
);

// Four streams per topic so that two members of a group both get work; short leases so a
// stopped member's streams move on quickly.
transportContract(
  'redis-streams',
  url === undefined
    ? undefined
    : {
        create: () =>
          redisStreams({
            url,
            prefix,
            partitions: 4,
            sessionTimeoutMs: 1500,
            blockMs: 1000,
            redeliveryDelayMs: 20,
          }),
        foreign: () => redisStreamsPublisher(url, prefix, 4),
      },
);

deadLetterContract(
  'redis-streams',
  url === undefined
    ? undefined
    : {
        create: () =>
          redisStreams({ url, prefix, partitions: 4, blockMs: 1000, redeliveryDelayMs: 20 }),
      },
);

afterAll(async () => {
  if (url !== undefined) await deleteKeys(url, prefix);
});
