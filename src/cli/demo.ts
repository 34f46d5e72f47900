import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clearScreenDown, moveCursor } from 'node:readline';
import { Option, type Command } from 'commander';
import { createBus, type Inbox } from '../core/bus.js';
import { FerryError } from '../core/errors.js';
import { createLogger, redactUrl } from '../core/log.js';
import { defineTopic } from '../core/topic.js';
import { openTransport, parseUrl } from '../transport/urls.js';
import { openStore, type OpenedStore } from './open-store.js';
import { action, positiveInteger, transportOption, untilSignal } from './common.js';
import { dbOption } from './db.js';

/** The seed's order flow: one order service, a relay, and three consumer groups. */
const GROUPS = ['billing', 'shipping', 'notification'] as const;

interface OrderCreated {
  readonly orderId: string;
  readonly customer: string;
  /** 1, 2, 3, ... per customer: consumers check they apply a customer's orders in this order. */
  readonly seq: number;
  readonly amount: number;
}

interface Names {
  readonly topic: string;
  readonly orders: string;
  readonly effects: string;
  readonly duplicates: string;
}

/** The database URL with this run's outbox and inbox tables, unless the URL names its own. */
function ownTables(db: string, run: string): string {
  const url = parseUrl(db, 'database');
  if (!url.searchParams.has('table')) url.searchParams.set('table', `demo_${run}_outbox`);
  if (!url.searchParams.has('inbox')) url.searchParams.set('inbox', `demo_${run}_inbox`);
  return url.href;
}

const namesOf = (run: string, topic: string): Names => ({
  topic,
  orders: `demo_${run}_orders`,
  effects: `demo_${run}_effects`,
  duplicates: `demo_${run}_duplicates`,
});

interface DemoFlags {
  db?: string;
  transport?: string;
  orders: number;
  relays: number;
  customers: number;
  chaos?: boolean;
  json?: boolean;
  stallTimeout: number;
}

export interface DemoSummary {
  readonly ok: boolean;
  readonly orders: number;
  readonly published: number;
  /** Distinct orders each group applied. */
  readonly delivered: Record<string, number>;
  /** Effect rows each group wrote (more than `delivered` means applied twice). */
  readonly effects: Record<string, number>;
  readonly appliedTwice: number;
  /** Deliveries the inbox recognised as already processed and skipped. */
  readonly duplicatesAbsorbed: number;
  readonly duplicatesAbsorbedByGroup: Record<string, number>;
  /** (order, group) pairs with no effect. */
  readonly lost: number;
  /** Effects applied out of the customer's order. */
  readonly orderViolations: number;
  readonly outbox: { readonly pending: number; readonly dead: number };
  readonly relays: number;
  readonly chaos: readonly string[];
  readonly durationMs: number;
  readonly db: string;
  readonly transport: string;
}

export function demoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'run the order flow: orders + outbox in one transaction, relays, three idempotent consumers; then reconcile',
    )
    .addOption(
      new Option('-d, --db <url>', 'database URL (default: a new SQLite file)').env('FERRY_DB'),
    )
    .addOption(transportOption().default(undefined, 'a new SQLite log'))
    .option('--orders <n>', 'orders to place', positiveInteger('--orders'), 1000)
    .option('--relays <n>', 'relay processes', positiveInteger('--relays'), 2)
    .option('--customers <n>', 'customers (message keys)', positiveInteger('--customers'), 50)
    .option('--chaos', 'SIGKILL a relay and a consumer mid-run and restart them')
    .option('--json', 'print only the summary, as one JSON object')
    .option(
      '--stall-timeout <ms>',
      'give up when nothing moves for this long',
      positiveInteger('--stall-timeout'),
      60_000,
    )
    .addHelpText(
      'after',
      '\nExamples:\n  ferry demo\n  ferry demo --orders 5000 --relays 2 --chaos\n  ferry demo --db postgres://postgres@127.0.0.1:5432/test --transport kafka://127.0.0.1:9092',
    )
    .action(
      action(async (flags: DemoFlags) => {
        const summary = await runDemo(flags);
        if (!summary.ok) process.exitCode = 1;
      }),
    );

  program
    .command('demo-worker', { hidden: true })
    .argument('<role>', 'orders | consumer')
    // URLs come from FERRY_DB and FERRY_TRANSPORT, never the command line, where anyone
    // running `ps` would read their passwords.
    .addOption(dbOption())
    .addOption(transportOption().makeOptionMandatory())
    .requiredOption('--run <id>')
    .requiredOption('--topic <name>')
    .option('--group <name>')
    .option('--orders <n>', 'orders', positiveInteger('--orders'), 1)
    .option('--customers <n>', 'customers', positiveInteger('--customers'), 1)
    .option('--paced', 'spread the orders over a few seconds')
    .action(action(worker));
}

