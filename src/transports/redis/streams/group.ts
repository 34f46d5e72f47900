import { randomUUID } from 'node:crypto';
import { roundRobinShare, within } from '../../../transport/kernel.js';
import { redisError } from '../common.js';
import { PartitionWorker, type Context } from './subscription.js';

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
  private readonly workers = new Map<number, PartitionWorker>();
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
  ) {}

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
        for (const partition of [...this.workers.keys()]) void this.drop(partition, false);
      }
      throw error;
    }
    this.lastRenewed = Date.now();
    if (this.closed) return;
    const share = new Set(roundRobinShare(partitions, members.sort(), this.id));
    for (const [partition] of this.workers) {
      if (owners[partition] !== this.id) void this.drop(partition, false);
      else if (!share.has(partition)) void this.drop(partition, true);
    }
    const wanted = [...share].filter(
      (partition) =>
        !this.workers.has(partition) &&
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
      if (got[index] === 1) {
        this.workers.set(
          partition,
          new PartitionWorker(this.context, this.group, this.id, partition),
        );
      }
    });
  }

  /** Stops a worker (after its handler in flight) and gives its lease back if still ours. */
  private drop(partition: number, release: boolean): Promise<void> {
    const worker = this.workers.get(partition);
    if (!worker) return Promise.resolve();
    this.workers.delete(partition);
    this.stopping.add(partition);
    const releasing = (async () => {
      if (!(await within(worker.stop(), this.context.sessionTimeoutMs))) worker.abandoned = true;
      if (release) await this.release([partition], false);
    })()
      .catch((error: unknown) =>
        this.context.onError(
          redisError(
            'CONNECTION_FAILED',
            `redis-streams hand-over of stream ${partition} failed`,
            error,
          ),
        ),
      )
      .finally(() => {
        this.stopping.delete(partition);
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
    const workers = [...this.workers.values()];
    this.workers.clear();
    if (!(await within(Promise.all(workers.map((worker) => worker.stop())), timeoutMs))) {
      for (const worker of workers) worker.abandoned = true;
    }
    await Promise.all(workers.map((worker) => worker.flushAcks()));
    await within(Promise.all(this.releasing), timeoutMs);
    try {
      await this.release(
        workers.map((worker) => worker.partition),
        true,
      );
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
