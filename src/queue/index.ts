/**
 * The Redis delivery backend, as the commands see it (a DeliveryBackend, like the in-process
 * Dispatcher): relays the outbox to Redis and, with `run --with-worker`, also works the queues in this
 * process; plus what `status` and `replay` read from and do in Redis.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/index.js';
import type { DeliveryBackend, DeliveryHooks } from '../delivery/backend.js';
import type { SinkState } from '../delivery/states.js';
import type { Sink } from '../sinks/types.js';
import type { Store } from '../store/index.js';
import { PAUSE_LIMIT, connectionFor, parseJobId, plainClient, queueName, sinkStateKey, waitForRedis, RedisUnreachable } from './redis.js';
import { redactUrl } from '../http.js';
import { Relay } from './relay.js';
import { WorkerPool } from './worker.js';

export { waitForRedis } from './redis.js';

export interface QueueDeliveryOptions {
  /** Only rows of this origin (a backfill's); null: all. */
  origin?: string | null;
  /** Also work the queues in this process (`run --with-worker`). */
  withWorker?: boolean;
  reconcileMs?: number;
  hooks?: DeliveryHooks;
}

export class QueueDelivery implements DeliveryBackend {
  private readonly relay: Relay;
  private workers: WorkerPool | null = null;

  constructor(
    store: Store,
    private readonly sinks: Sink[],
    private readonly config: BridgeConfig,
    private readonly logger: Logger,
    private readonly opts: QueueDeliveryOptions = {},
  ) {
    const byName = new Map(sinks.map((s) => [s.name, s]));
    this.relay = new Relay(store, sinks.map((s) => s.name), {
      config,
      logger,
      origin: opts.origin ?? null,
      reconcileMs: opts.reconcileMs,
      onClosed: (sink, outcome, type) => {
        const s = byName.get(sink);
        if (s && !opts.withWorker) opts.hooks?.onOutcome?.(s, outcome, type, 0);
      },
    });
  }

  start(): void {
    this.relay.start();
    if (this.opts.withWorker) {
      this.workers = new WorkerPool(this.config, this.sinks, this.logger, { hooks: this.opts.hooks });
      this.workers.start();
    }
  }

  wake(): void {
    this.relay.wake();
  }

  /** None: the relay reads new rows from the outbox and hands them to Redis. */
  handoff(): null {
    return null;
  }

  drain(signal?: AbortSignal): Promise<void> {
    return this.relay.drain(signal);
  }

  async stop(graceMs = 8_000): Promise<void> {
    await this.workers?.stop(Math.max(500, graceMs - 1_500));
    await this.relay.stop();
  }
}

// --- status -----------------------------------------------------------------------------------

export interface QueueStatus {
  redis: string;
  prefix: string;
  reachable: boolean;
  error: string | null;
  sinks: Array<{
    name: string;
    queue: string;
    /** As the workers last recorded it; paused while the queue's rate limit holds it for a Retry-After. */
    state: SinkState | null;
    pausedUntil: string | null;
    waiting: number;
    active: number;
    delayed: number;
    completed: number;
    failed: number;
    workers: number;
  }>;
}

