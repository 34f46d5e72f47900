import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

describe('ferry demo', () => {
  it('delivers every order to every group once, in order, through a relay and a consumer kill', async () => {
    const { stdout } = await run(
      process.execPath,
      [cli, 'demo', '--orders', '200', '--relays', '2', '--chaos', '--json'],
      { env: { ...process.env, FERRY_LOG_LEVEL: 'warn' }, timeout: 55_000 },
    );
    const summary = JSON.parse(stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({
      ok: true,
      orders: 200,
      published: 200,
      effects: { billing: 200, shipping: 200, notification: 200 },
      delivered: { billing: 200, shipping: 200, notification: 200 },
      appliedTwice: 0,
      lost: 0,
      orderViolations: 0,
      outbox: { pending: 0, dead: 0 },
    });
    expect(summary.chaos).toHaveLength(2);
    expect(typeof summary.duplicatesAbsorbed).toBe('number');
  });
});
