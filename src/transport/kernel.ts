/**
 * The transport kernel: what every driver shares, so that a driver supplies its wire
 * operations only.
 *
 * How a driver uses it:
 * 1. Describe the transport once in its `descriptor.ts`; build `capabilities` with
 *    `capabilitiesOf(descriptor, options.maxMessageBytes)`.
 * 2. Write the wire operations as a {@link TransportWire}: `publish` sends a batch that the
 *    kernel has already checked (open, sizes, not empty); `subscribe` starts consuming a
 *    checked subscription and resolves with its `stop`; `close` closes connections.
 *    `createTransport(wire)` returns the `Transport`: lifecycle (open / closing / closed,
 *    `CLOSED` after close, an idempotent `close()` that waits for closes under way),
 *    subscription tracking, and waiting for publishes in flight are the kernel's.
 * 3. Hand messages out with the {@link PartitionPump} (a partitioned log read at a position,
 *    or a client's fetched partitions pushed into a {@link PartitionFeed}) or, for pushed
 *    messages without partitions, with {@link handOut} and one {@link Semaphore} per
 *    subscription: both hand a rejected message out again after `redeliveryDelayMs` until
 *    the consumer runtime resolves it (handled or dead-lettered). Wait with {@link sleep};
 *    bound close waits with {@link within}.
 * 4. Report background failures with {@link errorReporter}(options.onError): the callback
 *    always gets a `FerryError`.
 */
import { describeError, FerryError, isFerryError, type FerryErrorCode } from '../core/errors.js';
import type { OutgoingMessage } from '../core/message.js';
import { Lifecycle } from './lifecycle.js';
import { checkSize, checkSubscribe, InFlight, Subscriptions, unsupported } from './shared.js';
import type {
  CloseOptions,
  DeliveryHandler,
  PartitionLag,
  RedriveOptions,
  RedriveResult,
  SeekTarget,
  SubscribeOptions,
  Transport,
  TransportCapabilities,
} from './transport.js';

export { Lifecycle, within, type LifecycleState } from './lifecycle.js';
export { handOut, sleep, type HandOutOptions } from './redelivery.js';
export { Semaphore } from './semaphore.js';
export { PartitionPump, type PumpOptions, type PumpSource } from './partition-pump.js';
export { PartitionFeed, type FeedOptions } from './partition-feed.js';
export {
  assertPartitions,
  checkSize,
  checkSubscribe,
  InFlight,
  partitionOf,
  roundRobinShare,
  Subscriptions,
  unsupported,
} from './shared.js';
export { capabilitiesOf } from './descriptor.js';

/** Stops one subscription: as `Subscription.close` (waits for handlers up to `timeoutMs`). */
export type StopSubscription = (options?: CloseOptions) => Promise<void>;

/**
 * A driver's wire operations. The kernel calls them only while the transport is open, with
 * arguments it has checked; everything else of the {@link Transport} contract is the
 * kernel's.
 */
export interface TransportWire {
  /** `transport.name`. */
  readonly name: string;
  readonly capabilities: TransportCapabilities;
  /** Sends a non-empty batch whose bodies fit `maxMessageBytes` (see `Transport.publish`). */
  publish(messages: readonly OutgoingMessage[]): Promise<void>;
  /**
   * Starts consuming a subscription `checkSubscribe` accepted; resolves once it is live with
   * the function that stops it. The kernel calls that stop at most once.
   */
  subscribe(options: SubscribeOptions, handler: DeliveryHandler): Promise<StopSubscription>;
  /** As `Transport.seek`; absent where the broker keeps no positions (`UNSUPPORTED`). */
  seek?(topic: string, group: string, target: SeekTarget): Promise<void>;
  redrive?(topic: string, options?: RedriveOptions): Promise<RedriveResult>;
  lag?(topic: string, group: string): Promise<PartitionLag[]>;
  ping?(): Promise<void>;
  /**
   * Told that `close()` started, once, synchronously within the first `close()` call and
   * before the kernel waits for anything: a publish still retrying (through a lost
   * connection, say) gives up here instead of holding the close for its whole timeout.
   * Must not throw; the kernel still waits for publishes and subscriptions in flight, then
   * calls `close`.
   */
  closing?(): void;
  /**
   * Closes connections and timers. Runs once, after every subscription has closed and every
   * publish and subscribe in flight has settled.
   */
  close?(): Promise<void>;
}

