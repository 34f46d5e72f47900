import { kafka } from '../../src/transports/kafka.js';
import { serviceUrl } from '../helpers/services.js';
import { deadLetterContract } from './dead-letters.js';
import { transportContract } from './transport.js';

const brokers = serviceUrl('FERRY_KAFKA_BROKERS');

// Few partitions and quick group settings keep rebalances (and the suite) short.
transportContract(
  'kafka',
  brokers === undefined
    ? undefined
    : {
        create: () =>
          kafka({
            brokers,
            partitions: 3,
            sessionTimeoutMs: 6000,
            heartbeatIntervalMs: 200,
            rebalanceTimeoutMs: 10_000,
            maxWaitMs: 200,
          }),
      },
);

deadLetterContract(
  'kafka',
  brokers === undefined
    ? undefined
    : {
        create: () =>
          kafka({
            brokers,
            partitions: 3,
            sessionTimeoutMs: 6000,
            heartbeatIntervalMs: 200,
            rebalanceTimeoutMs: 10_000,
            maxWaitMs: 200,
          }),
      },
);
