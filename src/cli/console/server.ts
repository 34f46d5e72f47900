import { randomBytes, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { FerryError, isFerryError } from '../../core/errors.js';
import { redactSecrets, type Logger } from '../../core/log.js';
import { inspectorOf } from '../../outbox/inspect.js';
import { redrive } from '../../core/redrive.js';
import type { Transport } from '../../transport/transport.js';
import type { OpenedStore } from '../open-store.js';
import { SCRIPT, STYLE } from './assets.js';
import { createSources } from './data.js';
import { confirmSection, findSection, resultSection, type Confirmation } from './find.js';
import { liveSections } from './live.js';
import { layout, type ActionName, type PageContext } from './page.js';

export interface ConsoleOptions {
  readonly store: OpenedStore;
  readonly transport: Transport;
  /** Default 127.0.0.1: the console is for the operator's own machine unless told otherwise. */
  readonly host?: string;
  /** Default 7070; 0 picks a free port. */
  readonly port?: number;
  /** Offer and accept retry, skip and re-drive. Default false: the console only reads. */
  readonly allowActions?: boolean;
  /** Show no message payloads. */
  readonly hidePayloads?: boolean;
  /** The access token; default a new random one. */
  readonly token?: string;
  /** Where each action is recorded. */
  readonly audit: Logger;
  /** Topics and groups to show besides those the outbox and inbox tables name. */
  readonly topics?: readonly string[];
  readonly groups?: readonly string[];
  /** How the database and transport are shown on the page (never with credentials). */
  readonly dbLabel: string;
  readonly transportLabel: string;
  /** How long a dead-letter read waits for more. Default 500 ms. */
  readonly deadLetterIdleMs?: number;
}

export interface ConsoleServer {
  /** `http://host:port/` */
  readonly url: string;
  /** The URL to open once: it sets the access cookie. */
  readonly loginUrl: string;
  readonly token: string;
  close(): Promise<void>;
}

const COOKIE = 'ferry_console';
const ACTIONS: readonly ActionName[] = ['outbox.retry', 'outbox.skip', 'redrive'];
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/**
 * Starts the console: one page over the outbox, relays, consumer lag and dead letters, and
 * "where is my message". Every request needs the access token (a `?token=` visit sets an
 * HttpOnly, SameSite=Strict cookie); actions are POST only, need `allowActions`, the page's
 * CSRF token and a same-origin `Origin`, and are written to the audit log.
 */
export async function startConsole(options: ConsoleOptions): Promise<ConsoleServer> {
  const host = options.host ?? '127.0.0.1';
  const token = options.token ?? randomBytes(24).toString('hex');
  if (token.length < 16) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      'The console access token needs 16 characters or more',
    );
  }
  const csrf = randomBytes(24).toString('hex');
  const allowActions = options.allowActions ?? false;
  const context: PageContext = {
    allowActions,
    hidePayloads: options.hidePayloads ?? false,
    csrf,
    db: options.dbLabel,
    transport: options.transportLabel,
  };
  const inspector = inspectorOf(options.store);
  const sources = createSources({
    store: options.store,
    inspector,
    transport: options.transport,
    topics: options.topics ?? [],
    groups: options.groups ?? [],
    deadLetterIdleMs: options.deadLetterIdleMs ?? 500,
    rateMinutes: 15,
  });
  const { audit } = options;

  const app = Fastify({ logger: false, bodyLimit: 256 * 1024 });
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string' },
    (_request, body, done) => done(null, new URLSearchParams(body as string)),
  );

  app.addHook('onSend', async (_request, reply) => {
    reply.header(
      'content-security-policy',
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
    reply.header('x-content-type-options', 'nosniff');
    // Not no-referrer: with it Chromium sends `Origin: null` on form posts, and the
    // same-origin check below would refuse the console's own forms.
    reply.header('referrer-policy', 'same-origin');
    reply.header('cache-control', 'no-store');
  });

  app.addHook('onRequest', async (request, reply) => {
    const hostHeader = request.headers.host ?? '';
    if (LOOPBACK.has(host) && !LOOPBACK.has(hostOnly(hostHeader))) {
      return reply.code(403).type('text/plain').send('ferry console: unexpected Host header\n');
    }
    const url = new URL(request.url, 'http://console');
    const given = url.searchParams.get('token');
    if (given !== null) {
      if (!same(given, token)) return refuse(reply, 403, 'wrong access token');
      if (request.method !== 'GET') return refuse(reply, 403, 'the token goes in the cookie');
      url.searchParams.delete('token');
      reply.header('set-cookie', `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`);
      return reply.redirect(`${url.pathname}${url.search}`, 303);
    }
    const presented = cookieValue(request.headers.cookie, COOKIE) ?? bearer(request);
    if (presented === undefined) return refuse(reply, 401, 'access token required');
    if (!same(presented, token)) return refuse(reply, 403, 'wrong access token');
    return undefined;
  });

  app.setErrorHandler(async (error, request, reply) => {
    const message = redactSecrets(
      isFerryError(error) ? `${error.code}: ${error.message}` : (error as Error).message,
    );
    const status = isFerryError(error, 'INVALID_ARGUMENT')
      ? 400
      : ((error as { statusCode?: number }).statusCode ?? 500);
    if (wantsJson(request)) return reply.code(status).send({ error: message });
    return reply
      .code(status)
      .type('text/html; charset=utf-8')
      .send(layout(context, 'Error', resultSection(`Failed: ${message}`)));
  });

  const page = (reply: FastifyReply, title: string, body: Parameters<typeof layout>[2]) =>
    reply.type('text/html; charset=utf-8').send(layout(context, title, body));

  app.get('/', async (_request, reply) =>
    page(reply, 'Pipeline', liveSections(context, await sources.snapshot())),
  );
  app.get('/live', async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .send(liveSections(context, await sources.snapshot()).text),
  );
  app.get('/console.js', async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').send(SCRIPT),
  );
  app.get('/console.css', async (_request, reply) =>
    reply.type('text/css; charset=utf-8').send(STYLE),
  );
  app.get('/api/snapshot', async (_request, reply) =>
    reply.type('application/json').send(asJson(await sources.snapshot(), context.hidePayloads)),
  );
  const find = async (request: FastifyRequest, reply: FastifyReply) => {
    const q = (new URL(request.url, 'http://console').searchParams.get('q') ?? '').trim();
    if (q.length === 0) throw new FerryError('INVALID_ARGUMENT', 'Give a message id or key');
    const found = await sources.find(q);
    if (wantsJson(request))
      return reply.type('application/json').send(asJson(found, context.hidePayloads));
    return page(reply, `Find ${q}`, findSection(context, q, found));
  };
  app.get('/find', find);
  app.get('/api/find', find);

  app.get('/confirm', async (request, reply) => {
    if (!allowActions) return actionsOff(reply);
    const params = new URL(request.url, 'http://console').searchParams;
    return page(reply, 'Confirm', confirmSection(context, confirmation(params)));
  });

  app.post('/actions/:action', async (request, reply) => {
    if (!allowActions) return actionsOff(reply);
    const origin = request.headers.origin;
    if (origin === undefined || origin !== `http://${request.headers.host ?? ''}`) {
      return refuse(reply, 403, 'cross-site request refused (Origin)');
    }
    const site = request.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin') {
      return refuse(reply, 403, 'cross-site request refused (Sec-Fetch-Site)');
    }
    const params = bodyParams(request.body);
    const presented = params.get('csrf') ?? header(request, 'x-ferry-csrf');
    if (presented === null || presented === undefined || !same(presented, csrf)) {
      return refuse(reply, 403, 'missing or wrong CSRF token');
    }
    if (params.get('confirm') !== 'yes') {
      throw new FerryError('INVALID_ARGUMENT', 'Actions need confirm=yes');
    }
    const wanted = confirmation(params, (request.params as { action?: string }).action ?? '');
    const result = await perform(wanted);
    audit.info(
      {
        audit: 'console',
        action: wanted.action,
        ids: wanted.ids,
        ...(wanted.topic === undefined ? {} : { topic: wanted.topic }),
        ...(wanted.group === undefined ? {} : { group: wanted.group }),
        ...(wanted.all ? { all: true } : {}),
        result: result.count,
        ...(result.rows === undefined ? {} : { rows: result.rows }),
      },
      `console ${wanted.action}: ${result.message}`,
    );
    // An operator's action is written out now, not when a buffer fills.
    audit.flush();
    if (wantsJson(request))
      return reply.send({ action: wanted.action, count: result.count, message: result.message });
    return page(reply, 'Done', resultSection(result.message));
  });

  async function perform(
    wanted: Confirmation,
  ): Promise<{ count: number; message: string; rows?: unknown[] }> {
    switch (wanted.action) {
      case 'outbox.retry': {
        const count = await options.store.store.retryDead(wanted.ids);
        return { count, message: `${count} dead row(s) back to pending` };
      }
      case 'outbox.skip': {
        // What the audit line records of each row, read before it changes.
        const rows = (await Promise.all(wanted.ids.map((id) => inspector.findRows(id, 1)))).flatMap(
          (found) => found.filter((row) => row.status === 'dead'),
        );
        const count = await options.store.store.skipDead(wanted.ids);
        return {
          count,
          message: `${count} dead row(s) skipped: never published`,
          rows: rows.map((row) => ({
            id: row.id,
            topic: row.topic,
            key: row.key ?? null,
            attempts: row.attempts,
            lastError: row.lastError ?? null,
          })),
        };
      }
      case 'redrive': {
        const topic = wanted.topic as string;
        const { moved } = await redrive(options.transport, topic, {
          ...(wanted.group === undefined || wanted.group === '' ? {} : { group: wanted.group }),
          ...(wanted.all ? {} : { ids: wanted.ids }),
          idleMs: options.deadLetterIdleMs ?? 500,
        });
        return { count: moved, message: `${moved} dead letter(s) of ${topic} moved back` };
      }
    }
  }

  const address = await app.listen({ host, port: options.port ?? 7070 });
  const base = new URL(address);
  if (LOOPBACK.has(host)) base.hostname = host.includes(':') ? `[${host}]` : host;
  const url = `${base.origin}/`;
  return {
    url,
    loginUrl: `${url}?token=${token}`,
    token,
    close: () => app.close(),
  };
}

