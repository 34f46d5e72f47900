import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { displayUrl } from '../../src/cli/console/index.js';
import { startConsole, type ConsoleServer } from '../../src/cli/console/server.js';
import { createLogger } from '../../src/index.js';
import { openTransport } from '../../src/transport/urls.js';
import { createPipeline, SCRIPT_PAYLOAD, type Pipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-console-'));
const auditFile = join(dir, 'audit.log');
let pipeline: Pipeline;
const servers: ConsoleServer[] = [];

beforeAll(async () => {
  pipeline = await createPipeline(`sqlite:${join(dir, 'app.db')}`, `sqlite:${join(dir, 'log.db')}`);
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await pipeline.close();
  rmSync(dir, { recursive: true, force: true });
});

async function start(options: { allowActions?: boolean; hidePayloads?: boolean } = {}) {
  const transport = await openTransport(`sqlite:${join(dir, 'log.db')}`);
  const server = await startConsole({
    store: pipeline.store,
    transport,
    port: 0,
    audit: createLogger({ destination: auditFile, level: 'info' }),
    dbLabel: 'sqlite:app.db',
    transportLabel: 'sqlite:log.db',
    topics: [pipeline.topic.name],
    deadLetterIdleMs: 300,
    ...options,
  });
  servers.push({ ...server, close: async () => (await server.close(), await transport.close()) });
  const cookie = await login(server);
  const get = (path: string, init: RequestInit = {}) =>
    fetch(new URL(path, server.url), {
      ...init,
      redirect: 'manual',
      headers: { cookie, ...(init.headers as Record<string, string> | undefined) },
    });
  const post = (
    path: string,
    fields: Record<string, string | string[]>,
    headers: Record<string, string> = {},
  ) => {
    const body = new URLSearchParams();
    for (const [name, value] of Object.entries(fields)) {
      for (const item of Array.isArray(value) ? value : [value]) body.append(name, item);
    }
    return fetch(new URL(path, server.url), {
      method: 'POST',
      redirect: 'manual',
      body,
      headers: { cookie, origin: server.url.slice(0, -1), accept: 'application/json', ...headers },
    });
  };
  const csrf = async () =>
    /name="csrf" value="([0-9a-f]+)"/.exec(
      await (await get(`/confirm?action=outbox.retry&id=x`)).text(),
    )?.[1] ?? '';
  return { server, get, post, csrf };
}

async function login(server: ConsoleServer): Promise<string> {
  const response = await fetch(server.loginUrl, { redirect: 'manual' });
  expect(response.status).toBe(303);
  expect(response.headers.get('location')).toBe('/');
  const setCookie = response.headers.get('set-cookie') ?? '';
  expect(setCookie).toContain('HttpOnly');
  expect(setCookie).toContain('SameSite=Strict');
  return setCookie.split(';')[0] as string;
}

describe('ferry console over HTTP (SQLite)', () => {
  it('refuses every request without the token, and with a wrong one', async () => {
    const { server } = await start({ allowActions: true });
    for (const path of [
      '/',
      '/live',
      '/api/snapshot',
      '/find?q=o-1',
      '/console.js',
      '/confirm?action=outbox.retry&id=x',
      '/nothing',
    ]) {
      expect((await fetch(new URL(path, server.url), { redirect: 'manual' })).status, path).toBe(
        401,
      );
      const wrong = await fetch(new URL(path, server.url), {
        headers: { cookie: 'ferry_console=nope' },
      });
      expect(wrong.status, path).toBe(403);
    }
    const post = await fetch(new URL('/actions/outbox.retry', server.url), {
      method: 'POST',
      body: new URLSearchParams({ id: pipeline.ids.dead, confirm: 'yes' }),
      headers: { origin: server.url.slice(0, -1) },
    });
    expect(post.status).toBe(401);
    expect(
      (await fetch(`${server.url}?token=${'0'.repeat(48)}`, { redirect: 'manual' })).status,
    ).toBe(403);
    expect((await pipeline.counts()).dead).toBe(2);
  });

  it('shows counts that match the outbox table, and the seeded rows', async () => {
    const { get } = await start();
    const counts = await pipeline.counts();
    const snapshot = (await (await get('/api/snapshot')).json()) as {
      outbox: {
        totals: { pending: number; dead: number; blocked: number };
        stuck: Array<{ id: string; blocked: boolean; body: string; lastError: string }>;
      };
    };
    expect(snapshot.outbox.totals).toEqual({
      pending: counts.pending,
      dead: counts.dead,
      blocked: 1,
    });
    expect(counts).toMatchObject({ pending: 4, dead: 2 });
    expect(snapshot.outbox.stuck.map((r) => [r.id, r.blocked])).toEqual([
      [pipeline.ids.dead, false],
      [pipeline.ids.script, false],
      [pipeline.ids.blocked, true],
    ]);
    const page = await (await get('/')).text();
    expect(page).toContain(`data-count="pending">${counts.pending}<`);
    expect(page).toContain(`data-count="dead">${counts.dead}<`);
    expect(page).toContain(`data-count="blocked">1<`);
  });

  it('shows a <script> payload and error as text, and hides payloads with one switch', async () => {
    const { get } = await start();
    const page = await (await get('/')).text();
    expect(page).not.toContain('<script>window');
    expect(page).not.toContain('<img src=x');
    expect(page).not.toContain('<b>too large</b>');
    expect(page).toContain('&lt;script&gt;window.__pwned = true&lt;/script&gt;');
    expect(page).toContain('broker refused: &lt;b&gt;too large&lt;/b&gt;');
    const scripts = page.match(/<script\b[^>]*>/g) ?? [];
    expect(scripts).toEqual(['<script src="/console.js" defer>']);

    const hidden = await start({ hidePayloads: true });
    const quiet = await (await hidden.get('/')).text();
    expect(quiet).not.toContain('__pwned');
    expect(quiet).toContain('hidden');
    expect(JSON.stringify(await (await hidden.get('/api/snapshot')).json())).not.toContain(
      SCRIPT_PAYLOAD.slice(0, 20),
    );
  });

  it('offers and accepts no action without --allow-actions', async () => {
    const { get, post, server } = await start();
    const page = await (await get('/')).text();
    expect(page).not.toContain('/confirm');
    expect(page).toContain('data-actions="off"');
    expect((await get('/confirm?action=outbox.retry&id=x')).status).toBe(403);
    const refused = await post('/actions/outbox.retry', {
      id: pipeline.ids.dead,
      confirm: 'yes',
      csrf: 'x',
    });
    expect(refused.status).toBe(403);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect((await pipeline.counts()).dead).toBe(2);
  });

  it('accepts an action only with a same-origin Origin, the CSRF token and confirmation', async () => {
    const { post, csrf, get } = await start({ allowActions: true });
    const token = await csrf();
    expect(token).toMatch(/^[0-9a-f]{48}$/);
    const page = await (await get('/')).text();
    expect(page).toContain(`/confirm?action=outbox.retry&amp;id=${pipeline.ids.dead}`);
    const fields = { id: pipeline.ids.dead, confirm: 'yes', csrf: token };
    expect(
      (await post('/actions/outbox.retry', fields, { origin: 'http://evil.example' })).status,
    ).toBe(403);
    expect(
      (await post('/actions/outbox.retry', fields, { 'sec-fetch-site': 'cross-site' })).status,
    ).toBe(403);
    expect((await post('/actions/outbox.retry', { ...fields, csrf: 'f'.repeat(48) })).status).toBe(
      403,
    );
    expect((await post('/actions/outbox.retry', { ...fields, confirm: 'no' })).status).toBe(400);
    expect((await get('/actions/outbox.retry')).status).toBe(404);
    expect((await pipeline.counts()).dead).toBe(2);

    const done = await post('/actions/outbox.retry', fields);
    expect(done.status).toBe(200);
    expect(await done.json()).toMatchObject({ action: 'outbox.retry', count: 1 });
    const [row] = await pipeline.store.query(
      undefined,
      `SELECT status, attempts FROM ${pipeline.store.tables.outbox} WHERE id = ?`,
      [pipeline.ids.dead],
    );
    expect(row).toMatchObject({ status: 'pending', attempts: 0 });
    await waitFor('the audit line', () =>
      readFileSync(auditFile, 'utf8').includes(pipeline.ids.dead),
    );
    const line = JSON.parse(
      readFileSync(auditFile, 'utf8').trim().split('\n').at(-1) as string,
    ) as Record<string, unknown>;
    expect(line).toMatchObject({
      audit: 'console',
      action: 'outbox.retry',
      ids: [pipeline.ids.dead],
      result: 1,
    });

    // Skip marks the other dead row skipped (and only dead rows), recorded with its key.
    const skipped = await post('/actions/outbox.skip', {
      id: [pipeline.ids.script, pipeline.ids.pending[0] as string],
      confirm: 'yes',
      csrf: token,
    });
    expect(await skipped.json()).toMatchObject({ count: 1 });
    expect(await pipeline.counts()).toMatchObject({ dead: 0, pending: 5 });
    const [skippedRow] = await pipeline.store.query(
      undefined,
      `SELECT status FROM ${pipeline.store.tables.outbox} WHERE id = ?`,
      [pipeline.ids.script],
    );
    expect(skippedRow?.status).toBe('skipped');
    await waitFor('the skip audit line', () =>
      readFileSync(auditFile, 'utf8').includes('outbox.skip'),
    );
    const skipLine = JSON.parse(
      readFileSync(auditFile, 'utf8').trim().split('\n').at(-1) as string,
    ) as { rows: Array<{ id: string; key: string }> };
    expect(skipLine.rows).toEqual([
      expect.objectContaining({ id: pipeline.ids.script, key: 'o-x' }),
    ]);
  });

  it('finds a message by id and key, with the groups that applied it; re-drives a dead letter', async () => {
    const { get, post, csrf } = await start({ allowActions: true });
    await pipeline.startConsumers();
    await pipeline.startRelay();
    await waitFor(
      'o-1 billed and shipped',
      () => pipeline.state.billed.includes('o-1') && pipeline.state.shipped.includes('o-1'),
      30_000,
    );

    const found = (await (await get('/api/find?q=o-1')).json()) as Array<{
      row: { id: string; status: string; publishedAt: string };
      appliedBy: Array<{ group: string }>;
    }>;
    expect(found).toHaveLength(1);
    expect(found[0]?.row).toMatchObject({ id: pipeline.ids.pending[0], status: 'published' });
    expect(found[0]?.appliedBy.map((e) => e.group).sort()).toEqual(['billing', 'shipping']);
    const byId = await (await get(`/find?q=${pipeline.ids.pending[0] as string}`)).text();
    expect(byId).toContain('data-status="published"');
    expect(byId).toContain('<tr data-group="billing">');

    // A dead letter: billing refuses "bad-1" until it is healthy again.
    const sent = await pipeline.bus.publish(pipeline.topic, { id: 'bad-1' }, { key: 'bad-1' });
    await waitFor(
      'the dead letter on the page',
      async () => {
        const snapshot = (await (await get('/api/snapshot')).json()) as {
          consumers: { deadLetters: Array<{ letters: Array<{ id: string }> }> };
        };
        return snapshot.consumers.deadLetters.some((d) => d.letters.some((l) => l.id === sent.id));
      },
      30_000,
    );
    pipeline.state.healthy = true;
    const moved = await post('/actions/redrive', {
      topic: pipeline.topic.name,
      group: 'billing',
      id: sent.id,
      confirm: 'yes',
      csrf: await csrf(),
    });
    expect(await moved.json()).toMatchObject({ count: 1 });
    await waitFor('bad-1 billed', () => pipeline.state.billed.includes('bad-1'), 30_000);
    const after = (await (await get('/api/snapshot')).json()) as {
      consumers: { deadLetters: Array<{ letters: unknown[] }> };
    };
    expect(after.consumers.deadLetters.flatMap((d) => d.letters)).toEqual([]);
  });
});

describe('console options', () => {
  it('shows URLs without credentials or parameters', () => {
    expect(
      displayUrl('postgres://app:s3cret@db.internal:5432/shop?password=x&sslmode=require'),
    ).toBe('postgres://db.internal:5432/shop');
    expect(displayUrl('amqp://guest:guest@127.0.0.1:5672')).toBe('amqp://127.0.0.1:5672');
    expect(displayUrl('sqlite:./app.db')).toBe('sqlite:./app.db');
  });
});
