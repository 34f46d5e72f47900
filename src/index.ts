// The public core API of `ferry`, every name listed (test/unit/public-api.json holds the
// runtime names; a test keeps the two in step). Importing it loads no driver.
export {
  FerryError,
  PermanentError,
  isFerryError,
  type FerryErrorCode,
  type FerryErrorOptions,
} from './core/errors.js';
export {
  HEADER,
  deliveryId,
  newMessageId,
  type Delivery,
  type Headers,
  type Message,
  type MessageIdentity,
  type OutgoingMessage,
} from './core/message.js';
export { bytesCodec, jsonCodec, type Codec } from './core/codec.js';
export { defineTopic, type Topic, type TopicOptions } from './core/topic.js';
export type {
  CloseOptions,
  DeliveryHandler,
  PartitionLag,
  RedriveOptions,
  RedriveResult,
  SeekTarget,
  StartPosition,
  SubscribeOptions,
  Subscription,
  Transport,
  TransportCapabilities,
} from './transport/transport.js';
export { DEFAULT_RETRY, type RetryPolicy } from './core/retry.js';
export {
  createBus,
  deadLetterTopic,
  type Bus,
  type BusOptions,
  type ConsumeContext,
  type ConsumeOptions,
  type Handler,
  type Inbox,
  type PublishItem,
  type PublishOptions,
  type PublishReceipt,
} from './core/bus.js';
export { redrive, type LogRedriveOptions } from './core/redrive.js';
export {
  auditFromEnv,
  createLogger,
  redactUrl,
  redactSecrets,
  type Logger,
  type LogOptions,
} from './core/log.js';
export type {
  Lease,
  NewOutboxRecord,
  OutboxRecord,
  OutboxStore,
  PartitionStatus,
} from './outbox/store.js';
export { createOutbox, type Outbox } from './outbox/outbox.js';
export {
  createRelay,
  type Relay,
  type RelayOptions,
  type RelayRetention,
  type RelayStats,
} from './outbox/relay/index.js';
export {
  listDeadLetters,
  type DeadLetter,
  type ListDeadLettersOptions,
} from './core/dead-letters.js';
export {
  createOutboxInspector,
  inspectorOf,
  type InboxEntry,
  type InspectorSource,
  type OutboxInspector,
  type OutboxRow,
  type RelayInfo,
} from './outbox/inspect.js';
export {
  TRACE_HEADERS,
  createInstrumentation,
  defaultInstrumentation,
  messagingSystem,
  metricsRegistry,
  noInstrumentation,
  observe,
  readiness,
  renderMetrics,
  serveMetrics,
  traceIdOf,
  type DeliveryObservation,
  type Instrumentation,
  type InstrumentationOptions,
  type MetricsServer,
  type MetricsSources,
  type PublishObservation,
  type ReadyCheck,
  type RelayRow,
  type ServeMetricsOptions,
} from './observability/index.js';
