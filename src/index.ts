export * from './errors.js';
export * from './message.js';
export * from './codec.js';
export * from './topic.js';
export * from './transport.js';
export * from './retry.js';
export * from './bus.js';
export * from './redrive.js';
export {
  auditFromEnv,
  createLogger,
  redactUrl,
  redactSecrets,
  type Logger,
  type LogOptions,
} from './log.js';
export * from './outbox/store.js';
export * from './outbox/outbox.js';
export * from './outbox/relay.js';
export * from './dead-letters.js';
export * from './outbox/inspect.js';
export * from './observability/index.js';
