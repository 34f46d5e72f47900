// `ferry/rabbitmq`: RabbitMQ over AMQP 0-9-1 (amqplib, loaded on first use).
export {
  KEY_HEADER,
  ROUTING_KEY_HEADER,
  rabbitmq,
  type AmqpBinding,
  type BindingMap,
  type ExchangeOptions,
  type ExchangeType,
  type RabbitMqOptions,
  type RabbitMqTransport,
  type TopologyOptions,
} from './transport.js';