function confirmation(params: URLSearchParams, action = params.get('action') ?? ''): Confirmation {
  if (!ACTIONS.includes(action as ActionName)) {
    throw new FerryError('INVALID_ARGUMENT', `Unknown action ${JSON.stringify(action)}`);
  }
  const ids = [...new Set(params.getAll('id').filter((id) => id.length > 0))];
  const all = params.get('all') === '1';
  const topic = params.get('topic') ?? undefined;
  const group = params.get('group') ?? undefined;
  if (action === 'redrive') {
    if (topic === undefined || topic.length === 0) {
      throw new FerryError('INVALID_ARGUMENT', 'Re-drive needs a topic');
    }
    if (!all && ids.length === 0) {
      throw new FerryError(
        'INVALID_ARGUMENT',
        'Select at least one dead letter, or re-drive all of a group',
      );
    }
    if (all && group === undefined) {
      throw new FerryError('INVALID_ARGUMENT', 'Re-drive all needs a group');
    }
  } else if (ids.length === 0) {
    throw new FerryError('INVALID_ARGUMENT', 'Select at least one row');
  }
  return {
    action: action as ActionName,
    ids,
    ...(topic === undefined ? {} : { topic }),
    ...(group === undefined ? {} : { group }),
    ...(all ? { all } : {}),
  };
}

