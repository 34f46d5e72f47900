import type { GetMessage, Options } from 'amqplib';
import { FerryError } from '../../../core/errors.js';
import { HEADER } from '../../../core/message.js';
import type { RedriveOptions, RedriveResult } from '../../../transport/transport.js';
import type { Connector } from '../connection.js';
import { DLQ_SUFFIX, type Topology } from '../topology.js';
import { toDelivery } from './wire.js';

/**
 * Moves the dead letters of `topic` from its keeper queue `<topic>.dlq` back: each to the
 * queue of the group it failed in, else to the topic's exchange (see `RabbitMqTransport.redrive`).
 * Up to `batch` messages are on the wire at once; each is acked in the keeper queue only after
 * the broker confirmed its copy, so a crash midway duplicates, never loses.
 */
export async function redriveQueue(
  connector: Connector,
  topology: Topology,
  topic: string,
  options: RedriveOptions,
  deadline: number,
  batch: number,
): Promise<RedriveResult> {
  const source = topology.keeperQueue(`${topic}${DLQ_SUFFIX}`);
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const model = await connector.get(deadline);
  const channel = await model.createConfirmChannel();
  channel.on('error', () => undefined);
  const held: GetMessage[] = [];
  let moved = 0;
  try {
    await channel.checkQueue(source).catch((error: unknown) => {
      throw new FerryError('INVALID_ARGUMENT', `No dead-letter queue ${source} on the broker`, {
        cause: error,
      });
    });
    const exchange = await topology.declareExchange(channel, topic);
    const queues = new Map<string, boolean>();
    const queueExists = async (queue: string): Promise<boolean> => {
      let known = queues.get(queue);
      if (known === undefined) {
        const probe = await model.createChannel();
        probe.on('error', () => undefined);
        known = await probe.checkQueue(queue).then(
          () => true,
          () => false,
        );
        await probe.close().catch(() => undefined);
        queues.set(queue, known);
      }
      return known;
    };
    for (;;) {
      const taken: GetMessage[] = [];
      while (taken.length < batch && moved + taken.length < limit) {
        const message = await channel.get(source, { noAck: false });
        if (message === false) break;
        const delivery = toDelivery(topic, message);
        const group = delivery.headers[HEADER.dlqGroup];
        if (options.group !== undefined && group !== options.group) {
          held.push(message);
          continue;
        }
        const headers = { ...(message.properties.headers as Record<string, unknown>) };
        for (const name of Object.keys(headers)) {
          if (name.startsWith('ferry-dlq-')) delete headers[name];
        }
        const properties: Options.Publish = {
          ...(message.properties as Options.Publish),
          headers,
          persistent: true,
        };
        const target = group === undefined ? undefined : topology.groupQueue(topic, group);
        if (target !== undefined && (await queueExists(target))) {
          channel.sendToQueue(target, message.content, properties);
        } else {
          channel.publish(exchange, message.fields.routingKey, message.content, properties);
        }
        taken.push(message);
      }
      if (taken.length === 0) break;
      await channel.waitForConfirms();
      for (const message of taken) channel.ack(message);
      moved += taken.length;
      if (moved >= limit) break;
    }
    for (const message of held) channel.nack(message, false, true);
    return { moved, kept: held.length };
  } catch (error) {
    throw error instanceof FerryError
      ? error
      : new FerryError('PUBLISH_FAILED', `Redrive of ${topic} failed after ${moved} messages`, {
          cause: error,
        });
  } finally {
    await channel.close().catch(() => undefined);
  }
}
