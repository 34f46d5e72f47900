import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { afterAll, describe, expect, it } from 'vitest';
import { HEADER, type Subscription } from '../../src/index.js';
import { rabbitmq } from '../../src/transports/rabbitmq/amqp/index.js';
import { deleteByPrefix } from '../helpers/rabbitmq.js';
import { serviceUrl } from '../helpers/services.js';
import { delay, uniqueName, waitFor } from '../helpers/wait.js';

// Restarts the broker: runs alone, after every other test file (see vitest.config.ts).
const run = promisify(execFile);
const url = serviceUrl('FERRY_AMQP_URL');
const prefix = `t-${randomBytes(4).toString('hex')}.`;
const rabbitmqctl = (...args: string[]) => run('rabbitmqctl', args, { timeout: 60_000 });

describe.skipIf(url === undefined)('rabbitmq across a broker restart', () => {
  afterAll(async () => {
    await deleteByPrefix(url as string, prefix);
  });

  it('loses no message of 10,000 when the broker restarts mid-run', async () => {
    const options = {
      url: url as string,
      prefix,
      publishTimeoutMs: 60_000,
      reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
      queueArguments: { 'x-expires': 600_000 },
    };
    const consumer = rabbitmq(options);
    const publisher = rabbitmq(options);
    const topic = uniqueName('it.restart');
    const total = 10_000;
    const seen = new Map<string, number>();
    let subscription: Subscription | undefined;
    // A bystander connection shows that the broker really dropped its clients.
    const bystander = await amqp.connect(url as string);
    let bystanderClosed = false;
    bystander.on('error', () => undefined);
    bystander.on('close', () => (bystanderClosed = true));
    try {
      subscription = await consumer.subscribe(
        { topic, group: 'g', concurrency: 4 },
        async (delivery) => {
          const id = delivery.headers[HEADER.id] ?? '';
          seen.set(id, (seen.get(id) ?? 0) + 1);
          if (seen.size % 50 === 0) await delay(2); // keep some deliveries unacked
        },
      );
      let confirmed = 0;
      const publishing = (async () => {
        for (let start = 0; start < total; start += 250) {
          await publisher.publish(
            Array.from({ length: 250 }, (_, i) => ({
              topic,
              key: `k${(start + i) % 32}`,
              body: Buffer.from(JSON.stringify({ n: start + i })),
              headers: { [HEADER.id]: `m-${start + i}` },
            })),
          );
          confirmed += 250;
        }
      })();
      await waitFor(
        'a third published and some consumed',
        () => confirmed >= 3000 && seen.size >= 500,
      );
      try {
        await rabbitmqctl('stop_app');
        await delay(1000);
      } finally {
        await rabbitmqctl('start_app');
        await rabbitmqctl('await_startup');
      }
      await publishing; // every publish confirmed, some after retrying on the new connection
      await waitFor('every message after the restart', () => seen.size === total, 45_000);
      const lost = Array.from({ length: total }, (_, n) => `m-${n}`).filter((id) => !seen.has(id));
      if (process.env.FERRY_TEST_VERBOSE)
        console.info(`restart: duplicates ${[...seen.values()].filter((c) => c > 1).length}`);
      expect(bystanderClosed).toBe(true);
      expect(confirmed).toBe(total);
      expect(lost).toEqual([]);
    } finally {
      await subscription?.close({ timeoutMs: 1000 });
      await Promise.all([consumer.close(), publisher.close()]);
      await bystander.close().catch(() => undefined);
    }
  });
});
