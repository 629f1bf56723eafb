/**
 * Workers: BullMQ Workers, one per sink, calling the same sinks the in-process dispatcher calls.
 *
 * - ok → the job completes; `{ok:false, retry:false}` → UnrecoverableError, failed at once (dead);
 *   `{ok:false, retry:true}` → a RetryLater error: BullMQ retries on the bridge's schedule (custom
 *   backoff strategy `bridgeBackoff`), never sooner than the sink's Retry-After. After the last attempt
 *   the job stays in the failed set: a dead letter, shown by `status`, retried by `replay`.
 * - Pacing (Slack's one message a second) is BullMQ's queue-level rate limiter, kept in Redis, so it
 *   holds across every worker process together.
 * - A worker killed mid-job loses nothing: its lock runs out after BRIDGE_WORKER_LOCK_SECONDS and
 *   another worker's stalled-job check puts the job back in the queue (at least once).
 */
import os from 'node:os';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ConfigError, type BridgeConfig } from '../config.js';
import { pacedIntervalMs } from '../delivery/index.js';
import type { AnyBridgeEvent } from '../events/types.js';
import { WorkerMetrics } from '../ops/metrics.js';
import { startOpsServer, type Health } from '../ops/server.js';
import { closeSinks, createSinks } from '../sinks/index.js';
import type { DeliveryResult, Sink } from '../sinks/types.js';
import { LOST_JOB, RetryLater, bridgeBackoff, connectionFor, queueName, redactUrl, waitForRedis, type JobData } from './redis.js';

export interface WorkerPoolOptions {
  /** Deliveries in flight per sink in this process; default: the sink's own concurrency. */
  concurrency?: number | null;
  /** Outcome of each attempt, for metrics. */
  onAttempt?(sink: Sink, outcome: 'delivered' | 'retrying' | 'dead', eventType: string, ms: number): void;
}

/** The workers of one process: one BullMQ Worker per sink. */
export class WorkerPool {
  private readonly workers: Worker[] = [];
  private lastErrorLog = 0;

  constructor(
    private readonly config: BridgeConfig,
    private readonly sinks: Sink[],
    private readonly logger: Logger,
    private readonly opts: WorkerPoolOptions = {},
  ) {}

  start(): void {
    const q = this.config.queue;
    const lockMs = q.lockSeconds * 1000;
    for (const sink of this.sinks) {
      const paced = sink.minIntervalMs > 0;
      const worker = new Worker<JobData>(queueName(sink.name), (job, _token, signal) => this.process(sink, job, signal), {
        connection: connectionFor(q),
        prefix: q.prefix,
        name: `${os.hostname()}:${process.pid}`,
        concurrency: this.opts.concurrency ?? sink.concurrency,
        // Queue-wide: one attempt per interval across all workers together.
        ...(paced ? { limiter: { max: 1, duration: pacedIntervalMs(sink.minIntervalMs) } } : {}),
        lockDuration: lockMs,
        stalledInterval: lockMs,
        // A job whose worker died is put back; one that kills its worker every time ends up failed.
        maxStalledCount: 3,
        settings: { backoffStrategy: bridgeBackoff },
      });
      worker.on('error', (err) => {
        if (Date.now() - this.lastErrorLog < 30_000) return;
        this.lastErrorLog = Date.now();
        this.logger.error({ sink: sink.name, err: err.message.split('\n', 1)[0] }, 'worker: Redis error; retrying');
      });
      this.workers.push(worker);
    }
    this.logger.info(
      { redis: redactUrl(q.redisUrl ?? ''), prefix: q.prefix, sinks: this.sinks.map((s) => s.name), concurrency: this.opts.concurrency ?? 'per sink' },
      'worker taking jobs from the Redis queues',
    );
  }

