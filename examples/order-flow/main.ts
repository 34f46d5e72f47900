// The order flow in one process, on the embedded defaults (run: npx tsx examples/order-flow/main.ts).
// `ferry demo` runs the same flow with every service in its own process, kills some of them
// on purpose (--chaos) and reconciles the databases afterwards.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { createBus, createLogger, defineTopic } from '../../src/index.js';
import { openSqliteDatabase, sqliteInbox, sqliteOutbox, sqlite } from '../../src/sqlite.js';

const OrderCreated = defineTopic('order.created', {
  schema: z.object({ orderId: z.string(), customer: z.string(), amount: z.number().int() }),
});

const dir = mkdtempSync(join(tmpdir(), 'ferry-order-flow-'));
const db = await openSqliteDatabase(join(dir, 'app.db'));
db.exec('CREATE TABLE orders (id TEXT PRIMARY KEY, customer TEXT, amount INTEGER)');
db.exec('CREATE TABLE effects (grp TEXT, order_id TEXT)');
const outbox = sqliteOutbox({ database: db });
const inbox = sqliteInbox({ database: await openSqliteDatabase(join(dir, 'app.db')) });
await outbox.migrate();
await inbox.migrate();

const logger = createLogger({ level: process.env.FERRY_LOG_LEVEL ?? 'warn' });
const transport = sqlite({ path: join(dir, 'log.db') });
const bus = createBus({ transport, logger });

// Consumers: each group gets every order once; its effect commits with its inbox row.
for (const group of ['billing', 'shipping', 'notification']) {
  await bus.subscribe(OrderCreated, { group, inbox }, async (message, { tx }) => {
    tx.prepare('INSERT INTO effects VALUES (?, ?)').run(group, message.payload.orderId);
  });
}

// The relay publishes what the outbox holds, after each transaction commits.
const relay = outbox.relay({ transport, logger });
await relay.start();

// The order service: the order row and its message in ONE transaction.
const placeOrder = db.transaction((orderId: string, customer: string, amount: number) => {
  db.prepare('INSERT INTO orders VALUES (?, ?, ?)').run(orderId, customer, amount);
  outbox.enqueueSync(db, OrderCreated, { orderId, customer, amount }, { key: customer });
});
for (let i = 0; i < 100; i++) placeOrder(`order-${i}`, `customer-${i % 7}`, 100 + i);

const count = (sql: string): number => (db.prepare(sql).get() as { n: number }).n;
while (count('SELECT count(*) AS n FROM effects') < 300) {
  await new Promise((resolve) => setTimeout(resolve, 50));
}
console.log(
  db.prepare('SELECT grp, count(*) AS effects FROM effects GROUP BY grp ORDER BY grp').all(),
  relay.stats(),
);
await relay.stop();
await bus.close();
