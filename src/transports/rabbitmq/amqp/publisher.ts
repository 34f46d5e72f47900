import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import { describeError, FerryError } from '../../../core/errors.js';
import { HEADER, type OutgoingMessage } from '../../../core/message.js';
import { Semaphore, sleep } from '../../../transport/kernel.js';
import type { Connector } from '../connection.js';
import { isPermanentAmqpError, routingKeyOf, type Topology } from '../topology.js';
import { publishOptions } from './wire.js';

/** One confirm channel and what ferry tracks on it; replaced when it or its connection goes. */
interface ChannelState {
  readonly channel: ConfirmChannel;
  readonly generation: number;
  readonly declared: Map<string, Promise<string>>;
  closed: boolean;
  readonly returned: Set<string>;
  readonly drainWaiters: Set<() => void>;
}

type Outcome = 'ok' | 'retry' | FerryError;

export interface PublisherOptions {
  readonly connector: Connector;
  readonly topology: Topology;
  /** Unconfirmed publishes on the wire at once. */
  readonly maxInFlight: number;
  readonly mandatory: boolean;
  /** How long a batch keeps trying through a lost connection. */
  readonly timeoutMs: number;
  /** True once the transport closed: a batch still retrying gives up. */
  readonly closed: () => boolean;
}

/**
 * Publishes batches on one confirm channel, in order, without waiting for confirms in
 * between: up to `maxInFlight` unconfirmed messages at once. A batch resolves when the broker
 * confirmed all of it; what a dropped connection left unconfirmed is sent again on the next
 * one until `timeoutMs` (`CONNECTION_FAILED`); a nack or a returned message (`mandatory`) is
 * `PUBLISH_FAILED`.
 */
export class Publisher {
  private readonly window: Semaphore;
  private current: ChannelState | undefined;
  private opening: Promise<ChannelState> | undefined;

  constructor(private readonly options: PublisherOptions) {
    this.window = new Semaphore(options.maxInFlight);
  }

  async publish(messages: readonly OutgoingMessage[]): Promise<void> {
    const { connector, timeoutMs } = this.options;
    const deadline = Date.now() + timeoutMs;
    let pending = [...messages];
    let lastError: unknown;
    while (pending.length > 0) {
      if (Date.now() > deadline || this.options.closed()) {
        throw new FerryError(
          'CONNECTION_FAILED',
          `${pending.length} of ${messages.length} messages were not confirmed by RabbitMQ at ${connector.where} within ${timeoutMs} ms`,
          { cause: lastError },
        );
      }
      let state: ChannelState;
      const exchanges = new Map<string, string>();
      try {
        state = await this.channel(deadline);
        for (const topic of new Set(pending.map((message) => message.topic))) {
          exchanges.set(topic, await this.declare(state, topic));
        }
      } catch (error) {
        if (isPermanentAmqpError(error)) {
          throw new FerryError(
            'PUBLISH_FAILED',
            `RabbitMQ refused the topology for ${pending[0]?.topic ?? ''}: ${describeError(error)}`,
            { cause: error },
          );
        }
        if (error instanceof FerryError) throw error;
        lastError = error;
        await sleep(50);
        continue;
      }
      const outcomes = await this.sendAll(state, exchanges, pending);
      const failure = outcomes.find((outcome): outcome is FerryError => outcome instanceof Error);
      if (failure) throw failure;
      pending = pending.filter((_, index) => outcomes[index] === 'retry');
      if (pending.length > 0) lastError = new Error('connection lost before confirms');
    }
  }

  /** Closes the channel (after the publishes in flight settled). */
  async close(): Promise<void> {
    const state = this.current;
    if (state && !state.closed) await state.channel.close().catch(() => undefined);
  }

  private async channel(deadline: number): Promise<ChannelState> {
    const { connector } = this.options;
    for (;;) {
      const state = this.current;
      if (state && !state.closed && state.generation === connector.generation) return state;
      this.opening ??= this.open(deadline).finally(() => (this.opening = undefined));
      this.current = await this.opening;
    }
  }

