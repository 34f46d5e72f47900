import { randomBytes } from 'node:crypto';
import { afterAll } from 'vitest';
import { stomp } from '../../src/transports/rabbitmq/stomp/index.js';
import { amqpPublisher } from '../helpers/foreign.js';
import { deleteByPrefix } from '../helpers/rabbitmq.js';
import { serviceUrl } from '../helpers/services.js';
import { transportContract } from './transport.js';

const url = serviceUrl('FERRY_STOMP_URL');
// Declarations go over AMQP (the STOMP adapter cannot declare exchanges); same broker.
const amqpUrl = url === undefined ? undefined : serviceUrl('FERRY_AMQP_URL');
const prefix = `t-${randomBytes(4).toString('hex')}.`;

transportContract(
  'stomp',
  url === undefined
    ? undefined
    : {
        create: () =>
          stomp({
            url,
            ...(amqpUrl === undefined ? {} : { amqpUrl }),
            prefix,
            queueArguments: { 'x-expires': 600_000 },
          }),
        // An AMQP client publishing to the exchanges STOMP consumers read.
        ...(amqpUrl === undefined ? {} : { foreign: () => amqpPublisher(amqpUrl, prefix) }),
      },
);

afterAll(async () => {
  if (amqpUrl !== undefined) await deleteByPrefix(amqpUrl, prefix);
});
