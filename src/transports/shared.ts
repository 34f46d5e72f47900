import { FerryError } from '../errors.js';
import { HEADER, partitionFor, type OutgoingMessage } from '../message.js';
import type { SubscribeOptions, TransportCapabilities } from '../transport.js';

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
