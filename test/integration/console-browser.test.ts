import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath } from '../helpers/cli.js';
import { createPipeline, type Pipeline } from '../helpers/pipeline.js';
import { serviceUrl } from '../helpers/services.js';
import { uniqueName, waitFor } from '../helpers/wait.js';

/**
 * The console in Debian's Chromium, driven by Playwright, against `ferry console` started as
 * users start it. FERRY_UPDATE_SCREENSHOT=1 writes the README's picture to docs/console.png.
 */
const CHROMIUM = process.env.FERRY_CHROMIUM ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium && process.env.FERRY_REQUIRE_SERVICES === '1') {
  throw new Error(`${CHROMIUM} is missing but FERRY_REQUIRE_SERVICES=1 (apt-get install chromium)`);
}

interface Started {
  readonly url: string;
  readonly loginUrl: string;
  readonly child: ChildProcess;
}

/** Runs `ferry console` and waits for the URL it prints. */
async function startConsole(args: readonly string[]): Promise<Started> {
  const child = spawn(process.execPath, [cliPath, 'console', '--listen', '127.0.0.1:0', ...args], {
    env: { ...process.env, FERRY_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  await waitFor(
    'the console to print its URL',
    () => {
      if (child.exitCode !== null) throw new Error(`ferry console exited: ${err}`);
      return /open (\S+)/.test(out);
    },
    30_000,
  );
  const loginUrl = /open (\S+)/.exec(out)?.[1] as string;
  return { url: new URL('/', loginUrl).href, loginUrl, child };
}

async function stop(started: Started | undefined): Promise<void> {
  if (!started || started.child.exitCode !== null) return;
  const exited = new Promise((resolve) => started.child.once('exit', resolve));
  started.child.kill('SIGTERM');
  await exited;
}

const attributes = async (locator: Locator, name: string): Promise<Array<string | null>> =>
  Promise.all((await locator.all()).map((one) => one.getAttribute(name)));

const count = async (page: Page, name: string): Promise<number> =>
  Number(await page.locator(`[data-count="${name}"]`).textContent());

function consoleInBrowser(
  name: string,
  backends: (() => { db: string; transport: string }) | undefined,
  screenshot: boolean,
): void {
  describe.skipIf(backends === undefined || !hasChromium)(
    `ferry console in Chromium: ${name}`,
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'ferry-console-browser-'));
      const auditFile = join(dir, 'audit.log');
      let browser: Browser;
      let pipeline: Pipeline;
      let withActions: Started | undefined;
      let readOnly: Started | undefined;

      beforeAll(async () => {
        const { db, transport } = (backends as () => { db: string; transport: string })();
        pipeline = await createPipeline(db, transport, {
          billing: uniqueName('billing'),
          shipping: uniqueName('shipping'),
        });
        const common = ['--db', db, '--transport', transport, '--topic', pipeline.topic.name];
        [withActions, readOnly] = await Promise.all([
          startConsole([...common, '--allow-actions', '--audit', auditFile]),
          startConsole(common),
        ]);
        browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
      });

      afterAll(async () => {
        await browser?.close();
        await Promise.all([stop(withActions), stop(readOnly)]);
        await pipeline?.close();
        rmSync(dir, { recursive: true, force: true });
      });

      it('refuses every request without the token', async () => {
        const context = await browser.newContext();
        const page = await context.newPage();
        const url = (withActions as Started).url;
        const response = await page.goto(url);
        expect(response?.status()).toBe(401);
        expect(await page.textContent('body')).toContain('access token required');
        for (const path of ['live', 'api/snapshot', 'console.js', `find?q=o-1`]) {
          expect((await context.request.get(`${url}${path}`)).status(), path).toBe(401);
        }
        const post = await context.request.post(`${url}actions/outbox.retry`, {
          form: { id: pipeline.ids.dead, confirm: 'yes' },
          headers: { origin: url.slice(0, -1) },
        });
        expect(post.status()).toBe(401);
        await context.close();
      });

      it('shows the counts of the database, the seeded rows, and a <script> payload as text', async () => {
        const page = await browser.newPage();
        const dialogs: string[] = [];
        page.on(
          'dialog',
          (dialog) => void dialog.dismiss().then(() => dialogs.push(dialog.message())),
        );
        await page.goto((withActions as Started).loginUrl);
        expect(new URL(page.url()).search).toBe('');
        const db = await pipeline.counts();
        expect(db).toMatchObject({ pending: 4, dead: 2 });
        expect(await count(page, 'pending')).toBe(db.pending);
        expect(await count(page, 'dead')).toBe(db.dead);
        expect(await count(page, 'blocked')).toBe(1);
        const rows = page.locator('table.stuck tbody tr');
        expect(await attributes(rows, 'data-id')).toEqual([
          pipeline.ids.dead,
          pipeline.ids.script,
          pipeline.ids.blocked,
        ]);
        const scriptRow = page.locator(`table.stuck tr[data-id="${pipeline.ids.script}"]`);
        expect(await scriptRow.locator('pre.payload').textContent()).toContain(
          '<script>window.__pwned = true</script>',
        );
        expect(await scriptRow.locator('td.error').textContent()).toBe(
          'broker refused: <b>too large</b>',
        );
        expect(
          await page.evaluate(() => (globalThis as { __pwned?: boolean }).__pwned),
        ).toBeUndefined();
        expect(await page.locator('main script, main img').count()).toBe(0);
        expect(dialogs).toEqual([]);
        await page.close();
      });

      it('retries a dead row, which a relay then publishes, and re-drives a dead letter', async () => {
        await pipeline.startConsumers();
        await pipeline.startRelay();
        const { billing, shipping } = pipeline.groups;
        await waitFor(
          'the pending rows published and applied',
          () => ['o-1', 'o-2', 'o-3'].every((id) => pipeline.state.billed.includes(id)),
          30_000,
        );
        const bad = await pipeline.bus.publish(pipeline.topic, { id: 'bad-1' }, { key: 'bad-1' });

        const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
        await page.goto((withActions as Started).loginUrl);
        const letter = page.locator(`.dlq tr[data-id="${bad.id}"]`);
        await waitFor(
          'the dead letter on the page',
          async () => {
            if ((await letter.count()) > 0) return true;
            await page.reload();
            return false;
          },
          30_000,
        );
        expect(await letter.getAttribute('data-group')).toBe(billing);
        expect(await letter.textContent()).toContain(`card declined for bad-1`);
        // The live sections refresh by themselves until the counts are the database's.
        await waitFor(
          'the page to show the database counts',
          async () => {
            const db = await pipeline.counts();
            return (
              (await count(page, 'pending')) === db.pending &&
              (await count(page, 'dead')) === db.dead
            );
          },
          30_000,
        );
        if (screenshot) {
          const target =
            process.env.FERRY_UPDATE_SCREENSHOT === '1'
              ? join(process.cwd(), 'docs', 'console.png')
              : join(dir, 'console.png');
          mkdirSync(join(target, '..'), { recursive: true });
          await page.screenshot({ path: target, fullPage: true });
          expect(readFileSync(target).subarray(1, 4).toString()).toBe('PNG');
        }

        // Retry the dead row: confirm, then the relay publishes it and both groups apply it.
        await page
          .locator(`table.stuck tr[data-id="${pipeline.ids.dead}"] a.action`, { hasText: 'retry' })
          .click();
        expect(await page.locator('#confirm .what').textContent()).toContain('back to pending');
        await page.locator('#confirm-action').click();
        expect(await page.locator('.result').textContent()).toBe('1 dead row(s) back to pending');
        await waitFor(
          'the retried row published',
          () => pipeline.state.billed.includes('o-dead'),
          30_000,
        );
        const [row] = await pipeline.store.query(
          undefined,
          `SELECT status FROM ${pipeline.store.tables.outbox} WHERE id = ?`,
          [pipeline.ids.dead],
        );
        await waitFor(
          'the retried row marked published',
          async () => {
            const [now] = await pipeline.store.query(
              undefined,
              `SELECT status FROM ${pipeline.store.tables.outbox} WHERE id = ?`,
              [pipeline.ids.dead],
            );
            return now?.status === 'published';
          },
          30_000,
        );
        expect(['pending', 'published']).toContain(row?.status);

        // Re-drive the dead letter: select it, confirm, and billing handles it this time.
        pipeline.state.healthy = true;
        await page.goto((withActions as Started).url);
        await page.locator(`.dlq tr[data-id="${bad.id}"] input[type=checkbox]`).check();
        await page
          .locator(`.dlq[data-topic="${pipeline.topic.name}"] button`, {
            hasText: 'Re-drive selected',
          })
          .click();
        await page.locator('#confirm-action').click();
        expect(await page.locator('.result').textContent()).toBe(
          `1 dead letter(s) of ${pipeline.topic.name} moved back`,
        );
        await waitFor(
          'the re-driven letter billed',
          () => pipeline.state.billed.includes('bad-1'),
          30_000,
        );
        await page.goto((withActions as Started).url);
        expect(await page.locator(`.dlq tr[data-id="${bad.id}"]`).count()).toBe(0);

        const audit = readFileSync(auditFile, 'utf8')
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line) as Record<string, unknown>);
        expect(audit.map((line) => [line.action, line.result])).toEqual([
          ['outbox.retry', 1],
          ['redrive', 1],
        ]);
        expect(shipping).toBeDefined();
        await page.close();
      });

      it('finds a message by key and shows the groups that applied it', async () => {
        const page = await browser.newPage();
        await page.goto((withActions as Started).loginUrl);
        await page.fill('input[name=q]', 'o-1');
        await page.click('form.find button');
        const message = page.locator(
          `article.message[data-id="${pipeline.ids.pending[0] as string}"]`,
        );
        expect(await message.locator('[data-status]').getAttribute('data-status')).toBe(
          'published',
        );
        expect(await message.locator('[data-field=published]').textContent()).toMatch(/^\d{4}-/);
        const groups = await attributes(message.locator('table.applied tbody tr'), 'data-group');
        expect(groups.sort()).toEqual([pipeline.groups.billing, pipeline.groups.shipping].sort());
        await page.close();
      });

      it('offers and accepts no action without --allow-actions', async () => {
        const context = await browser.newContext();
        const page = await context.newPage();
        await page.goto((readOnly as Started).loginUrl);
        expect(await page.getAttribute('[data-actions]', 'data-actions')).toBe('off');
        expect(await page.locator('a.action, button.action, input[type=checkbox]').count()).toBe(0);
        expect(await page.locator('table.stuck tr, .dlq').count()).toBeGreaterThan(0);
        const url = (readOnly as Started).url;
        expect(
          (
            await context.request.get(`${url}confirm?action=outbox.retry&id=${pipeline.ids.script}`)
          ).status(),
        ).toBe(403);
        const post = await context.request.post(`${url}actions/outbox.skip`, {
          form: { id: pipeline.ids.script, confirm: 'yes', csrf: 'x' },
          headers: { origin: url.slice(0, -1) },
        });
        expect(post.status()).toBe(403);
        expect((await pipeline.counts()).dead).toBe(1);
        await context.close();
      });
    },
  );
}

const pg = serviceUrl('FERRY_PG_URL');
const kafka = serviceUrl('FERRY_KAFKA_BROKERS');

consoleInBrowser(
  'SQLite',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-console-sqlite-'));
    return { db: `sqlite:${join(dir, 'app.db')}`, transport: `sqlite:${join(dir, 'log.db')}` };
  },
  false,
);

consoleInBrowser(
  'PostgreSQL + Kafka',
  pg === undefined || kafka === undefined
    ? undefined
    : () => {
        const separator = pg.includes('?') ? '&' : '?';
        return {
          db: `${pg}${separator}table=${uniqueName('console_ob')}&inbox=${uniqueName('console_ib')}`,
          transport: `kafka://${kafka}`,
        };
      },
  true,
);