  /** Healthy: every worker runs and Redis answers a PING within 2 s. */
  async health(): Promise<Health> {
    const stopped = this.workers.filter((w) => !w.isRunning());
    if (stopped.length) return { ok: false, reason: `workers not running: ${stopped.map((w) => w.name).join(', ')}` };
    const first = this.workers[0];
    if (!first) return { ok: false, reason: 'no workers' };
    // The connections are ioredis clients: BullMQ makes them from connectionFor()'s options.
    const client = (await first.client) as unknown as Redis;
    if (client.status !== 'ready') return { ok: false, reason: `Redis connection ${client.status}` };
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('no answer to PING within 2 s')), 2_000);
        }),
      ]);
    } catch (err) {
      return { ok: false, reason: `Redis: ${(err as Error).message.split('\n', 1)[0]}` };
    } finally {
      clearTimeout(timer);
    }
    return { ok: true, reason: `connected to Redis; ${this.workers.length} worker(s) running: ${this.sinks.map((s) => s.name).join(', ')}` };
  }

  private async process(sink: Sink, job: Job<JobData>, signal?: AbortSignal): Promise<{ status?: number }> {
    const d = job.data as JobData | undefined;
    if (!d || typeof d.body !== 'string' || typeof d.eventId !== 'string') {
      // Redis lost this job's keys under it: nothing to deliver. The relay enqueues its row again.
      this.logger.warn({ sink: sink.name, job: job.id }, 'job data missing in Redis; the relay enqueues it again');
      throw new UnrecoverableError(`${LOST_JOB} (job ${job.id})`);
    }
    const attempt = job.attemptsMade + 1 + (d.priorAttempts ?? 0);
    const maxAttempts = (job.opts.attempts ?? 1) + (d.priorAttempts ?? 0);
    const began = Date.now();
    let result: DeliveryResult;
    try {
      const event = JSON.parse(d.body) as AnyBridgeEvent;
      result = await sink.deliver({ eventId: d.eventId, eventType: d.type, body: d.body, event, attempt }, signal ?? new AbortController().signal);
    } catch (err) {
      result = { ok: false, retry: true, reason: `sink failed: ${(err as Error).message.split('\n')[0]}` };
    }
    const ms = Date.now() - began;
    const log = this.logger;
    if (result.ok) {
      this.opts.onAttempt?.(sink, 'delivered', d.type, ms);
      log.debug({ sink: sink.name, eventId: d.eventId, event: d.type, attempt, ms }, 'delivered');
      return result.status !== undefined ? { status: result.status } : {};
    }
    const last = attempt >= maxAttempts;
    if (!result.retry || last) {
      this.opts.onAttempt?.(sink, 'dead', d.type, ms);
      log.error(
        { sink: sink.name, eventId: d.eventId, event: d.type, attempt, reason: result.reason },
        result.retry ? 'dead-lettered after the last attempt; `langfuse-bridge replay` sends it again' : 'dead-lettered: the sink refused it for good; `langfuse-bridge replay` sends it again',
      );
      throw new UnrecoverableError(result.reason);
    }
    this.opts.onAttempt?.(sink, 'retrying', d.type, ms);
    log.warn({ sink: sink.name, eventId: d.eventId, event: d.type, attempt, reason: result.reason, ...(result.retryAfterMs ? { retryAfterMs: result.retryAfterMs } : {}) }, 'delivery failed; will retry');
    throw new RetryLater(result.reason, result.retryAfterMs);
  }

  /**
   * Stops taking jobs; lets jobs in flight finish for up to graceMs, then aborts them. An aborted or
   * unfinished job is not lost: its lock runs out and another worker takes it again.
   */
  async stop(graceMs = 8_000): Promise<void> {
    const closing = Promise.allSettled(this.workers.map((w) => w.close()));
    const timedOut = await Promise.race([closing.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), graceMs).unref())]);
    if (timedOut) {
      for (const w of this.workers) w.cancelAllJobs('shutting down');
      const closed = await Promise.race([Promise.allSettled(this.workers.map((w) => w.close(true))).then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 1_000).unref())]);
      if (!closed) await Promise.allSettled(this.workers.map((w) => w.disconnect()));
    }
  }
}

export interface WorkerHandle {
  done: Promise<void>;
  stop(): void;
  /** With BRIDGE_HTTP_PORT: where /healthz and /metrics are served. */
  opsUrl?: string;
}

/** `langfuse-bridge worker`: works the queues of every configured sink (or one) until stopped. */
export async function runWorker(config: BridgeConfig, logger: Logger, o: { sink?: string | null; concurrency?: number | null } = {}): Promise<WorkerHandle> {
  if (!config.queue.redisUrl) {
    throw new ConfigError('BRIDGE_REDIS_URL is required by `worker` (the Redis that `run` relays deliveries to), e.g. redis://127.0.0.1:6379; without it `run` delivers in-process');
  }
  // With BRIDGE_HTTP_PORT: /healthz (Redis answers, the workers run) and /metrics, bound before the
  // wait for Redis so that a taken port is said at once.
  const metrics = new WorkerMetrics();
  let pool: WorkerPool | null = null;
  const ops =
    config.httpPort !== null
      ? await startOpsServer(config.httpHost, config.httpPort, metrics, () => pool?.health() ?? { ok: false, reason: 'starting: waiting for Redis' }, logger)
      : null;
  let all: Sink[];
  let sinks: Sink[];
  try {
    await waitForRedis(config.queue, logger);
    all = (await createSinks(config, logger)).sinks;
    sinks = all;
    if (o.sink) {
      const s = all.find((x) => x.name === o.sink);
      if (!s) {
        await closeSinks(all);
        throw new ConfigError(`--sink ${o.sink} is not a configured sink; configured: ${all.map((x) => x.name).join(', ')}`);
      }
      sinks = [s];
    }
  } catch (err) {
    await ops?.close();
    throw err;
  }
  const started = new WorkerPool(config, sinks, logger, {
    concurrency: o.concurrency ?? null,
    onAttempt: (sink, outcome, event) => metrics.deliveries.inc({ sink: sink.name, outcome, event }),
  });
  started.start();
  pool = started;
  const abort = new AbortController();
  const done = (async () => {
    await new Promise<void>((resolve) => abort.signal.addEventListener('abort', () => resolve(), { once: true }));
    logger.info('stopping: no more jobs; letting deliveries in flight finish');
    await started.stop(7_000);
    await ops?.close();
    await closeSinks(all);
    logger.info('stopped');
  })();
  return { done, stop: () => abort.abort(), opsUrl: ops?.url };
}
