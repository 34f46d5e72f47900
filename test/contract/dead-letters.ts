import { afterEach, describe, expect, it } from 'vitest';
import {
  createBus,
  createLogger,
  defineTopic,
  listDeadLetters,
  PermanentError,
  redrive,
  type Bus,
} from '../../src/index.js';
import { uniqueName, waitFor } from '../helpers/wait.js';
import type { TransportUnderTest } from './transport.js';

const silent = createLogger({ level: 'silent' });

/**
 * Listing dead letters without moving them, and moving chosen ones back, on every transport
 * that keeps a replayable log (the others refuse with UNSUPPORTED).
 */
export function deadLetterContract(name: string, subject: TransportUnderTest | undefined): void {
  describe.skipIf(subject === undefined)(`dead letters: ${name}`, () => {
    const open: Bus[] = [];
    afterEach(async () => {
      await Promise.all(open.splice(0).map((b) => b.close({ timeoutMs: 1000 })));
    });

    /** A group whose handler dead-letters every message until `healthy` is set. */
    async function failingGroup() {
      const transport = await (subject as TransportUnderTest).create();
      const bus = createBus({ transport, logger: silent });
      open.push(bus);
      const topic = defineTopic<string>(uniqueName('ct.dead'));
      const group = uniqueName('g');
      const state = { healthy: false, handled: [] as string[] };
      await bus.subscribe(topic, { group }, async (message) => {
        if (!state.healthy) throw new PermanentError(`cannot take ${message.payload}`);
        state.handled.push(message.payload);
      });
      return { bus, topic, group, state };
    }

    it('lists dead letters with group, reason, error and attempts, and moves none', async () => {
      const { bus, topic, group } = await failingGroup();
      const sent = [
        await bus.publish(topic, 'a', { key: 'k-a' }),
        await bus.publish(topic, 'b', { key: 'k-b' }),
      ];
      const list = () => listDeadLetters(bus.transport, topic.name, { idleMs: 500 });
      await waitFor('two dead letters', async () => (await list()).length === 2, 30_000);
      const letters = await list();
      expect(letters.map((l) => l.id).sort()).toEqual(sent.map((s) => s.id).sort());
      const a = letters.find((l) => l.id === sent[0]?.id);
      expect(a).toMatchObject({ topic: topic.name, key: 'k-a', group, reason: 'permanent' });
      expect(a?.attempts).toBe(1);
      expect(a?.error).toContain('cannot take a');
      expect(JSON.parse(a?.body.toString('utf8') ?? 'null')).toBe('a');
      expect(
        await listDeadLetters(bus.transport, topic.name, { group: 'other', idleMs: 300 }),
      ).toEqual([]);
    });

    it('moves back only the chosen dead letters; the others stay listed', async () => {
      const { bus, topic, group, state } = await failingGroup();
      // One key, so the letter not chosen sits before the chosen one in the same partition.
      const first = await bus.publish(topic, 'one', { key: 'k' });
      const second = await bus.publish(topic, 'two', { key: 'k' });
      const list = () => listDeadLetters(bus.transport, topic.name, { idleMs: 500 });
      await waitFor('two dead letters', async () => (await list()).length === 2, 30_000);

      state.healthy = true;
      const result = await redrive(bus.transport, topic.name, {
        group,
        ids: [second.id],
        idleMs: 500,
      });
      expect(result.moved).toBe(1);
      await waitFor('the chosen one handled', () => state.handled.includes('two'), 30_000);
      expect(state.handled).toEqual(['two']);
      expect((await list()).map((l) => l.id)).toEqual([first.id]);

      // The one left behind still moves with an ordinary redrive of its group.
      expect((await redrive(bus.transport, topic.name, { group, idleMs: 500 })).moved).toBe(1);
      await waitFor('the other one handled', () => state.handled.includes('one'), 30_000);
      expect(await list()).toEqual([]);
    });
  });
}
