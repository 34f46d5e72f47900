import { randomUUID } from 'node:crypto';
import { PartitionPump, roundRobinShare, within } from '../../../transport/kernel.js';
import { redisError } from '../common.js';
import { StreamSource, type Context } from './subscription.js';

// Group membership over Redis keys: a member renews its lease on each stream it reads every
// `sessionTimeoutMs / 3` (HEARTBEAT), learns the live members, takes free streams of its fair
// share (ACQUIRE) and gives back the rest (RELEASE). Each script runs atomically in Redis, so
// two members never hold one stream at once.

const HEARTBEAT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 2)
local owners = {}
for i = 2, #KEYS do
  local owner = redis.call('GET', KEYS[i])
  if owner == ARGV[1] then redis.call('PEXPIRE', KEYS[i], ttl) end
  owners[#owners + 1] = owner or ''
end
return {redis.call('ZRANGE', KEYS[1], 0, -1), owners}
`;
const ACQUIRE = `
local got = {}
for i = 1, #KEYS do
  local owner = redis.call('GET', KEYS[i])
  if not owner or owner == ARGV[1] then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    got[i] = 1
  else
    got[i] = 0
  end
end
return got
`;
const RELEASE = `
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
if ARGV[2] == '1' then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`;

/** One subscription in a group: holds leases on its share of the topic's streams. */
export class GroupMember {
  readonly id = randomUUID();
  private readonly source: StreamSource;
  private readonly pump: PartitionPump;
  /** Streams this member reads (the pump's assignment). */
  private readonly owned = new Set<number>();
  private readonly releasing = new Set<Promise<void>>();
  /** Partitions whose worker is stopping: not started again until it has. */
  private readonly stopping = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> = Promise.resolve();
  private lastRenewed = Date.now();
  private closed = false;

  constructor(
    private readonly context: Context,
    private readonly group: string,
    private readonly keyOf: (what: string) => string,
  ) {
    this.source = new StreamSource(context, group, this.id);
    this.pump = new PartitionPump(this.source, context.handler, {
      concurrency: context.concurrency,
      // A read blocks (`blockMs`) until there is something: none returned, read again.
      idleWaitMs: 0,
      redeliveryDelayMs: context.redeliveryDelayMs,
      retryDelayMs: context.redeliveryDelayMs * 10,
      batchSize: context.batchSize,
      onError: context.onError,
    });
  }

  private leaseKey(partition: number): string {
    return this.keyOf(`lease:${partition}`);
  }

  async start(): Promise<void> {
    await this.beat();
    this.schedule();
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.beating = this.beat().catch((error: unknown) =>
        this.context.onError(
          redisError(
            'CONNECTION_FAILED',
            `redis-streams lease renewal for ${this.group} failed`,
            error,
          ),
        ),
      );
      void this.beating.then(() => this.schedule());
    }, this.context.sessionTimeoutMs / 3);
    this.timer.unref();
  }

  /** Renews leases, learns the live members, and moves towards this member's fair share. */
  private async beat(): Promise<void> {
    const { command, partitions, sessionTimeoutMs } = this.context;
    const all = Array.from({ length: partitions }, (_, partition) => partition);
    let members: string[];
    let owners: string[];
    try {
      [members, owners] = (await command.eval(
        HEARTBEAT,
        partitions + 1,
        this.keyOf('members'),
        ...all.map((partition) => this.leaseKey(partition)),
        this.id,
        sessionTimeoutMs,
      )) as [string[], string[]];
    } catch (error) {
      // Could not renew: once the leases may have run out, another member may own them.
      if (Date.now() - this.lastRenewed > sessionTimeoutMs) {
        void this.drop([...this.owned], false);
      }
      throw error;
    }
    this.lastRenewed = Date.now();
    if (this.closed) return;
    const share = new Set(roundRobinShare(partitions, members.sort(), this.id));
    const owned = [...this.owned];
    void this.drop(
      owned.filter((partition) => owners[partition] !== this.id),
      false,
    );
    void this.drop(
      owned.filter((partition) => owners[partition] === this.id && !share.has(partition)),
      true,
    );
    const wanted = [...share].filter(
      (partition) =>
        !this.owned.has(partition) &&
        !this.stopping.has(partition) &&
        (owners[partition] === '' || owners[partition] === this.id),
    );
    if (wanted.length === 0) return;
    const got = (await command.eval(
      ACQUIRE,
      wanted.length,
      ...wanted.map((partition) => this.leaseKey(partition)),
      this.id,
      sessionTimeoutMs,
    )) as number[];
    if (this.closed) return;
    wanted.forEach((partition, index) => {
      if (got[index] === 1) this.owned.add(partition);
    });
    void this.pump.assign(this.owned);
  }

  /**
   * Stops reading `partitions` (after the handler in flight, waited for up to
   * `sessionTimeoutMs`), and gives their leases back if still ours.
   */
  private drop(partitions: number[], release: boolean): Promise<void> {
    if (partitions.length === 0) return Promise.resolve();
    for (const partition of partitions) {
      this.owned.delete(partition);
      this.stopping.add(partition);
    }
    const stopped = this.pump.assign(this.owned);
    for (const partition of partitions) this.source.stop(partition);
    const releasing = (async () => {
      await within(stopped, this.context.sessionTimeoutMs);
      if (release) await this.release(partitions, false);
    })()
      .catch((error: unknown) =>
        this.context.onError(
          redisError(
            'CONNECTION_FAILED',
            `redis-streams hand-over of streams ${partitions.join(', ')} failed`,
            error,
          ),
        ),
      )
      .finally(() => {
        for (const partition of partitions) this.stopping.delete(partition);
        this.releasing.delete(releasing);
      });
    this.releasing.add(releasing);
    return releasing;
  }

  private async release(partitions: number[], leave: boolean): Promise<void> {
    await this.context.command.eval(
      RELEASE,
      partitions.length + 1,
      this.keyOf('members'),
      ...partitions.map((partition) => this.leaseKey(partition)),
      this.id,
      leave ? '1' : '0',
    );
  }

  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.beating;
    const owned = [...this.owned];
    this.owned.clear();
    const closing = this.pump.close(timeoutMs);
    for (const partition of owned) this.source.stop(partition);
    await closing;
    await this.source.flushed();
    await within(Promise.all(this.releasing), timeoutMs);
    try {
      await this.release(owned, true);
    } catch (error) {
      // The leases run out on their own after sessionTimeoutMs.
      this.context.onError(
        redisError(
          'CONNECTION_FAILED',
          `redis-streams lease release for ${this.group} failed`,
          error,
        ),
      );
    }
  }
}
