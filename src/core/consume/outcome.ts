import { performance } from 'node:perf_hooks';
import type { ConsumerState, Consumption } from './state.js';

/** What became of a delivery, or of one attempt at it (`retry`), as the log says it. */
export type ConsumeResult =
  'ok' | 'duplicate' | 'retry' | 'dead-lettered' | 'dead-letter-failed' | 'failed';

/**
 * The log line of an outcome: a warning for every failure, and with the audit trail on an
 * info line for every success (id, topic, group, key, partition/offset, attempt, duration,
 * result, trace id).
 */
export function report<T, Tx>(
  state: ConsumerState<T, Tx>,
  run: Consumption,
  result: ConsumeResult,
  attempt: number,
  error?: unknown,
): void {
  if (error === undefined) {
    if (!state.auditLines?.isLevelEnabled('info')) return;
  } else if (!state.logger.isLevelEnabled('warn')) return;
  const { delivery } = run;
  // `event`, `topic` and `group` are bound to the subscription's loggers.
  const line = {
    id: run.id,
    traceId: run.observation.traceId,
    key: delivery.key,
    partition: delivery.partition,
    offset: delivery.offset,
    attempt,
    durationMs: Math.round((performance.now() - run.started) * 100) / 100,
    result,
  };
  if (error === undefined) state.auditLines?.info(line, 'consumed');
  else state.logger.warn({ ...line, err: error }, `consume ${result}`);
}

/** A delivery's one outcome: its observation ends, and the log says so. */
export function settle<T, Tx>(
  state: ConsumerState<T, Tx>,
  run: Consumption,
  result: 'ok' | 'duplicate' | 'dead-lettered',
  attempt: number,
  error?: unknown,
): void {
  run.observation.end(result, attempt, error);
  report(state, run, result, attempt, error);
}
