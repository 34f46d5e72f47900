// A demo child process: the order service or one consumer group's consumer.
import { createBus, type Inbox } from '../../core/bus.js';
import { FerryError } from '../../core/errors.js';
import { createLogger } from '../../core/log.js';
import { defineTopic } from '../../core/topic.js';
import { openTransport } from '../../transport/urls.js';
import { openStore, type OpenedStore } from '../open-store.js';
import { untilSignal } from '../common.js';
import { type OrderCreated, type Names, namesOf } from './model.js';

export interface WorkerFlags {
  db: string;
  transport: string;
  run: string;
  topic: string;
  group?: string;
  orders: number;
  customers: number;
  paced?: boolean;
}

export async function worker(role: string, flags: WorkerFlags): Promise<void> {
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
export async function placeOrders(
  opened: OpenedStore,
  names: Names,
  flags: WorkerFlags,
): Promise<void> {
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
