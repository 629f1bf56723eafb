/**
 * Workers: BullMQ Workers, one per sink, calling the same sinks the in-process dispatcher calls.
 *
 * - ok → the job completes; `{ok:false, retry:false}` → UnrecoverableError, failed at once (dead);
 *   `{ok:false, retry:true}` → a RetryLater error: BullMQ retries on the bridge's schedule (custom
 *   backoff strategy `bridgeBackoff`), never sooner than the sink's Retry-After. After the last attempt
 *   the job stays in the failed set: a dead letter, shown by `status`, retried by `replay`.
 * - Pacing (Slack's one message a second) is BullMQ's queue-level rate limiter, kept in Redis, so it
 *   holds across every worker process together.
 * - A 429 (or a 503 with Retry-After) pauses the sink's whole queue through the same limiter
 *   (`Worker.rateLimit`): no worker, in any process, takes a job of that sink until Retry-After has
 *   passed. A job this process had already taken when the pause came goes back to the queue with
 *   `Worker.RateLimitError`, its attempts unchanged.
 * - Each sink's state (ok, failing, paused) and its quiet logs are the in-process dispatcher's
 *   (src/delivery/health.ts): a line per change of state and a summary a minute, not one per attempt.
 *   The circuit breaker is not: jobs of a backfill wait on the same queues, and a backfill must end.
 * - A worker killed mid-job loses nothing: its lock runs out after BRIDGE_WORKER_LOCK_SECONDS and
 *   another worker's stalled-job check puts the job back in the queue (at least once).
 */
import os from 'node:os';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/index.js';
import { ConfigError, oneLine } from '../errors.js';
import { attemptOf } from '../delivery/attempts.js';
import type { DeliveryHooks } from '../delivery/backend.js';
import { SinkHealth } from '../delivery/health.js';
import { SHARED_PAUSE_READ_MS, cappedRetryAfter, pacedIntervalMs } from '../delivery/retry.js';
import type { SinkState } from '../delivery/states.js';
import type { AnyBridgeEvent } from '../events/types.js';
import { WorkerMetrics } from '../ops/metrics.js';
import { startOpsServer, type Health } from '../ops/server.js';
import { closeSinks, createSinks } from '../sinks/index.js';
import type { DeliveryResult, Sink } from '../sinks/types.js';
import { AttemptPusher, attemptsKey } from './attempts.js';
import { LOST_JOB, PAUSE_LIMIT, RetryLater, STATE_TTL_MS, bridgeBackoff, connectionFor, plainClient, queueName, sinkStateKey, waitForRedis, type JobData } from './redis.js';
import { redactUrl } from '../http.js';

export interface WorkerPoolOptions {
  /** Deliveries in flight per sink in this process; default: the sink's own concurrency. */
  concurrency?: number | null;
  /** Each attempt's outcome and each change of a sink's state, for metrics. */
  hooks?: DeliveryHooks;
}

/**
 * A limiter every worker of a sink that is not paced gets, so that the queue can be paused: BullMQ
 * honours a queue's rate limit only in workers that have one. Never reached by itself.
 */
const UNPACED_LIMITER = { max: 1_000_000_000, duration: 1_000 };

/** The workers of one process: one BullMQ Worker per sink. */
export class WorkerPool {
  private readonly workers: Worker[] = [];
  private readonly sinkHealth = new Map<string, SinkHealth>();
  /** The queue's pause as last read, per sink, and when. */
  private readonly queuePause = new Map<string, { until: number; readAt: number }>();
  private lastErrorLog = 0;
  /** Each attempt, for the attempt log that the relay in `run` writes. */
  private attempts: AttemptPusher | null = null;

  constructor(
    private readonly config: BridgeConfig,
    private readonly sinks: Sink[],
    private readonly logger: Logger,
    private readonly opts: WorkerPoolOptions = {},
  ) {}

