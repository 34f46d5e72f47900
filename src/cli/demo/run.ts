// The demo's run: child processes for orders, relays and consumers, chaos kills, progress.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FerryError } from '../../core/errors.js';
import { redactUrl } from '../../core/log.js';
import { openTransport } from '../../transport/urls.js';
import { openStore } from '../open-store.js';
import { GROUPS, ownTables, namesOf, type DemoFlags, type DemoSummary } from './model.js';
import { printSummary, progressBars } from './output.js';
import { readProgress, reconcile } from './reconcile.js';

export async function runDemo(flags: DemoFlags): Promise<DemoSummary> {
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

export async function stopAll(children: Set<ChildProcess>): Promise<void> {
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
