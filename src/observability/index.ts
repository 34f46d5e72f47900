export {
  createInstrumentation,
  defaultInstrumentation,
  noInstrumentation,
  type DeliveryObservation,
  type Instrumentation,
  type InstrumentationOptions,
  type PublishObservation,
  type RelayRow,
} from './instrumentation.js';
export { metricsRegistry } from './metrics.js';
export {
  observe,
  readiness,
  renderMetrics,
  serveMetrics,
  type MetricsServer,
  type MetricsSources,
  type ReadyCheck,
  type ServeMetricsOptions,
} from './server.js';
export { messagingSystem, traceIdOf, TRACE_HEADERS } from './tracing.js';
