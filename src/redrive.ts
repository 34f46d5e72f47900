import { FerryError } from './errors.js';
import { HEADER, type Headers } from './message.js';
import type { RedriveOptions, RedriveResult, Transport } from './transport.js';
import { deadLetterTopic } from './bus.js';

const DLQ_HEADERS = new Set<string>([
  HEADER.dlqReason,
  HEADER.dlqError,
  HEADER.dlqAttempts,
  HEADER.dlqGroup,
  HEADER.dlqTopic,
  HEADER.dlqAt,
]);

export interface LogRedriveOptions extends RedriveOptions {
  /** Stop once no dead letter has arrived for this long. Default 1.5 s. */
  readonly idleMs?: number;
}

/**
 * Moves dead letters of `topic` back so they are handled again. Uses the transport's own
 * redrive where it has one (RabbitMQ puts each back into the queue of the group it failed
 * in). Elsewhere it reads `<topic>.dlq` as the group `ferry-redrive` (so each dead letter is
 * moved once) and re-publishes to the topic with the same id: every group sees it again,
 * and groups with an inbox skip what they had handled. The `ferry-dlq-*` headers are dropped.
 */
export async function redrive(
  transport: Transport,
  topic: string,
  options: LogRedriveOptions = {},
): Promise<RedriveResult> {
  if (transport.redrive) return transport.redrive(topic, options);
  // Reading <topic>.dlq from the start needs a log; a queue broker without its own redrive
  // (STOMP) would only see dead letters that arrive from now on, and move nothing.
  if (!transport.capabilities.groups || !transport.capabilities.replay) {
    throw new FerryError(
      'UNSUPPORTED',
      transport.capabilities.persistent
        ? `${transport.name} cannot redrive its dead letters itself; for RabbitMQ's STOMP adapter use the amqp:// URL of the same broker (same queues)`
        : `${transport.name} keeps no dead letters to redrive (not persistent)`,
    );
  }
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const idleMs = options.idleMs ?? 1500;
  let moved = 0;
  let kept = 0;
  let idle: NodeJS.Timeout | undefined;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const restartIdle = (): void => {
    clearTimeout(idle);
    idle = setTimeout(finish, idleMs);
  };
  restartIdle();
  const subscription = await transport.subscribe(
    {
      topic: deadLetterTopic(topic),
      group: options.group === undefined ? 'ferry-redrive' : `ferry-redrive.${options.group}`,
      from: 'earliest',
      concurrency: 1,
    },
    async (delivery) => {
      if (moved >= limit) {
        finish();
        // Not acknowledged: it stays for the next redrive.
        throw new FerryError('CLOSED', 'redrive limit reached');
      }
      restartIdle();
      if (options.group !== undefined && delivery.headers[HEADER.dlqGroup] !== options.group) {
        kept++;
        return;
      }
      const headers: Headers = {};
      for (const [name, value] of Object.entries(delivery.headers)) {
        if (!DLQ_HEADERS.has(name)) headers[name] = value;
      }
      await transport.publish([
        {
          topic: delivery.headers[HEADER.dlqTopic] ?? topic,
          key: delivery.key,
          headers,
          body: delivery.body,
        },
      ]);
      moved++;
      if (moved >= limit) finish();
    },
  );
  await finished;
  clearTimeout(idle);
  await subscription.close();
  return { moved, kept };
}
