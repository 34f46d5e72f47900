import type * as AmqplibNs from 'amqplib';
import type { Channel, ChannelModel, Options } from 'amqplib';
import { loadDriver } from '../../core/driver.js';
import { describeError, FerryError } from '../../core/errors.js';
import { redactSecrets, redactUrl } from '../../core/log.js';
import { permanentConnectFailure } from '../../transport/connect-failure.js';

export type Amqplib = typeof AmqplibNs;

export const loadAmqplib = (): Promise<Amqplib> =>
  loadDriver('amqplib', async () => {
    const module = (await import('amqplib')) as Amqplib & { default?: Amqplib };
    return module.default ?? module;
  });

export interface ConnectorOptions {
  readonly url: string | Options.Connect;
  /** A connection the caller opened: used as it is, never closed or reopened here. */
  readonly connection?: ChannelModel;
  readonly socketOptions?: Record<string, unknown>;
  /** First wait before reconnecting; doubles up to `maxDelayMs`. */
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  /** Told about a dropped connection and each failed reconnect; the connector keeps trying. */
  readonly onError?: (error: FerryError) => void;
}

/**
 * One AMQP connection that comes back: after a drop or a broker restart it reconnects with
 * exponential backoff (and jitter) until closed. Users ask for the connection with a
 * deadline; channels are theirs to re-create when it changes (`generation`).
 */
export class Connector {
  private current: ChannelModel | undefined;
  private connecting: Promise<ChannelModel> | undefined;
  private closed = false;
  private lastError: unknown;
  private wakeSleeper: (() => void) | undefined;
  /** Increases with every new connection. */
  generation = 0;

  constructor(private readonly options: ConnectorOptions) {
    const external = options.connection;
    if (external) {
      this.current = external;
      this.generation = 1;
      external.once('close', () => (this.current = undefined));
    }
  }

  get where(): string {
    if (this.options.connection) return 'the amqplib connection passed in';
    const { url } = this.options;
    return typeof url === 'string'
      ? redactUrl(url)
      : `amqp://${url.hostname ?? 'localhost'}:${url.port ?? 5672}`;
  }

  /** The live connection, waiting for a (re)connect until `deadline` (epoch ms). */
  async get(deadline: number): Promise<ChannelModel> {
    if (this.closed) throw new FerryError('CLOSED', 'rabbitmq transport is closed');
    if (this.current) return this.current;
    if (this.options.connection) {
      // Reopening it would need the caller's URL and options: that connection is theirs.
      throw new FerryError(
        'CONNECTION_FAILED',
        `The amqplib connection passed to ferry is closed; ferry does not reopen a connection it did not open`,
      );
    }
    this.connecting ??= this.connectLoop();
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.connecting,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new FerryError(
                  'CONNECTION_FAILED',
                  `Could not connect to RabbitMQ at ${this.where}${this.lastError === undefined ? '' : `: ${describeError(this.lastError)}`}`,
                  { cause: this.lastError },
                ),
              ),
            Math.max(0, deadline - Date.now()),
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async connectLoop(): Promise<ChannelModel> {
    const amqp = await loadAmqplib();
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new FerryError('CLOSED', 'rabbitmq transport is closed');
      try {
        const model = await amqp.connect(this.options.url, this.options.socketOptions);
        if (this.closed) {
          await model.close().catch(() => undefined);
          throw new FerryError('CLOSED', 'rabbitmq transport is closed');
        }
        model.on('error', (error: unknown) => {
          this.lastError = error;
          this.options.onError?.(
            new FerryError(
              'CONNECTION_FAILED',
              `RabbitMQ connection at ${this.where} failed: ${redactSecrets(describeError(error))}; reconnecting`,
              { cause: error },
            ),
          );
        });
        model.on('close', () => this.lost(model));
        this.current = model;
        this.generation++;
        this.connecting = undefined;
        this.lastError = undefined;
        return model;
      } catch (error) {
        if (this.closed) throw new FerryError('CLOSED', 'rabbitmq transport is closed');
        this.lastError = error;
        const permanent = this.generation === 0 ? permanentConnectFailure(error) : undefined;
        if (permanent !== undefined) {
          throw new FerryError(
            'CONNECTION_FAILED',
            `Could not connect to RabbitMQ at ${this.where}: ${permanent} (${redactSecrets(describeError(error))})`,
            { cause: error },
          );
        }
        if (this.generation > 0) {
          this.options.onError?.(
            new FerryError(
              'CONNECTION_FAILED',
              `Could not reconnect to RabbitMQ at ${this.where}: ${redactSecrets(describeError(error))}; trying again`,
              { cause: error },
            ),
          );
        }
        const base = Math.min(this.options.maxDelayMs, this.options.initialDelayMs * 2 ** attempt);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, base * (0.8 + Math.random() * 0.4));
          this.wakeSleeper = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }

  /**
   * Runs `work` on a short-lived channel (declarations, queue checks), closed afterwards
   * whatever happens. Channel errors reach `work` as rejections, never as `error` events.
   */
  async withChannel<T>(deadline: number, work: (channel: Channel) => Promise<T>): Promise<T> {
    const channel = await (await this.get(deadline)).createChannel();
    channel.on('error', () => undefined);
    try {
      return await work(channel);
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  private lost(model: ChannelModel): void {
    if (model !== this.current) return;
    this.current = undefined;
    // Reconnect at once, not on first use, so subscriptions come back by themselves.
    if (!this.closed) this.connecting ??= this.connectLoop();
    this.connecting?.catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wakeSleeper?.();
    const model = this.current;
    this.current = undefined;
    // The caller's connection stays open: ferry closed its own channels on it already.
    if (model !== this.options.connection) await model?.close().catch(() => undefined);
  }
}
