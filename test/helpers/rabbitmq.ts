import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import amqp from 'amqplib';

const run = promisify(execFile);

async function list(kind: 'exchanges' | 'queues'): Promise<string[]> {
  const { stdout } = await run('rabbitmqctl', ['-q', `list_${kind}`, 'name'], { timeout: 20_000 });
  return stdout.split('\n').map((line) => line.trim());
}

/**
 * Deletes every exchange and queue whose name starts with `prefix` (each test file uses its
 * own), so test runs do not fill the broker. Needs `rabbitmqctl` on this machine; without it
 * the queues still expire (tests declare them with x-expires).
 */
export async function deleteByPrefix(url: string, prefix: string): Promise<void> {
  let exchanges: string[];
  let queues: string[];
  try {
    [exchanges, queues] = await Promise.all([list('exchanges'), list('queues')]);
  } catch {
    return;
  }
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createChannel();
    for (const queue of queues.filter((name) => name.startsWith(prefix))) {
      await channel.deleteQueue(queue);
    }
    for (const exchange of exchanges.filter((name) => name.startsWith(prefix))) {
      await channel.deleteExchange(exchange);
    }
    await channel.close();
  } finally {
    await connection.close();
  }
}