/** Per-sink job counts from Redis; never waits long (status must answer while Redis is away). */
export async function queueStatus(config: BridgeConfig, sinks: string[]): Promise<QueueStatus> {
  const q = config.queue;
  const out: QueueStatus = { redis: redactUrl(q.redisUrl ?? ''), prefix: q.prefix, reachable: false, error: null, sinks: [] };
  try {
    await waitForRedis(q, undefined, Math.min(q.connectWaitSeconds, 3));
  } catch (err) {
    out.error = err instanceof RedisUnreachable ? err.code : (err as Error).message;
    return out;
  }
  out.reachable = true;
  for (const name of sinks) {
    const queue = new Queue(queueName(name), { connection: connectionFor(q, { maxRetriesPerRequest: 1 }), prefix: q.prefix, skipMetasUpdate: true });
    queue.on('error', () => undefined);
    try {
      const c = await queue.getJobCounts('waiting', 'prioritized', 'paused', 'active', 'delayed', 'completed', 'failed');
      const client = (await queue.client) as unknown as Redis;
      const [recorded, limit, limitTtl] = await Promise.all([client.get(sinkStateKey(q.prefix, queueName(name))), client.get(queue.keys.limiter!), client.pttl(queue.keys.limiter!)]);
      // A pause is the limiter set far above any real count (Worker.rateLimit); pacing counts stay small.
      const pausedUntil = Number(limit ?? 0) >= PAUSE_LIMIT && limitTtl > 0 ? new Date(Date.now() + limitTtl).toISOString() : null;
      let state: SinkState | null = null;
      try {
        state = recorded ? (JSON.parse(recorded) as { state: SinkState }).state : null;
      } catch {
        state = null;
      }
      if (pausedUntil) state = 'paused';
      else if (state === 'paused') state = 'failing';
      out.sinks.push({
        name,
        queue: queueName(name),
        state,
        pausedUntil,
        waiting: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.paused ?? 0),
        active: c.active ?? 0,
        delayed: c.delayed ?? 0,
        completed: c.completed ?? 0,
        failed: c.failed ?? 0,
        workers: await queue.getWorkersCount(),
      });
    } finally {
      await queue.close().catch(() => undefined);
    }
  }
  return out;
}

export function formatQueueStatus(s: QueueStatus): string[] {
  const lines = ['', `redis  ${s.redis}  prefix ${s.prefix}${s.reachable ? '' : `  UNREACHABLE (${s.error ?? 'no answer'}): queue counts unavailable`}`];
  if (!s.reachable) return lines;
  lines.push('QUEUE (REDIS)          WAITING  ACTIVE  DELAYED  COMPLETED  FAILED  WORKERS');
  for (const q of s.sinks) {
    lines.push(
      `${q.name.padEnd(22)} ${String(q.waiting).padStart(7)}  ${String(q.active).padStart(6)}  ${String(q.delayed).padStart(7)}  ${String(q.completed).padStart(9)}  ${String(q.failed).padStart(6)}  ${String(q.workers).padStart(7)}`,
    );
  }
  if (s.sinks.some((q) => q.failed > 0)) lines.push('failed jobs are dead letters: `langfuse-bridge replay` retries them');
  if (s.sinks.some((q) => q.waiting + q.delayed > 0 && q.workers === 0)) lines.push('no worker is connected: start `langfuse-bridge worker` (or `run --with-worker`)');
  return lines;
}

// --- replay -----------------------------------------------------------------------------------

/**
 * Retries failed jobs (the dead letters Redis holds) of these sinks that failed since `sinceMs`, and
 * opens their outbox rows again so the relay closes them when the retried jobs end. Returns the
 * retried jobs; the caller requeues the remaining dead rows of the outbox.
 */
export async function retryFailedJobs(config: BridgeConfig, store: Store, sinks: string[], sinceMs: number | null, logger?: Logger): Promise<number> {
  const q = config.queue;
  await waitForRedis(q, logger);
  const client = plainClient(q);
  let n = 0;
  try {
    for (const name of sinks) {
      const queue = new Queue(queueName(name), { connection: connectionFor(q), prefix: q.prefix });
      queue.on('error', () => undefined);
      try {
        // Failed jobs, newest first, by finish time.
        const ids = await client.zrangebyscore(queue.keys.failed!, sinceMs ?? '-inf', '+inf');
        for (const id of ids) {
          const job = await queue.getJob(id);
          if (!job) continue;
          await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
          const parsed = parseJobId(id);
          if (parsed) store.reopenRelayed(parsed.eventId, name, parsed.gen);
          n++;
        }
      } finally {
        await queue.close().catch(() => undefined);
      }
    }
  } finally {
    client.disconnect();
  }
  return n;
}