interface WorkerFlags {
  db: string;
  transport: string;
  run: string;
  topic: string;
  group?: string;
  orders: number;
  customers: number;
  paced?: boolean;
}

async function worker(role: string, flags: WorkerFlags): Promise<void> {
  const names = namesOf(flags.run, flags.topic);
  const topic = defineTopic<OrderCreated>(names.topic);
  const opened = await openStore(flags.db);
  try {
    if (role === 'orders') {
      await placeOrders(opened, names, flags);
      return;
    }
    if (role !== 'consumer' || flags.group === undefined) {
      throw new FerryError('INVALID_ARGUMENT', `Unknown demo worker ${role}`);
    }
    const group = flags.group;
    const bus = createBus({
      transport: await openTransport(flags.transport),
      logger: createLogger(),
      retry: { initialDelayMs: 50, maxDelayMs: 1000, maxAttempts: 20 },
    });
    // Record what the inbox absorbed, so the reconciliation can read it from the database.
    const inbox: Inbox<unknown> = {
      process: async (consumerGroup, id, work) => {
        const result = await opened.inbox.process(consumerGroup, id, work);
        if (result.duplicate) {
          await opened.query(
            undefined,
            `INSERT INTO ${names.duplicates} (grp, message_id) VALUES (?, ?)`,
            [consumerGroup, id],
          );
        }
        return result;
      },
    };
    // Without groups (Redis Pub/Sub) each consumer subscribes alone; the inbox keeps its name.
    const membership = bus.transport.capabilities.groups ? { group } : { consumer: group };
    await bus.subscribe(topic, { ...membership, inbox }, async (message, { tx }) => {
      const { orderId, customer, seq } = message.payload;
      const [row] = await opened.query(
        tx,
        `SELECT max(seq) AS m FROM ${names.effects} WHERE grp = ? AND customer = ?`,
        [group, customer],
      );
      const previous = row?.m === null || row?.m === undefined ? null : Number(row.m);
      await opened.query(
        tx,
        `INSERT INTO ${names.effects} (grp, order_id, customer, seq, prev_seq, message_id) VALUES (?, ?, ?, ?, ?, ?)`,
        [group, orderId, customer, seq, previous, message.id],
      );
    });
    process.stdout.write('ready\n');
    await untilSignal();
    await bus.close({ timeoutMs: 5000 });
  } finally {
    await opened.close();
  }
}

