import { randomBytes } from 'node:crypto';
import { afterAll } from 'vitest';
import { rabbitmq } from '../../src/transports/rabbitmq/amqp/index.js';
import { amqpPublisher } from '../helpers/foreign.js';
import { deleteByPrefix } from '../helpers/rabbitmq.js';
import { serviceUrl } from '../helpers/services.js';
import { transportContract } from './transport.js';

const url = serviceUrl('FERRY_AMQP_URL');
const prefix = `t-${randomBytes(4).toString('hex')}.`;

transportContract(
  'rabbitmq',
  url === undefined
    ? undefined
    : {
        create: () => rabbitmq({ url, prefix, queueArguments: { 'x-expires': 600_000 } }),
        foreign: () => amqpPublisher(url, prefix),
      },
);

// Group queues as quorum queues (replicated with Raft): the same contract must hold.
transportContract(
  'rabbitmq with quorum queues',
  url === undefined
    ? undefined
    : {
        create: () =>
          rabbitmq({ url, prefix, queueType: 'quorum', queueArguments: { 'x-expires': 600_000 } }),
        foreign: () => amqpPublisher(url, prefix),
      },
);

afterAll(async () => {
  if (url !== undefined) await deleteByPrefix(url, prefix);
});