  start(): void {
    const q = this.config.queue;
    const lockMs = q.lockSeconds * 1000;
    this.attempts = new AttemptPusher(plainClient(q), attemptsKey(q.prefix), this.logger);
    for (const sink of this.sinks) {
      const paced = sink.minIntervalMs > 0;
      const health = new SinkHealth(sink.name, {
        logger: this.logger,
        baseSeconds: this.config.retry.baseSeconds,
        breaker: false,
        onChange: (state) => {
          this.opts.hooks?.onState?.(sink.name, state);
          void this.recordState(worker, state);
        },
      });
      this.sinkHealth.set(sink.name, health);
      const worker: Worker<JobData> = new Worker<JobData>(queueName(sink.name), (job, _token, signal) => this.process(sink, worker, health, job, signal), {
        connection: connectionFor(q),
        prefix: q.prefix,
        name: `${os.hostname()}:${process.pid}`,
        concurrency: this.opts.concurrency ?? sink.concurrency,
        // Queue-wide: one attempt per interval across all workers together.
        limiter: paced ? { max: 1, duration: pacedIntervalMs(sink.minIntervalMs) } : UNPACED_LIMITER,
        lockDuration: lockMs,
        stalledInterval: lockMs,
        // A job whose worker died is put back; one that kills its worker every time ends up failed.
        maxStalledCount: 3,
        settings: { backoffStrategy: bridgeBackoff },
      });
      worker.on('error', (err) => {
        if (Date.now() - this.lastErrorLog < 30_000) return;
        this.lastErrorLog = Date.now();
        this.logger.error({ sink: sink.name, err: oneLine(err) }, 'worker: Redis error; retrying');
      });
      this.workers.push(worker);
    }
    this.logger.info(
      { redis: redactUrl(q.redisUrl ?? ''), prefix: q.prefix, sinks: this.sinks.map((s) => s.name), concurrency: this.opts.concurrency ?? 'per sink' },
      'worker taking jobs from the Redis queues',
    );
  }

  /** The sink's state for `status` (which reads it with the queue's counts); the last worker to change it wins. */
  private async recordState(worker: Worker, state: SinkState): Promise<void> {
    try {
      const client = (await worker.client) as unknown as Redis;
      await client.set(sinkStateKey(this.config.queue.prefix, worker.name), JSON.stringify({ state, since: Date.now(), worker: `${os.hostname()}:${process.pid}` }), 'PX', STATE_TTL_MS);
    } catch (err) {
      this.logger.debug({ err: oneLine(err) }, 'could not record the sink state in Redis');
    }
  }

  /**
   * Until when another process paused the sink's queue (0: not paused), read at most every
   * SHARED_PAUSE_READ_MS: a job taken just before the pause was set is held back instead of sent.
   */
  private async queuePausedUntil(worker: Worker, sink: string): Promise<number> {
    const now = Date.now();
    const cached = this.queuePause.get(sink);
    if (cached && now - cached.readAt < SHARED_PAUSE_READ_MS) return cached.until;
    let until = 0;
    try {
      const client = (await worker.client) as unknown as Redis;
      const key = worker.keys.limiter!;
      const [[, value], [, ttl]] = (await client.pipeline().get(key).pttl(key).exec()) as [[unknown, string | null], [unknown, number]];
      if (Number(value ?? 0) >= PAUSE_LIMIT && ttl > 0) until = now + ttl;
    } catch {
      until = cached?.until ?? 0; // Redis away for a moment: this process's own state decides
    }
    this.queuePause.set(sink, { until, readAt: now });
    return until;
  }