/** The order service: each order and its `order.created` message in one transaction. */
async function placeOrders(opened: OpenedStore, names: Names, flags: WorkerFlags): Promise<void> {
  const topic = defineTopic<OrderCreated>(names.topic);
  const perTick = flags.paced ? Math.max(1, Math.ceil(flags.orders / 60)) : flags.orders;
  for (let i = 0; i < flags.orders; i++) {
    const order: OrderCreated = {
      orderId: `order-${i}`,
      customer: `customer-${i % flags.customers}`,
      seq: Math.floor(i / flags.customers) + 1,
      amount: 100 + (i % 900),
    };
    await opened.transaction(async (tx) => {
      await opened.query(
        tx,
        `INSERT INTO ${names.orders} (id, customer, seq, amount) VALUES (?, ?, ?, ?)`,
        [order.orderId, order.customer, order.seq, order.amount],
      );
      await opened.outbox.enqueue(tx, topic, order, { key: order.customer });
    });
    if ((i + 1) % perTick === 0) await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface Progress {
  orders: number;
  published: number;
  groups: Record<string, number>;
}

async function readProgress(opened: OpenedStore, names: Names): Promise<Progress> {
  const [orders] = await opened.query(undefined, `SELECT count(*) AS n FROM ${names.orders}`);
  const status = await opened.store.status();
  const pending = status.reduce((sum, s) => sum + s.pending + s.dead, 0);
  const rows = await opened.query(
    undefined,
    `SELECT grp, count(DISTINCT order_id) AS n FROM ${names.effects} GROUP BY grp`,
  );
  const groups: Record<string, number> = Object.fromEntries(GROUPS.map((g) => [g, 0]));
  for (const row of rows) groups[String(row.grp)] = Number(row.n);
  const committed = Number(orders?.n ?? 0);
  return { orders: committed, published: Math.max(0, committed - pending), groups };
}

async function runDemo(flags: DemoFlags): Promise<DemoSummary> {
  const started = Date.now();
  const run = randomBytes(3).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'ferry-demo-'));
  const embedded = flags.db === undefined && flags.transport === undefined;
  // Outbox and inbox tables of this run alone: an outbox table feeds one transport, and
  // another run on the same database may publish elsewhere.
  const db = ownTables(flags.db ?? `sqlite:${join(dir, 'app.db')}`, run);
  const transportUrl = flags.transport ?? `sqlite:${join(dir, 'log.db')}`;
  const names = namesOf(run, embedded ? 'order.created' : `order.created.${run}`);
  const logFile = join(dir, 'demo.log');
  const logFd = openSync(logFile, 'a');
  const human = !flags.json;
  const say = (text: string): void => {
    if (human) process.stdout.write(`${text}\n`);
  };

  const opened = await openStore(db);
  const children = new Set<ChildProcess>();
  try {
    await opened.migrate();
    await opened.query(
      undefined,
      `CREATE TABLE ${names.orders} (id VARCHAR(64) PRIMARY KEY, customer VARCHAR(64) NOT NULL, seq INTEGER NOT NULL, amount INTEGER NOT NULL)`,
    );
    await opened.query(
      undefined,
      `CREATE TABLE ${names.effects} (grp VARCHAR(32) NOT NULL, order_id VARCHAR(64) NOT NULL, customer VARCHAR(64) NOT NULL, seq INTEGER NOT NULL, prev_seq INTEGER, message_id VARCHAR(64) NOT NULL)`,
    );
    await opened.query(
      undefined,
      `CREATE INDEX ${names.effects}_by_customer ON ${names.effects} (grp, customer, seq)`,
    );
    await opened.query(
      undefined,
      `CREATE TABLE ${names.duplicates} (grp VARCHAR(32) NOT NULL, message_id VARCHAR(64) NOT NULL)`,
    );
    say(
      `ferry demo: ${flags.orders} orders, ${flags.relays} relay process(es), groups ${GROUPS.join(', ')}${flags.chaos ? ', chaos on' : ''}`,
    );
    const probe = await openTransport(transportUrl);
    const atMostOnce = probe.capabilities.delivery === 'at-most-once';
    await probe.close();
    if (atMostOnce) {
      // Said on stderr so that it shows with --json too.
      process.stderr.write(
        `warning: ${probe.name} delivers at most once: orders relayed while a consumer is down (or whose handler fails) are lost, and this demo will report them. Use redis-streams, kafka or rabbitmq where that is not acceptable.\n`,
      );
    }
    say(`  database  ${redactUrl(db)}`);
    say(`  transport ${redactUrl(transportUrl)}`);
    say(`  logs      ${logFile}`);

    const common = ['--run', run, '--topic', names.topic];
    // Children read the URLs from their environment (private to the user), not from
    // their command line (readable by anyone through ps and /proc).
    const env = {
      ...process.env,
      FERRY_DB: db,
      FERRY_TRANSPORT: transportUrl,
      FERRY_LOG_LEVEL: process.env.FERRY_LOG_LEVEL ?? 'warn',
    };
    const start = (args: string[], pipe = false): ChildProcess => {
      const child = spawn(process.execPath, [...process.execArgv, process.argv[1] ?? '', ...args], {
        stdio: ['ignore', pipe ? 'pipe' : 'ignore', logFd],
        env,
      });
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    };
    const startConsumer = async (group: string): Promise<ChildProcess> => {
      const child = start(['demo-worker', 'consumer', '--group', group, ...common], true);
      await new Promise<void>((resolve, reject) => {
        let text = '';
        child.stdout?.on('data', (chunk: Buffer) => {
          text += chunk.toString();
          if (text.includes('ready')) resolve();
        });
        child.once('exit', (code) =>
          reject(
            new FerryError(
              'CONNECTION_FAILED',
              `The ${group} consumer exited (${code}); see ${logFile}`,
            ),
          ),
        );
      });
      return child;
    };
    const relayArgs = [
      'relay',
      // Short enough that a killed relay's partitions move on soon, long enough to ride out
      // the lock waits of many processes writing one SQLite file.
      '--lease-ms',
      '5000',
      '--stats',
      '0',
      '--retention',
      'keep',
    ];

    const consumers = new Map<string, ChildProcess>();
    for (const group of GROUPS) consumers.set(group, await startConsumer(group));
    const relays: ChildProcess[] = [];
    for (let i = 0; i < flags.relays; i++) relays.push(start(relayArgs));
    const orderService = start([
      'demo-worker',
      'orders',
      ...common,
      '--orders',
      String(flags.orders),
      '--customers',
      String(flags.customers),
      ...(flags.chaos ? ['--paced'] : []),
    ]);
    let ordersExit: number | null | undefined;
    orderService.once('exit', (code) => (ordersExit = code));

    const chaos: string[] = [];
    let relayKilled = !flags.chaos;
    let consumerKilled = !flags.chaos;
    const kill = async (child: ChildProcess): Promise<void> => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    };

    const bars = human && process.stdout.isTTY ? progressBars(flags.orders) : undefined;
    let last = '';
    let lastChange = Date.now();
    let lastLine = 0;
    for (;;) {
      const progress = await readProgress(opened, names);
      const key = JSON.stringify(progress);
      if (key !== last) {
        last = key;
        lastChange = Date.now();
      }
      if (bars) bars.update(progress);
      else if (human && Date.now() - lastLine >= 1000) {
        lastLine = Date.now();
        say(
          `  orders ${progress.orders}/${flags.orders}  published ${progress.published}  ${GROUPS.map((g) => `${g} ${progress.groups[g] ?? 0}`).join('  ')}`,
        );
      }
      const note = (text: string): void => {
        chaos.push(text);
        if (bars) bars.log(`  chaos: ${text}`);
        else say(`  chaos: ${text}`);
      };
      if (!relayKilled && progress.published >= flags.orders * 0.3) {
        relayKilled = true;
        const victim = relays.shift();
        if (victim) {
          await kill(victim);
          relays.push(start(relayArgs));
          note(`SIGKILLed a relay at ${progress.published} published; started another`);
        }
      }
      if (!consumerKilled && (progress.groups.shipping ?? 0) >= flags.orders * 0.5) {
        consumerKilled = true;
        const victim = consumers.get('shipping');
        if (victim) {
          await kill(victim);
          note(
            `SIGKILLed the shipping consumer at ${progress.groups.shipping} applied; restarted it`,
          );
          consumers.set('shipping', await startConsumer('shipping'));
        }
      }
      const complete =
        ordersExit !== undefined &&
        progress.orders === flags.orders &&
        GROUPS.every((g) => progress.groups[g] === progress.orders);
      if (complete && relayKilled && consumerKilled) break;
      if (ordersExit !== undefined && ordersExit !== 0) {
        throw new FerryError(
          'STORE_FAILED',
          `The order service failed (exit ${ordersExit}); see ${logFile}`,
        );
      }
      if (Date.now() - lastChange > flags.stallTimeout) {
        if (bars) bars.log('  nothing moved for a while: reconciling what arrived\n');
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    bars?.stop();
    // Let in-flight duplicates (e.g. a republished batch) reach the inbox before stopping.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await stopAll(children);

    const summary = await reconcile(opened, names, {
      relays: flags.relays,
      chaos,
      started,
      db: redactUrl(db),
      transport: redactUrl(transportUrl),
    });
    if (flags.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else printSummary(summary);
    return summary;
  } finally {
    await stopAll(children);
    await opened.close();
  }
}

async function stopAll(children: Set<ChildProcess>): Promise<void> {
  await Promise.all(
    [...children].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}

async function reconcile(
  opened: OpenedStore,
  names: Names,
  context: { relays: number; chaos: string[]; started: number; db: string; transport: string },
): Promise<DemoSummary> {
  const number = (value: unknown): number => Number(value ?? 0);
  const [orderRow] = await opened.query(undefined, `SELECT count(*) AS n FROM ${names.orders}`);
  const orders = number(orderRow?.n);
  const effectRows = await opened.query(
    undefined,
    `SELECT grp, count(*) AS n, count(DISTINCT order_id) AS d FROM ${names.effects} GROUP BY grp`,
  );
  const duplicateRows = await opened.query(
    undefined,
    `SELECT grp, count(*) AS n FROM ${names.duplicates} GROUP BY grp`,
  );
  const [violationRow] = await opened.query(
    undefined,
    `SELECT count(*) AS n FROM ${names.effects} WHERE seq <> COALESCE(prev_seq, 0) + 1`,
  );
  // Effects for orders that were never committed would be phantom deliveries.
  const [phantomRow] = await opened.query(
    undefined,
    `SELECT count(*) AS n FROM ${names.effects} e WHERE NOT EXISTS (SELECT 1 FROM ${names.orders} o WHERE o.id = e.order_id)`,
  );
  const status = await opened.store.status();

  const effects: Record<string, number> = {};
  const delivered: Record<string, number> = {};
  const duplicatesAbsorbedByGroup: Record<string, number> = {};
  for (const group of GROUPS) {
    const row = effectRows.find((r) => r.grp === group);
    effects[group] = number(row?.n);
    delivered[group] = number(row?.d);
    duplicatesAbsorbedByGroup[group] = number(duplicateRows.find((r) => r.grp === group)?.n);
  }
  const appliedTwice = GROUPS.reduce((sum, g) => sum + (effects[g] ?? 0) - (delivered[g] ?? 0), 0);
  const lost = GROUPS.reduce((sum, g) => sum + orders - (delivered[g] ?? 0), 0);
  const orderViolations = number(violationRow?.n) + number(phantomRow?.n);
  const pending = status.reduce((sum, s) => sum + s.pending, 0);
  const dead = status.reduce((sum, s) => sum + s.dead, 0);
  return {
    ok: lost === 0 && appliedTwice === 0 && orderViolations === 0,
    orders,
    published: orders - pending - dead,
    delivered,
    effects,
    appliedTwice,
    duplicatesAbsorbed: GROUPS.reduce((sum, g) => sum + (duplicatesAbsorbedByGroup[g] ?? 0), 0),
    duplicatesAbsorbedByGroup,
    lost,
    orderViolations,
    outbox: { pending, dead },
    relays: context.relays,
    chaos: context.chaos,
    durationMs: Date.now() - context.started,
    db: context.db,
    transport: context.transport,
  };
}

function printSummary(summary: DemoSummary): void {
  const lines = [
    '',
    'reconciliation (read from the database)',
    `  orders committed       ${summary.orders}`,
    `  published by relays    ${summary.published}  (outbox: ${summary.outbox.pending} pending, ${summary.outbox.dead} dead)`,
    ...GROUPS.map(
      (g) =>
        `  ${g.padEnd(22)} ${summary.delivered[g]} delivered, ${summary.effects[g]} effects, ${summary.duplicatesAbsorbedByGroup[g]} duplicates absorbed`,
    ),
    `  duplicates absorbed    ${summary.duplicatesAbsorbed}`,
    `  applied twice          ${summary.appliedTwice}`,
    `  lost                   ${summary.lost}`,
    `  order violations       ${summary.orderViolations}`,
    `  took                   ${(summary.durationMs / 1000).toFixed(1)} s`,
    summary.ok
      ? 'OK: every order reached every group exactly once, in order per customer'
      : 'FAILED: see the counts above',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

function progressBars(total: number): {
  update(progress: Progress): void;
  log(text: string): void;
  stop(): void;
} {
  // Redrawn in place: move up over the lines drawn last time, then write them again.
  const out = process.stdout;
  const labels = ['orders', 'published', ...GROUPS];
  let values = labels.map(() => 0);
  let drawn = 0;
  const bar = (value: number): string => {
    const width = 30;
    const filled = total > 0 ? Math.round((Math.min(value, total) / total) * width) : width;
    return '█'.repeat(filled) + '░'.repeat(width - filled);
  };
  const erase = (): void => {
    if (drawn === 0) return;
    moveCursor(out, 0, -drawn);
    clearScreenDown(out);
    drawn = 0;
  };
  const draw = (): void => {
    erase();
    const lines = labels.map(
      (label, i) => `  ${label.padEnd(12)} ${bar(values[i] ?? 0)} ${values[i] ?? 0}/${total}`,
    );
    out.write(`${lines.join('\n')}\n`);
    drawn = lines.length;
  };
  return {
    update(progress) {
      values = [progress.orders, progress.published, ...GROUPS.map((g) => progress.groups[g] ?? 0)];
      draw();
    },
    log(text) {
      erase();
      out.write(`${text.replace(/\n$/, '')}\n`);
      draw();
    },
    stop: () => {
      drawn = 0;
    },
  };
}