function bodyParams(body: unknown): URLSearchParams {
  if (body instanceof URLSearchParams) return body;
  const params = new URLSearchParams();
  if (body !== null && typeof body === 'object') {
    for (const [name, value] of Object.entries(body as Record<string, unknown>)) {
      for (const item of Array.isArray(value) ? value : [value]) {
        if (typeof item === 'string' || typeof item === 'number' || typeof item === 'boolean') {
          params.append(name, String(item));
        }
      }
    }
  }
  return params;
}

function refuse(reply: FastifyReply, status: 401 | 403, why: string): FastifyReply {
  return reply
    .code(status)
    .type('text/plain; charset=utf-8')
    .send(`ferry console: ${why}. Open the URL the console printed when it started.\n`);
}

function actionsOff(reply: FastifyReply): FastifyReply {
  return reply
    .code(403)
    .type('text/plain; charset=utf-8')
    .send(
      'ferry console: actions are off; start it with --allow-actions to retry, skip or re-drive.\n',
    );
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const index = part.indexOf('=');
    if (index > 0 && part.slice(0, index).trim() === name) return part.slice(index + 1).trim();
  }
  return undefined;
}

function bearer(request: FastifyRequest): string | undefined {
  const value = header(request, 'authorization');
  return value?.startsWith('Bearer ') ? value.slice(7) : undefined;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function hostOnly(hostHeader: string): string {
  if (hostHeader.startsWith('[')) return hostHeader.slice(0, hostHeader.indexOf(']') + 1);
  return hostHeader.split(':')[0] ?? '';
}

function wantsJson(request: FastifyRequest): boolean {
  return (
    request.url.startsWith('/api/') ||
    (header(request, 'accept') ?? '').includes('application/json')
  );
}

/** JSON for the API: bigints as text, payloads as text (or hidden). */
function asJson(value: unknown, hidePayloads: boolean): string {
  return JSON.stringify(value, (_key, item: unknown) => {
    if (typeof item === 'bigint') return String(item);
    if (
      item !== null &&
      typeof item === 'object' &&
      (item as { type?: unknown }).type === 'Buffer' &&
      Array.isArray((item as { data?: unknown }).data)
    ) {
      return hidePayloads
        ? 'hidden'
        : Buffer.from((item as { data: number[] }).data).toString('utf8');
    }
    return item;
  });
}