  private async open(deadline: number): Promise<ChannelState> {
    const { connector } = this.options;
    const model = await connector.get(deadline);
    const channel = await model.createConfirmChannel();
    const state: ChannelState = {
      channel,
      generation: connector.generation,
      declared: new Map(),
      closed: false,
      returned: new Set(),
      drainWaiters: new Set(),
    };
    channel.on('error', () => undefined);
    channel.on('close', () => {
      state.closed = true;
      for (const wake of state.drainWaiters) wake();
    });
    channel.on('drain', () => {
      for (const wake of state.drainWaiters) wake();
      state.drainWaiters.clear();
    });
    channel.on('return', (message: ConsumeMessage) => {
      const id = (message.properties as { messageId?: unknown }).messageId;
      if (typeof id === 'string') state.returned.add(id);
    });
    return state;
  }

  private declare(state: ChannelState, topic: string): Promise<string> {
    let declared = state.declared.get(topic);
    if (!declared) {
      declared = this.options.topology.declareExchange(state.channel, topic);
      declared.catch(() => state.declared.delete(topic));
      state.declared.set(topic, declared);
    }
    return declared;
  }

  // Publishes in order without waiting for confirms in between: only a full window (or a
  // full socket buffer) pauses the loop.
  private async sendAll(
    state: ChannelState,
    exchanges: Map<string, string>,
    messages: readonly OutgoingMessage[],
  ): Promise<Outcome[]> {
    const window = this.window;
    const results: Promise<Outcome>[] = [];
    for (const message of messages) {
      if (!window.tryAcquire()) await window.acquire();
      if (state.closed) {
        window.release();
        results.push(Promise.resolve('retry'));
        continue;
      }
      let drained: Promise<void> | undefined;
      results.push(
        new Promise<Outcome>((resolve) => {
          const settle = (outcome: Outcome): void => {
            window.release();
            resolve(outcome);
          };
          drained = this.publishOne(state, exchanges.get(message.topic) ?? '', message, settle);
        }),
      );
      if (drained) await drained;
    }
    return Promise.all(results);
  }

  /** Sends one message; `settle` is called once with its outcome. Returns a drain wait when the socket buffer is full. */
  private publishOne(
    state: ChannelState,
    exchange: string,
    message: OutgoingMessage,
    settle: (outcome: Outcome) => void,
  ): Promise<void> | undefined {
    const { mandatory } = this.options;
    const id = message.headers[HEADER.id];
    const routingKey = routingKeyOf(message);
    try {
      const more = state.channel.publish(
        exchange,
        routingKey,
        message.body,
        publishOptions(message, mandatory),
        (error: unknown) => {
          if (error) {
            // amqplib fails pending confirms from its own close listener, before ours marks
            // the channel closed: look once the close has been handled.
            setImmediate(() =>
              settle(
                state.closed
                  ? 'retry'
                  : new FerryError(
                      'PUBLISH_FAILED',
                      `RabbitMQ did not confirm a message for ${message.topic} (nack)`,
                      { cause: error, details: { topic: message.topic, id } },
                    ),
              ),
            );
          } else if (mandatory && id !== undefined && state.returned.delete(id)) {
            settle(
              new FerryError(
                'PUBLISH_FAILED',
                `No queue is bound for a message to ${message.topic} (routing key ${JSON.stringify(routingKey)}); the broker returned it`,
                { details: { topic: message.topic, id } },
              ),
            );
          } else settle('ok');
        },
      );
      if (more || state.closed) return undefined;
      return new Promise<void>((wake) => {
        const done = (): void => {
          state.drainWaiters.delete(done);
          wake();
        };
        state.drainWaiters.add(done);
      });
    } catch {
      settle('retry'); // the channel closed under us
      return undefined;
    }
  }
}
