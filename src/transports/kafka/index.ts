// `ferry/kafka`: the Kafka transport (@platformatic/kafka, loaded on first use).
export {
  kafka,
  type KafkaSaslMechanism,
  type KafkaSaslOptions,
  type KafkaTransportOptions,
} from './transport.js';
