// `ferry/stomp`: RabbitMQ over STOMP (@stomp/stompjs, loaded on first use).
export { stomp, type StompTransportOptions } from './transport.js';
