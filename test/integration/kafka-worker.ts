// A consumer in its own process, for the crash test: prints `<payload>` for every message
// it handled, just before acknowledging it, and runs until it is killed.
import { kafka } from '../../src/transports/kafka/index.js';

const { FERRY_KAFKA_BROKERS: brokers, TOPIC: topic, GROUP: group } = process.env;
if (!brokers || !topic || !group)
  throw new Error('FERRY_KAFKA_BROKERS, TOPIC and GROUP are required');

const transport = kafka({
  brokers,
  sessionTimeoutMs: 6000,
  heartbeatIntervalMs: 200,
  rebalanceTimeoutMs: 10_000,
  maxWaitMs: 200,
});
await transport.subscribe({ topic, group }, async (delivery) => {
  await new Promise((resolve) => setTimeout(resolve, 2));
  process.stdout.write(`${delivery.body.toString()}\n`);
});
process.stdout.write('ready\n');
