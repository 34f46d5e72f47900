import type { Channel } from 'amqplib';
import { randomUUID } from 'node:crypto';
import { describeError, FerryError } from '../../../core/errors.js';
import { sleep } from '../../../transport/kernel.js';
import type { CloseOptions, SubscribeOptions } from '../../../transport/transport.js';
import type { Connector } from '../connection.js';
import type { Lanes } from '../lanes.js';
import { isPermanentAmqpError, type Topology } from '../topology.js';
import { toDelivery } from './wire.js';

export interface SubscriptionParts {
  readonly connector: Connector;
  readonly topology: Topology;
  readonly subscribe: SubscribeOptions;
  readonly prefetch: number;
  readonly lanes: Lanes;
  /** Told about each failed attempt to resume after the channel or connection was lost. */
  readonly onError: (error: FerryError) => void;
}

/** One consumer on its own channel, re-created after the channel or connection is lost. */
export class AmqpSubscription {
  private channel: Channel | undefined;
  private consumerTag: string | undefined;
  private closed = false;
  private restarting = false;
  private done: Promise<void> | undefined;
  private readonly privateQueue: string;

  constructor(private readonly parts: SubscriptionParts) {
    this.privateQueue = `${parts.topology.options.prefix ?? ''}${parts.subscribe.topic}:private-${randomUUID()}`;
  }

  async start(deadline: number): Promise<void> {
    const { connector, topology, subscribe, prefetch, lanes } = this.parts;
    const model = await connector.get(deadline);
    const channel = await model.createChannel();
    channel.on('error', () => undefined);
    channel.on('close', () => this.lost(channel));
    try {
      await channel.prefetch(prefetch);
      const queue = await topology.declareSubscription(
        channel,
        subscribe.topic,
        subscribe.group,
        // Named (not server-named) so logs and `rabbitmqctl list_queues` show whose it is.
        { name: this.privateQueue, options: { exclusive: true, autoDelete: true } },
      );
      this.channel = channel;
      const { consumerTag } = await channel.consume(queue, (message) => {
        if (message === null) {
          // The broker cancelled us (queue deleted): start over.
          void channel.close().catch(() => undefined);
          return;
        }
        let settled = false;
        const live = (): boolean => !settled && this.channel === channel && (settled = true);
        lanes.push({
          delivery: toDelivery(subscribe.topic, message),
          redelivered: message.fields.redelivered,
          ack: () => {
            if (live()) channel.ack(message);
          },
          nack: () => {
            if (live()) channel.nack(message, false, true);
          },
        });
      });
      this.consumerTag = consumerTag;
    } catch (error) {
      this.channel = undefined;
      await channel.close().catch(() => undefined);
      if (isPermanentAmqpError(error)) {
        throw new FerryError(
          'INVALID_ARGUMENT',
          `RabbitMQ refused the subscription to ${subscribe.topic}: ${describeError(error)}`,
          { cause: error },
        );
      }
      throw error instanceof FerryError
        ? error
        : new FerryError('CONNECTION_FAILED', `Could not subscribe to ${subscribe.topic}`, {
            cause: error,
          });
    }
  }

  private lost(channel: Channel): void {
    if (channel !== this.channel) return;
    this.channel = undefined;
    this.parts.lanes.reset();
    if (!this.closed) void this.restart();
  }

  private async restart(): Promise<void> {
    if (this.restarting) return;
    this.restarting = true;
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        await this.start(Date.now() + 60_000);
        break;
      } catch (error) {
        if (this.closed) break;
        this.parts.onError(
          error instanceof FerryError
            ? error
            : new FerryError(
                'CONNECTION_FAILED',
                `Could not resume the subscription to ${this.parts.subscribe.topic}: ${describeError(error)}; trying again`,
                { cause: error },
              ),
        );
        await sleep(Math.min(5000, 100 * 2 ** attempt));
      }
    }
    this.restarting = false;
    if (this.closed && this.channel) await this.channel.close().catch(() => undefined);
  }

  close(options?: CloseOptions): Promise<void> {
    this.done ??= (async () => {
      this.closed = true;
      const channel = this.channel;
      if (channel && this.consumerTag !== undefined) {
        await channel.cancel(this.consumerTag).catch(() => undefined);
      }
      const finished = await this.parts.lanes.drain(options?.timeoutMs ?? 30_000);
      if (!finished) this.parts.lanes.abandon();
      // Closing the channel gives every unacked delivery (abandoned handlers) back.
      this.channel = undefined;
      await channel?.close().catch(() => undefined);
    })();
    return this.done;
  }
}
