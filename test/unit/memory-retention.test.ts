import { describe, expect, it } from 'vitest';
import type { OutgoingMessage } from '../../src/core/message.js';
import {
  createMemoryBroker,
  memory,
  type MemoryBroker,
} from '../../src/transports/memory/index.js';
import type { Transport } from '../../src/transport/transport.js';
import { waitFor } from '../helpers/wait.js';

const retained = (broker: MemoryBroker, topic: string): number =>
  (broker.topics.get(topic) ?? []).reduce((sum, partition) => sum + partition.size, 0);

const batch = (topic: string, from: number, count: number): OutgoingMessage[] =>
  Array.from({ length: count }, (_, i) => ({
    topic,
    key: `k${(from + i) % 64}`,
    headers: {},
    body: Buffer.from(JSON.stringify({ n: from + i, pad: 'x'.repeat(100) })),
  }));

async function consumed(transport: Transport, topic: string, group: string): Promise<number> {
  return (await transport.lag?.(topic, group))?.reduce((sum, p) => sum + p.lag, 0) ?? -1;
}

describe('memory transport retention', () => {
  it('a long run through two groups and a group-less subscriber keeps what is unread and keepRead for replay', async () => {
    const broker = createMemoryBroker({ partitions: 4 });
    expect(broker).toMatchObject({ maxCount: 10_000, keepRead: 1000 });
    const transport = memory({ broker });
    const seen = { billing: 0, shipping: 0, tail: 0 };
    await transport.subscribe({ topic: 'long', group: 'billing' }, async () => {
      seen.billing++;
    });
    await transport.subscribe({ topic: 'long', group: 'shipping' }, async () => {
      seen.shipping++;
    });
    await transport.subscribe({ topic: 'long' }, async () => {
      seen.tail++;
    });
    const total = 100_000;
    const size = 2_000;
    let largest = 0;
    for (let sent = 0; sent < total; sent += size) {
      await transport.publish(batch('long', sent, size));
      largest = Math.max(largest, retained(broker, 'long'));
      await waitFor(
        'every reader through the batch',
        async () =>
          (await consumed(transport, 'long', 'billing')) === 0 &&
          (await consumed(transport, 'long', 'shipping')) === 0 &&
          seen.tail === sent + size,
      );
    }
    expect(seen).toEqual({ billing: total, shipping: total, tail: total });
    // Never more than one batch beyond the replay window, which is all that is left at the end.
    expect(largest).toBeLessThanOrEqual(4 * 1000 + size);
    expect(retained(broker, 'long')).toBe(4 * 1000);
    await transport.close();
  });

  it('a group that stopped reading holds back what it has not read, up to retention.maxCount per partition', async () => {
    const broker = createMemoryBroker({ partitions: 2, retention: { maxCount: 500 }, keepRead: 0 });
    const transport = memory({ broker });
    const slow = await transport.subscribe({ topic: 'held', group: 'slow' }, async () => {});
    await slow.close();
    await transport.publish(batch('held', 0, 600));
    // Unread by "slow": kept, but no more than the cap per partition.
    expect(retained(broker, 'held')).toBeGreaterThan(500);
    expect(retained(broker, 'held')).toBeLessThanOrEqual(1000);
    await transport.publish(batch('held', 600, 5_000));
    expect(retained(broker, 'held')).toBe(1000);
    // The group goes on from the oldest message kept, and its lag says what is left.
    expect(await consumed(transport, 'held', 'slow')).toBe(1000);
    let read = 0;
    await transport.subscribe({ topic: 'held', group: 'slow' }, async () => {
      read++;
    });
    await waitFor('the slow group to catch up', () => read === 1000);
    expect(retained(broker, 'held')).toBe(0);
    await transport.close();
  });

  it('a topic nobody subscribed to keeps what it is sent for a later reader from earliest', async () => {
    const broker = createMemoryBroker({ partitions: 1, retention: { maxCount: 100 } });
    const transport = memory({ broker });
    await transport.publish(batch('kept', 0, 150));
    expect(retained(broker, 'kept')).toBe(100);
    const offsets: string[] = [];
    await transport.subscribe({ topic: 'kept', group: 'late', from: 'earliest' }, async (d) => {
      offsets.push(d.offset);
    });
    await waitFor('the late group to read what is kept', () => offsets.length === 100);
    expect(offsets[0]).toBe('50');
    expect(offsets.at(-1)).toBe('149');
    await transport.close();
  });

  it('rejects a cap that is not a whole number >= 1', () => {
    expect(() => createMemoryBroker({ retention: { maxCount: 0 } })).toThrow(/maxCount/);
    expect(() => createMemoryBroker({ keepRead: -1 })).toThrow(/keepRead/);
    expect(() => createMemoryBroker({ retention: { maxAgeMs: 1000 } })).toThrow(
      expect.objectContaining({ code: 'UNSUPPORTED' }),
    );
  });

  it('opens a private broker from a url', () => {
    expect(() => memory({ url: 'memory:?partitions=0' })).toThrow(/partitions/);
    expect(() => memory({ url: 'kafka://127.0.0.1:9092' })).toThrow(
      expect.objectContaining({ code: 'INVALID_URL' }),
    );
    expect(() => memory({ url: 'memory:?maxCount=x' })).toThrow(
      expect.objectContaining({ code: 'INVALID_URL' }),
    );
    expect(memory({ url: 'memory:?partitions=2&maxCount=5&keepRead=1' }).name).toBe('memory');
  });
});
