import type { InfoLines, Logger } from '../log.js';
import type { Delivery } from '../message.js';
import type { RetryPolicy } from '../retry.js';
import type { Topic } from '../topic.js';
import type { DeliveryObservation, Instrumentation } from '../../observability/instrumentation.js';
import type { Transport } from '../../transport/transport.js';
import type { Handler, Inbox } from './types.js';

/** What the steps of one subscription share: set up once, read on every delivery. */
export interface ConsumerState<T, Tx> {
  readonly transport: Transport;
  readonly topic: Topic<T>;
  readonly group: string | undefined;
  /** The topic and group, as dead letters record them. */
  readonly source: DeadLetterSource;
  /** The name the inbox records under (`consumer` option, else the group). */
  readonly consumer: string | undefined;
  readonly inbox: Inbox<Tx> | undefined;
  readonly handler: Handler<T, Tx>;
  readonly policy: RetryPolicy;
  readonly messageId: ((delivery: Delivery) => string | undefined) | undefined;
  readonly instrumentation: Instrumentation;
  /** The bus's logger, bound to `{ event: 'consume', topic, group }`. */
  readonly logger: Logger;
  /**
   * With the audit trail on, where the lines of successes go (the bus's logger, with the
   * same bindings); undefined when it is off, and only failures are logged.
   */
  readonly auditLines: InfoLines | undefined;
  /** Aborts when the subscription closes. */
  readonly signal: AbortSignal;
  /** Whether the no-id warning was logged (once per subscription). */
  warnedNoId: boolean;
}

/** One delivery on its way through the steps, to its one outcome. */
export interface Consumption {
  readonly delivery: Delivery;
  readonly id: string;
  readonly observation: DeliveryObservation;
  /** `performance.now()` when it arrived. */
  readonly started: number;
}

/** Why a delivery was dead-lettered, as written in `ferry-dlq-reason`. */
export type DeadLetterReason = 'failed' | 'permanent' | 'decode' | 'schema';

/** Where a dead letter comes from: the topic subscribed to, and the group, if any. */
export interface DeadLetterSource {
  readonly topic: string;
  readonly group: string | undefined;
}