  /** Holds the sink's whole queue, in every process, for this long (BullMQ's queue rate limit). */
  private async holdQueue(worker: Worker, ms: number): Promise<void> {
    try {
      await worker.rateLimit(Math.max(1, Math.round(ms)));
    } catch (err) {
      this.logger.debug({ err: oneLine(err) }, 'could not pause the queue in Redis; this process waits anyway');
    }
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
      return { ok: false, reason: `Redis: ${oneLine(err)}` };
    } finally {
      clearTimeout(timer);
    }
    return { ok: true, reason: `connected to Redis; ${this.workers.length} worker(s) running: ${this.sinks.map((s) => s.name).join(', ')}` };
  }

  private async process(sink: Sink, worker: Worker, health: SinkHealth, job: Job<JobData>, signal?: AbortSignal): Promise<{ status?: number }> {
    const d = job.data as JobData | undefined;
    if (!d || typeof d.body !== 'string' || typeof d.eventId !== 'string') {
      // Redis lost this job's keys under it: nothing to deliver. The relay enqueues its row again.
      this.logger.warn({ sink: sink.name, job: job.id }, 'job data missing in Redis; the relay enqueues it again');
      throw new UnrecoverableError(`${LOST_JOB} (job ${job.id})`);
    }
    // Paused: back to the queue, attempts unchanged (and the queue held for every worker meanwhile).
    const shared = await this.queuePausedUntil(worker, sink.name);
    if (shared > Date.now()) health.pauseShared(shared);
    const gate = health.gate();
    if (!gate.go) {
      if (shared <= Date.now()) await this.holdQueue(worker, Math.min(gate.untilMs - Date.now(), 60_000));
      throw Worker.RateLimitError();
    }
    const probe = gate.probe;
    const attempt = job.attemptsMade + 1 + (d.priorAttempts ?? 0);
    const maxAttempts = (job.opts.attempts ?? 1) + (d.priorAttempts ?? 0);
    const began = Date.now();
    let result: DeliveryResult;
    try {
      const event = JSON.parse(d.body) as AnyBridgeEvent;
      result = await sink.deliver({ eventId: d.eventId, eventType: d.type, body: d.body, event, route: d.route ?? null, attempt }, signal ?? new AbortController().signal);
    } catch (err) {
      result = { ok: false, retry: true, reason: `sink failed: ${oneLine(err)}` };
    }
    const ms = Date.now() - began;
    const log = this.logger;
    const last = attempt >= maxAttempts;
    this.attempts?.push(d.eventId, sink.name, attemptOf(result, result.ok ? 'delivered' : !result.retry || last ? 'dead' : 'retrying', began, ms));
    if (result.ok) {
      this.opts.hooks?.onOutcome?.(sink, 'delivered', d.type, ms);
      health.record(result, 'delivered', { probe });
      log.debug({ sink: sink.name, eventId: d.eventId, event: d.type, attempt, ms }, 'delivered');
      return result.status !== undefined ? { status: result.status } : {};
    }
    const detail = { eventId: d.eventId, eventType: d.type, attempt, probe };
    if (!result.retry || last) {
      this.opts.hooks?.onOutcome?.(sink, 'dead', d.type, ms);
      const until = health.record(result, 'dead', detail);
      if (until !== null) await this.holdQueue(worker, until - Date.now());
      log.debug({ sink: sink.name, ...detail, reason: result.reason }, 'dead-lettered');
      throw new UnrecoverableError(result.reason);
    }
    this.opts.hooks?.onOutcome?.(sink, 'retrying', d.type, ms);
    const retryAfterMs = result.retryAfterMs === undefined ? undefined : cappedRetryAfter(result.retryAfterMs);
    const until = health.record(result, 'retrying', detail);
    if (until !== null) await this.holdQueue(worker, until - Date.now());
    log.debug({ sink: sink.name, ...detail, reason: result.reason, ...(retryAfterMs ? { retryAfterMs } : {}) }, 'delivery failed; will retry');
    throw new RetryLater(result.reason, retryAfterMs);
  }

  /**
   * Stops taking jobs; lets jobs in flight finish for up to graceMs, then aborts them. An aborted or
   * unfinished job is not lost: its lock runs out and another worker takes it again.
   */
  async stop(graceMs = 8_000): Promise<void> {
    for (const h of this.sinkHealth.values()) h.stop();
    const closing = Promise.allSettled(this.workers.map((w) => w.close()));
    const timedOut = await Promise.race([closing.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), graceMs).unref())]);
    if (timedOut) {
      for (const w of this.workers) w.cancelAllJobs('shutting down');
      const closed = await Promise.race([Promise.allSettled(this.workers.map((w) => w.close(true))).then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 1_000).unref())]);
      if (!closed) await Promise.allSettled(this.workers.map((w) => w.disconnect()));
    }
    await this.attempts?.close();
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
    hooks: {
      onOutcome: (sink, outcome, event) => metrics.deliveries.inc({ sink: sink.name, outcome, event }),
      onState: (sink, state) => metrics.setSinkState(sink, state),
    },
  });
  for (const s of sinks) metrics.setSinkState(s.name, 'ok');
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
