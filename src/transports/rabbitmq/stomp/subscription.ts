import type { Client } from '@stomp/stompjs';
import { randomUUID } from 'node:crypto';
import { FerryError } from '../../../core/errors.js';
import { sleep } from '../../../transport/kernel.js';
import type { CloseOptions } from '../../../transport/transport.js';
import type { Inbound, Lanes } from '../lanes.js';
import { stompToDelivery } from './wire.js';

/** One STOMP connection (it reconnects by itself) and the receipts awaited on it. */
export interface Session {
  readonly client: Client;
  /** Increases with every STOMP connection; settles from older ones are dropped. */
  generation: number;
  connected: boolean;
  waiters: Set<() => void>;
  receipts: Map<string, (outcome: 'ok' | 'retry') => void>;
}

/** One STOMP subscription; SUBSCRIBEs again on every new connection. */
export class StompSubscription {
  private readonly id = `sub-${randomUUID()}`;
  private active = false;
  private closed = false;
  private done: Promise<void> | undefined;

  constructor(
    private readonly topic: string,
    private readonly destination: string,
    private readonly prefetch: number,
    private readonly lanes: Lanes,
    private readonly session: Session,
    /** Declares the queue again (a private queue is gone once its consumer went away). */
    private readonly declare: () => Promise<void>,
    /** Told about each failed attempt to resume after a reconnect. */
    private readonly onError: (error: FerryError) => void,
  ) {}

  /** After a reconnect: declare the queue again, then subscribe. */
  resume(): void {
    void (async () => {
      for (let attempt = 0; !this.closed && this.session.connected; attempt++) {
        try {
          await this.declare();
          this.subscribe();
          return;
        } catch (error) {
          this.onError(
            error instanceof FerryError
              ? error
              : new FerryError(
                  'CONNECTION_FAILED',
                  `Could not resume the STOMP subscription to ${this.topic}; trying again`,
                  { cause: error },
                ),
          );
          await sleep(Math.min(5000, 100 * 2 ** attempt));
        }
      }
    })();
  }

  subscribe(): void {
    if (this.closed || !this.session.connected || this.active) return;
    const generation = this.session.generation;
    this.session.client.subscribe(
      this.destination,
      (message) => {
        let settled = false;
        const live = (): boolean =>
          !settled &&
          this.session.connected &&
          this.session.generation === generation &&
          (settled = true);
        const inbound: Inbound = {
          delivery: stompToDelivery(this.topic, message),
          redelivered: message.headers.redelivered === 'true',
          ack: () => {
            if (live()) message.ack();
          },
          nack: () => {
            if (live()) message.nack({ requeue: 'true' });
          },
        };
        this.lanes.push(inbound);
      },
      { id: this.id, ack: 'client-individual', 'prefetch-count': String(this.prefetch) },
    );
    this.active = true;
  }

  lost(): void {
    this.active = false;
    this.lanes.reset();
  }

  close(options?: CloseOptions): Promise<void> {
    this.done ??= (async () => {
      this.closed = true;
      // Stays subscribed while draining: RabbitMQ ignores acks for a subscription that is gone.
      await this.lanes.drain(options?.timeoutMs ?? 30_000);
      this.active = false;
      // Handlers still running are abandoned: closing the connection requeues their messages.
      await this.session.client.deactivate().catch(() => undefined);
    })();
    return this.done;
  }
}