/**
 * The {@link Transport} over a driver's wire operations.
 *
 * - Every operation after `close()` started rejects with `CLOSED`.
 * - `publish` rejects `MESSAGE_TOO_LARGE` before sending anything when a body is over
 *   `capabilities.maxMessageBytes`; an empty batch resolves without a round trip.
 * - `subscribe` rejects `UNSUPPORTED` for what the capabilities rule out (a group without
 *   groups, `from: 'earliest'` without replay). A subscription that becomes live while the
 *   transport closes is stopped, and `subscribe` rejects with `CLOSED`.
 * - `close()` calls `wire.closing`, closes every subscription (waiting for handlers up to
 *   `timeoutMs`), waits for publishes and subscribes in flight, then runs `wire.close`. It is idempotent: every call
 *   returns the promise of the first, so a second caller waits for the close under way.
 */
export function createTransport(wire: TransportWire): Transport {
  const lifecycle = new Lifecycle(`${wire.name} transport`);
  const subscriptions = new Subscriptions();
  const inFlight = new InFlight();
  const { name, capabilities } = wire;

  const transport: Transport = {
    name,
    capabilities,

    async publish(messages) {
      lifecycle.assertOpen();
      checkSize(name, capabilities, messages);
      if (messages.length === 0) return;
      await inFlight.run(wire.publish(messages));
    },

    async subscribe(options, handler) {
      lifecycle.assertOpen();
      checkSubscribe(name, capabilities, options);
      const stop = await inFlight.run(wire.subscribe(options, handler));
      if (!lifecycle.open) {
        await stop();
        throw lifecycle.closedError();
      }
      return subscriptions.add(stop);
    },

    async seek(topic, group, target) {
      lifecycle.assertOpen();
      if (!wire.seek) {
        throw unsupported(
          name,
          'seek',
          'It keeps no positions: use kafka, sqlite or redis-streams.',
        );
      }
      await wire.seek(topic, group, target);
    },

    close(options) {
      return lifecycle.close(async () => {
        wire.closing?.();
        await Promise.all([subscriptions.closeAll(options), inFlight.settled()]);
        // Subscriptions that became live meanwhile stopped themselves (see `subscribe`).
        await subscriptions.closeAll(options);
        await wire.close?.();
      });
    },
  };
  if (wire.redrive) {
    transport.redrive = async (topic, options) => {
      lifecycle.assertOpen();
      return await wire.redrive!(topic, options);
    };
  }
  if (wire.lag) {
    transport.lag = async (topic, group) => {
      lifecycle.assertOpen();
      return await wire.lag!(topic, group);
    };
  }
  if (wire.ping) {
    transport.ping = async () => {
      lifecycle.assertOpen();
      await wire.ping!();
    };
  }
  return transport;
}

/** Maps a thrown value to a FerryError: a FerryError as it is, anything else as `code`. */
export function toFerryError(error: unknown, code: FerryErrorCode, what: string): FerryError {
  if (isFerryError(error)) return error;
  return new FerryError(code, `${what}: ${describeError(error)}`, { cause: error });
}

/**
 * A reporter of background failures (a commit retried, a reconnect, a read that failed) to
 * a transport's `onError`, always as a FerryError; without `onError` they go nowhere else,
 * since the transport recovers from them itself.
 */
export function errorReporter(
  onError: ((error: FerryError) => void) | undefined,
): (error: unknown, code: FerryErrorCode, what: string) => void {
  return (error, code, what) => {
    if (!onError) return;
    try {
      onError(toFerryError(error, code, what));
    } catch {
      // A throwing callback must not stop the transport's own recovery.
    }
  };
}
