import { FerryError } from '../core/errors.js';
import { HEADER, partitionFor, type OutgoingMessage } from '../core/message.js';
import type {
  CloseOptions,
  SubscribeOptions,
  Subscription,
  TransportCapabilities,
} from './transport.js';

/** The partition of a message: by key, else by id, so keyless messages spread out. */
export function partitionOf(message: OutgoingMessage, partitions: number): number {
  return partitionFor(message.key ?? message.headers[HEADER.id] ?? '', partitions);
}

export function assertPartitions(partitions: number): void {
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > 1024) {
    throw new FerryError('INVALID_ARGUMENT', 'partitions must be a whole number from 1 to 1024');
  }
}

/** Rejects what the transport cannot do, before anything is sent. */
export function checkSubscribe(
  name: string,
  capabilities: TransportCapabilities,
  options: SubscribeOptions,
): void {
  if (options.group !== undefined && !capabilities.groups) {
    throw new FerryError(
      'UNSUPPORTED',
      `${name} has no consumer groups: every subscriber gets every message. Use redis-streams or kafka for groups.`,
    );
  }
  if (options.from === 'earliest' && !capabilities.replay) {
    throw new FerryError(
      'UNSUPPORTED',
      `${name} keeps no messages to start from: a subscription gets what is published after it starts (leave 'from' out). Use kafka, sqlite or redis-streams to read from the earliest message.`,
    );
  }
}

export function checkSize(
  name: string,
  capabilities: TransportCapabilities,
  messages: readonly OutgoingMessage[],
): void {
  for (const message of messages) {
    if (message.body.length > capabilities.maxMessageBytes) {
      throw new FerryError(
        'MESSAGE_TOO_LARGE',
        `Message for ${message.topic} is ${message.body.length} bytes; ${name} takes at most ${capabilities.maxMessageBytes}`,
      );
    }
  }
}

export function unsupported(name: string, what: string, hint: string): FerryError {
  return new FerryError('UNSUPPORTED', `${name} does not support ${what}. ${hint}`);
}

/** Splits `partitions` fairly among `members` (sorted ids): member i takes every n-th. */
export function roundRobinShare(
  partitions: number,
  members: readonly string[],
  member: string,
): number[] {
  const index = members.indexOf(member);
  if (index < 0) return [];
  const share: number[] = [];
  for (let partition = index; partition < partitions; partition += members.length) {
    share.push(partition);
  }
  return share;
}

/** Work in flight (publishes), so that `close()` can wait for it to settle. */
export class InFlight {
  private readonly pending = new Set<Promise<unknown>>();

  /** Awaits `work`, tracked until it settles. */
  async run<T>(work: Promise<T>): Promise<T> {
    this.pending.add(work);
    try {
      return await work;
    } finally {
      this.pending.delete(work);
    }
  }

  /** Resolves when everything in flight has settled; failures are their callers' to handle. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }
}

/**
 * The live subscriptions of a transport or bus. A subscription stays in the set until its
 * close has finished, so closing the owner waits for closes already under way (their acks
 * and lease releases still need the connection).
 */
export class Subscriptions {
  private readonly live = new Set<Subscription>();

  /** A subscription whose `close` runs `stop` once (later calls get the same promise). */
  add(stop: (options?: CloseOptions) => Promise<void>): Subscription {
    let done: Promise<void> | undefined;
    const subscription: Subscription = {
      close: (options) =>
        (done ??= (async () => {
          try {
            await stop(options);
          } finally {
            this.live.delete(subscription);
          }
        })()),
    };
    this.live.add(subscription);
    return subscription;
  }

  /** Closes every subscription, and waits for those already closing. */
  async closeAll(options?: CloseOptions): Promise<void> {
    await Promise.all([...this.live].map((subscription) => subscription.close(options)));
  }
}
