import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createBus,
  createLogger,
  deadLetterTopic,
  defineTopic,
  HEADER,
  isFerryError,
  redrive,
} from '../../src/index.js';
import { memory } from '../../src/transports/memory/index.js';
import { sqlite } from '../../src/transports/sqlite/index.js';
import { waitFor } from '../helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-redrive-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('redrive on a log transport', () => {
  it('puts dead letters back on the topic with their id, without the dlq headers, once', async () => {
    const bus = createBus({
      transport: sqlite({ path: join(dir, 'log.db'), partitions: 2 }),
      logger: createLogger({ level: 'silent' }),
      retry: { maxAttempts: 2, initialDelayMs: 1 },
    });
    const topic = defineTopic<string>('payments');
    let healthy = false;
    const handled: { id: string; headers: Record<string, string> }[] = [];
    await bus.subscribe(topic, { group: 'billing' }, async (message) => {
      if (!healthy) throw new Error('billing is down');
      handled.push({ id: message.id, headers: { ...message.headers } });
    });
    const { id } = await bus.publish(topic, 'p-1', { key: 'p-1' });
    await waitFor('the dead letter', async () => {
      const lag = await bus.transport.lag?.(deadLetterTopic(topic.name), 'nobody');
      return (lag ?? []).reduce((sum, p) => sum + p.lag, 0) === 1;
    });

    healthy = true;
    expect(await redrive(bus.transport, topic.name, { group: 'billing', idleMs: 300 })).toEqual({
      moved: 1,
      kept: 0,
    });
    await waitFor('the redriven message', () => handled.length === 1);
    expect(handled[0]?.id).toBe(id);
    expect(handled[0]?.headers[HEADER.dlqReason]).toBeUndefined();

    // A second redrive finds nothing new to move.
    expect(await redrive(bus.transport, topic.name, { group: 'billing', idleMs: 300 })).toEqual({
      moved: 0,
      kept: 0,
    });
    await bus.close();
  });
});

describe('redrive where the transport cannot', () => {
  it('refuses clearly instead of moving nothing', async () => {
    // A queue broker without replay and without its own redrive (as STOMP is).
    const base = memory();
    const queueLike = { ...base, capabilities: { ...base.capabilities, replay: false } };
    const error: unknown = await redrive(queueLike, 'payments').catch((e: unknown) => e);
    expect(isFerryError(error, 'UNSUPPORTED')).toBe(true);
    await base.close();
  });
});
