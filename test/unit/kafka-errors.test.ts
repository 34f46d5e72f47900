// How the Kafka transport names what @platformatic/kafka throws: the errors are the
// library's own classes, built as its connection code builds them from a broker's answer.
import { MultipleErrors, NetworkError, ResponseError, TimeoutError } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import { kafkaError } from '../../src/transports/kafka/wire.js';

/** A produce response carrying Kafka error `code` for one partition. */
const answer = (code: number): ResponseError =>
  new ResponseError(0, 9, { '/orders/0': [code, null] }, {});

const named = (error: unknown): string =>
  kafkaError(error, 'PUBLISH_FAILED', 'publish to orders', '127.0.0.1:9092').code;

describe('kafkaError', () => {
  it('names a cluster failing over an outage, whichever answer shows it', () => {
    const failover = {
      NOT_LEADER_OR_FOLLOWER: 6,
      LEADER_NOT_AVAILABLE: 5,
      REQUEST_TIMED_OUT: 7,
      NETWORK_EXCEPTION: 13,
      COORDINATOR_NOT_AVAILABLE: 15,
      NOT_COORDINATOR: 16,
      NOT_ENOUGH_REPLICAS: 19,
      NOT_ENOUGH_REPLICAS_AFTER_APPEND: 20,
      KAFKA_STORAGE_ERROR: 56,
    };
    for (const [name, code] of Object.entries(failover)) {
      expect([name, named(answer(code))]).toEqual([name, 'CONNECTION_FAILED']);
      // Wrapped, as the client's retries wrap the last answer.
      const wrapped = new MultipleErrors('retries exhausted', [answer(code)]);
      expect([name, named(wrapped)]).toEqual([name, 'CONNECTION_FAILED']);
    }
  });

  it('names unreachable brokers an outage, with the reason in the message', () => {
    const refused = new NetworkError('Connection to 127.0.0.1:9092 failed.', {
      cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9092'), {
        code: 'ECONNREFUSED',
      }),
    });
    const error = kafkaError(refused, 'PUBLISH_FAILED', 'publish to orders', '127.0.0.1:9092');
    expect(error.code).toBe('CONNECTION_FAILED');
    expect(error.message).toContain('ECONNREFUSED');
    expect(named(new TimeoutError('Request timed out.'))).toBe('CONNECTION_FAILED');
  });

  it('names a record too large as such, and a refused record by the code it is given', () => {
    expect(named(answer(10))).toBe('MESSAGE_TOO_LARGE'); // MESSAGE_TOO_LARGE
    expect(named(answer(18))).toBe('MESSAGE_TOO_LARGE'); // RECORD_LIST_TOO_LARGE
    expect(named(answer(87))).toBe('PUBLISH_FAILED'); // INVALID_RECORD
    expect(named(answer(29))).toBe('PUBLISH_FAILED'); // TOPIC_AUTHORIZATION_FAILED
    expect(named(new Error('something else'))).toBe('PUBLISH_FAILED');
  });
});
