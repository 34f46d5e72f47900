import { readFileSync } from 'node:fs';
import { kafka } from '../../src/transports/kafka/index.js';
import { kafkaPublisher } from '../helpers/foreign.js';
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
        foreign: () => kafkaPublisher(brokers, 3),
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

// The same contract through SCRAM-SHA-512 over TLS, the way managed Kafka services are reached.
const secured = serviceUrl('FERRY_KAFKA_SASL_TLS_BROKERS');
const caFile = serviceUrl('FERRY_KAFKA_CA');
transportContract(
  'kafka over SASL_SSL (SCRAM-SHA-512)',
  secured === undefined || caFile === undefined
    ? undefined
    : {
        create: () =>
          kafka({
            brokers: secured,
            sasl: {
              mechanism: 'SCRAM-SHA-512',
              username: process.env.FERRY_KAFKA_USER ?? 'ferry',
              password: process.env.FERRY_KAFKA_PASSWORD ?? 'ferry-secret',
            },
            tls: { ca: readFileSync(caFile, 'utf8') },
            partitions: 3,
            sessionTimeoutMs: 6000,
            heartbeatIntervalMs: 200,
            rebalanceTimeoutMs: 10_000,
            maxWaitMs: 200,
          }),
      },
);
