import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cliPath } from '../helpers/cli.js';
import { serviceUrl } from '../helpers/services.js';

const pg = serviceUrl('FERRY_PG_URL');
const amqp = serviceUrl('FERRY_AMQP_URL');

/**
 * Command lines of the running programs whose parent is `parent`, by pid. A child that has
 * exited but not been reaped yet reads as an empty command line, and one forked but not yet
 * started reads as its parent's: neither says what the child runs, so both are left out.
 */
function childCommandLines(parent: number): Map<number, string> {
  const found = new Map<number, string>();
  let parentLine: string;
  try {
    parentLine = readFileSync(`/proc/${parent}/cmdline`, 'utf8');
  } catch {
    return found;
  }
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Field 4 of /proc/<pid>/stat is the parent pid; the name before it is in parentheses.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parent) continue;
      const line = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (line === '' || line === parentLine) continue;
      found.set(Number(entry), line.replace(/\0/g, ' '));
    } catch {
      // The process ended between listing and reading.
    }
  }
  return found;
}

describe('ferry demo keeps passwords off the command lines of what it starts', () => {
  it.skipIf(!pg || !amqp)(
    'no relay, consumer or order service shows a URL password in /proc/<pid>/cmdline',
    { timeout: 180_000 },
    async () => {
      const db = new URL(pg ?? '');
      // PostgreSQL here trusts loopback: a password it does not ask for changes nothing.
      if (!db.password) db.password = 'Demo-Pg-S3cret';
      const transport = new URL(amqp ?? '');
      const secrets = [decodeURIComponent(db.password), decodeURIComponent(transport.password)];
      expect(secrets.every((secret) => secret.length >= 5)).toBe(true);

      const demo = spawn(
        process.execPath,
        [
          cliPath,
          'demo',
          '--json',
          '--orders',
          '200',
          '--relays',
          '2',
          '--db',
          db.href,
          '--transport',
          transport.href,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FERRY_LOG_LEVEL: 'warn' } },
      );
      let stdout = '';
      demo.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => demo.once('exit', resolve));
      const seen = new Map<number, string>();
      let running = true;
      void exited.then(() => (running = false));
      while (running) {
        for (const [pid, line] of childCommandLines(demo.pid ?? -1)) seen.set(pid, line);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(await exited).toBe(0);
      expect(JSON.parse(stdout)).toMatchObject({ ok: true, orders: 200, lost: 0 });
      // Three consumers, two relays and the order service at least.
      expect(seen.size).toBeGreaterThanOrEqual(6);
      const lines = [...seen.values()];
      expect(lines.filter((line) => line.includes('demo-worker consumer'))).toHaveLength(3);
      expect(lines.filter((line) => / relay\b/.test(line))).toHaveLength(2);
      for (const line of lines) for (const secret of secrets) expect(line).not.toContain(secret);
      // Nor does the summary print them (it shows the URLs with *** for the password).
      for (const secret of secrets) expect(stdout).not.toContain(`:${secret}@`);
      expect(stdout).not.toContain(decodeURIComponent(db.password));
      expect(stdout).toContain(':***@');
    },
  );
});
