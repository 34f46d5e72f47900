export * from './errors.js';
export * from './message.js';
export * from './codec.js';
export * from './topic.js';
export * from './transport.js';
export * from './retry.js';
export * from './bus.js';
export * from './redrive.js';
export { createLogger, redactUrl, redactSecrets, type Logger, type LogOptions } from './log.js';
