/**
 * The relay: moves outbox rows into the Redis queues and closes them when their jobs end.
 *
 * - The poller still commits events, seen versions and its cursor to SQLite in one transaction; the
 *   relay only reads the outbox. A row is marked handed-over ('delivering', owner 'redis') first and
 *   then added to the queue of its sink; if Redis does not take it, the mark is undone and the relay
 *   tries again later. A crash between the two leaves a marked row without a job, which the
 *   reconciliation below finds and re-enqueues under the same job id.
 * - A row is closed only when its job ended: 'delivered' when the job completed, 'dead' when it
 *   failed for good (the failed job stays in Redis for `replay`). The relay learns this from BullMQ's
 *   event stream (QueueEvents) and, in case it missed events (it was stopped, the stream was
 *   trimmed), from a periodic reconciliation that reads each open row's job: in the completed set,
 *   in the failed set, still there, or gone. Workers never write to SQLite: they may run elsewhere.
 * - Gone means Redis lost it (a restart without persistence, a failover, a flush): the row is
 *   enqueued again. A finished job is not mistaken for a lost one: at most MAX_OPEN rows of a sink
 *   are open at once, and Redis keeps more completed jobs than that (KEEP_COMPLETED) for a day, so
 *   even a relay that was stopped for hours still finds the end of every job it handed over.
 * - Redis going away while running: polling goes on into the outbox, the relay logs once, retries
 *   with backoff, and catches up when Redis is back.
 */
import { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/index.js';
import type { RelayOutcome, RelayRow, Store } from '../store/index.js';
import { attemptsKey, drainAttempts } from './attempts.js';
import { BACKOFF_TYPE, KEEP_COMPLETED, LOST_JOB, MAX_OPEN, connectionFor, jobIdFor, keepFailed, parseJobId, plainClient, queueName, type JobData } from './redis.js';
import { redactUrl } from '../http.js';
import type { FinalStatus } from '../delivery/states.js';
import { oneLine } from '../errors.js';
import { Waker } from '../delivery/waker.js';

export interface RelayOptions {
  config: BridgeConfig;
  logger: Logger;
  /** Only rows of this origin (a backfill's); null: all. */
  origin?: string | null;
  /** Rows handed over per round. */
  batch?: number;
  /** Time between reconciliations. */
  reconcileMs?: number;
  /** Longest wait between outbox checks when idle. */
  idleMs?: number;
  /** Rows closed, for metrics. */
  onClosed?(sink: string, outcome: FinalStatus, eventType: string): void;
}

/** At most one line a minute per sink about its dead letters. */
const DEAD_LOG_EVERY_MS = 60_000;

/** Deletes a job hash that has no `timestamp` (what BullMQ sets on every job it adds): a leftover. */
const CLEAR_PARTIAL_JOB = `if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('HEXISTS', KEYS[1], 'timestamp') == 0 then return redis.call('DEL', KEYS[1]) end return 0`;

interface SinkQueue {
  queue: Queue;
  events: QueueEvents;
}

export class Relay {
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly queues = new Map<string, SinkQueue>();
  private readonly waker = new Waker();
  private pendingClose: RelayOutcome[] = [];
  private closeTimer: NodeJS.Timeout | null = null;
  private readonly client: Redis;
  private readonly origin: string | null;
  private down: { since: number; lastLog: number } | null = null;
  /** Rows relayed, closed and re-enqueued since start (status, tests). */
  readonly stats = { relayed: 0, delivered: 0, dead: 0, reenqueued: 0 };

  constructor(
    private readonly store: Store,
    private readonly sinks: string[],
    private readonly opts: RelayOptions,
  ) {
    this.origin = opts.origin ?? null;
    this.client = plainClient(opts.config.queue);
  }

  private get log(): Logger {
    return this.opts.logger;
  }

  /** The queue (and its event listener) of one sink, created on first use. */
  private sinkQueue(sink: string): SinkQueue {
    let q = this.queues.get(sink);
    if (q) return q;
    const cfg = this.opts.config.queue;
    const name = queueName(sink);
    // Adds fail at once while Redis is away (the rows stay in the outbox), instead of piling up in memory.
    const queue = new Queue(name, { connection: connectionFor(cfg, { enableOfflineQueue: false, maxRetriesPerRequest: 1 }), prefix: cfg.prefix });
    const events = new QueueEvents(name, { connection: connectionFor(cfg), prefix: cfg.prefix });
    queue.on('error', (err) => this.redisError(err));
    events.on('error', (err) => this.redisError(err));
    events.on('completed', ({ jobId }) => this.jobEnded(sink, jobId, 'delivered', null));
    events.on('failed', ({ jobId, failedReason }) => this.jobEnded(sink, jobId, 'dead', failedReason));
    q = { queue, events };
    this.queues.set(sink, q);
    return q;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.lastWorkerCheck = Date.now(); // workers starting alongside get time to connect
    for (const s of this.sinks) this.sinkQueue(s);
    this.loopDone = this.loop();
  }

  wake(): void {
    this.waker.wake();
  }

  private redisError(err: unknown): void {
    const now = Date.now();
    if (!this.down) this.down = { since: now, lastLog: 0 };
    if (now - this.down.lastLog > 30_000) {
      this.down.lastLog = now;
      this.log.error(
        { redis: redactUrl(this.opts.config.queue.redisUrl ?? ''), err: oneLine(err), waiting: safe(() => this.store.pending(this.origin), -1) },
        'Redis unreachable: events keep going into the outbox and are relayed when Redis is back',
      );
    }
  }

  private redisBack(): void {
    if (!this.down) return;
    this.log.info({ downSeconds: Math.round((Date.now() - this.down.since) / 1000) }, 'Redis reachable again; relaying the outbox');
    this.down = null;
  }

  /** One loop does both jobs, so a reconciliation never races a hand-over of the same rows. */
  private async loop(): Promise<void> {
    const batch = this.opts.batch ?? 500;
    const idleMs = this.opts.idleMs ?? 500;
    const every = this.opts.reconcileMs ?? 5_000;
    // The first reconciliation runs at once: jobs may have ended while no relay was listening.
    let nextReconcile = 0;
    let failures = 0;
    while (this.running) {
      let moved = 0;
      try {
        if (Date.now() >= nextReconcile) {
          await this.reconcileAll();
          nextReconcile = Date.now() + every;
          await this.checkWorkers();
        }
        moved = await this.relayOnce(batch);
        await this.drainAttempts();
        if (failures) this.redisBack();
        failures = 0;
      } catch (err) {
        failures++;
        this.redisError(err);
      }
      if (!this.running) break;
      if (failures) await this.waker.sleep(Math.min(5_000, 100 * 2 ** Math.min(failures, 6)));
      else if (moved < batch) await this.waker.sleep(Math.max(5, Math.min(idleMs, nextReconcile - Date.now())));
    }
  }

  /** The workers' attempts, into the attempt log (see ./attempts.ts). */
  private async drainAttempts(): Promise<void> {
    const key = attemptsKey(this.opts.config.queue.prefix);
    while ((await drainAttempts(this.client, key, this.store)) === 1000 && this.running);
  }

  /** Hands up to `batch` outbox rows to Redis; returns how many. */
  async relayOnce(batch: number): Promise<number> {
    // Each sink has at most MAX_OPEN rows in Redis: bounded memory, and a slow sink holds back no other.
    const open = this.store.relayedBySink();
    const sinks = this.sinks.filter((s) => (open.get(s) ?? 0) < MAX_OPEN);
    if (sinks.length === 0) return 0;
    const rows = this.store.takeForRelay(sinks, batch, this.origin);
    if (rows.length === 0) return 0;
    try {
      await this.addJobs(rows);
    } catch (err) {
      // Not taken: back to the outbox as they were; a job that did get in is found again by its id.
      const released = safe(() => this.store.releaseRelayed(rows), 0);
      this.log.debug({ rows: rows.length, released }, 'Redis did not take the rows; they stay in the outbox');
      throw err;
    }
    this.stats.relayed += rows.length;
    this.log.debug({ rows: rows.length }, 'relayed to Redis');
    return rows.length;
  }

  private async addJobs(rows: RelayRow[]): Promise<void> {
    const { retry, retentionDays } = this.opts.config;
    const bySink = new Map<string, RelayRow[]>();
    for (const r of rows) {
      const list = bySink.get(r.sink) ?? [];
      list.push(r);
      bySink.set(r.sink, list);
    }
    const now = Date.now();
    for (const [sink, list] of bySink) {
      const { queue } = this.sinkQueue(sink);
      await queue.addBulk(
        list.map((r) => {
          const data: JobData = { eventId: r.eventId, sink: r.sink, body: r.body, type: r.type, ...(r.route !== null ? { route: r.route } : {}), ...(r.attempts ? { priorAttempts: r.attempts } : {}) };
          return {
            name: r.type,
            data,
            opts: {
              jobId: jobIdFor(r.eventId, r.gen),
              attempts: Math.max(1, retry.maxAttempts - r.attempts),
              backoff: { type: BACKOFF_TYPE, delay: Math.round(retry.baseSeconds * 1000) },
              // A row that was waiting for a retry in-process keeps its time.
              ...(r.attempts > 0 && r.gen > now ? { delay: r.gen - now } : {}),
              removeOnComplete: KEEP_COMPLETED,
              removeOnFail: keepFailed(retentionDays),
            },
          };
        }),
      );
    }
  }

  private jobEnded(sink: string, jobId: string, status: FinalStatus, reason: string | null): void {
    const id = parseJobId(jobId);
    if (!id) return;
    if (status === 'dead' && reason?.startsWith(LOST_JOB)) return; // not a dead letter: reconciliation re-enqueues it
    this.pendingClose.push({ eventId: id.eventId, sink, gen: id.gen, status, error: reason });
    if (this.pendingClose.length >= 256) void this.flushClosed();
    else if (!this.closeTimer) this.closeTimer = setTimeout(() => void this.flushClosed(), 20);
  }

  /**
   * Closes the rows whose jobs ended, as the event stream told. The stream does not say how many
   * attempts a job made: that is read from the job first, so a dead letter reports the attempts
   * actually made. When Redis does not answer, the rows stay open for the reconciliation, which
   * reads the same.
   */
  private async flushClosed(): Promise<void> {
    if (this.closeTimer) {
      clearTimeout(this.closeTimer);
      this.closeTimer = null;
    }
    const batch = this.pendingClose;
    if (!batch.length) return;
    this.pendingClose = [];
    try {
      const pipe = this.client.pipeline();
      for (const o of batch) pipe.hget(this.sinkQueue(o.sink).queue.toKey(jobIdFor(o.eventId, o.gen)), 'atm');
      const res = (await pipe.exec()) ?? [];
      batch.forEach((o, i) => {
        const atm = res[i]?.[1];
        if (typeof atm === 'string' && Number(atm) > 0) o.attempts = Number(atm);
      });
    } catch (err) {
      this.log.debug({ err: oneLine(err), rows: batch.length }, 'could not read the attempts of ended jobs; the reconciliation closes their rows');
      return;
    }
    this.close(batch);
  }

  private close(outcomes: RelayOutcome[]): void {
    let closed: Array<RelayOutcome & { type: string }>;
    try {
      closed = this.store.closeRelayed(outcomes);
    } catch (err) {
      // Not written: the rows stay open and the next reconciliation reads their jobs again.
      this.log.error({ err: oneLine(err), rows: outcomes.length }, 'could not record delivery outcomes');
      return;
    }
    for (const c of closed) {
      if (c.status === 'delivered') this.stats.delivered++;
      else {
        this.stats.dead++;
        this.deadLetter(c);
      }
      this.opts.onClosed?.(c.sink, c.status, c.type);
    }
  }

  /** Dead letters per sink: the first is told at once, the next ones in one line a minute. */
  private readonly deadLog = new Map<string, { at: number; more: number; lastReason: string | null; timer: NodeJS.Timeout | null }>();

  private deadLetter(c: RelayOutcome & { type: string }): void {
    const now = Date.now();
    let d = this.deadLog.get(c.sink);
    if (!d) this.deadLog.set(c.sink, (d = { at: 0, more: 0, lastReason: null, timer: null }));
    if (now - d.at >= DEAD_LOG_EVERY_MS) {
      d.at = now;
      this.log.error(
        { sink: c.sink, eventId: c.eventId, event: c.type, attempts: c.attempts, reason: c.error },
        'dead-lettered: the job failed for good; `langfuse-bridge replay` sends it again (more are counted in one line a minute)',
      );
      return;
    }
    d.more++;
    d.lastReason = c.error ?? null;
    if (d.timer) return;
    const entry = d;
    d.timer = setTimeout(() => {
      entry.timer = null;
      entry.at = Date.now();
      this.log.error({ sink: c.sink, deadLettered: entry.more, lastReason: entry.lastReason }, 'dead-lettered more deliveries since the last line; `langfuse-bridge replay` sends them again');
      entry.more = 0;
    }, Math.max(0, d.at + DEAD_LOG_EVERY_MS - now));
    d.timer.unref();
  }

  /**
   * Reads the job of every open row: closes those that ended, re-enqueues those Redis lost. Rows are
   * read in pages, and each page's jobs in one pipeline.
   */
  private async reconcileAll(): Promise<void> {
    await this.flushClosed();
    let after: { sink: string; eventId: string } | null = null;
    for (;;) {
      if (!this.running) return;
      const rows = this.store.relayed(this.origin, after, 500);
      if (rows.length === 0) return;
      const last = rows[rows.length - 1]!;
      after = { sink: last.sink, eventId: last.eventId };
      const pipe = this.client.pipeline();
      for (const r of rows) {
        const { queue } = this.sinkQueue(r.sink);
        const id = jobIdFor(r.eventId, r.gen);
        pipe.zscore(queue.keys.completed!, id);
        pipe.zscore(queue.keys.failed!, id);
        // 'timestamp' is set on every job when added: its absence means the job is gone.
        pipe.hmget(queue.toKey(id), 'atm', 'failedReason', 'timestamp');
      }
      const res = await pipe.exec();
      if (!res) throw new Error('Redis answered nothing to the reconciliation');
      const outcomes: RelayOutcome[] = [];
      const lost: RelayRow[] = [];
      // Failed only because Redis lost their data under a worker: removed, then enqueued again.
      const broken: RelayRow[] = [];
      rows.forEach((r, i) => {
        const [e1, completed] = res[i * 3]!;
        const [e2, failed] = res[i * 3 + 1]!;
        const [e3, fields] = res[i * 3 + 2]!;
        if (e1 || e2 || e3) throw e1 ?? e2 ?? e3;
        const [atm, failedReason, addedAt] = (fields as Array<string | null>) ?? [];
        const made = atm ? Number(atm) : undefined;
        if (completed !== null) outcomes.push({ eventId: r.eventId, sink: r.sink, gen: r.gen, status: 'delivered', attempts: made });
        else if (failed !== null && failedReason?.startsWith(LOST_JOB)) broken.push(r);
        else if (failed !== null) outcomes.push({ eventId: r.eventId, sink: r.sink, gen: r.gen, status: 'dead', error: failedReason ?? 'failed', attempts: made });
        else if (addedAt === null || addedAt === undefined) lost.push(r);
      });
      this.close(outcomes);
      for (const r of broken) {
        try {
          await this.sinkQueue(r.sink).queue.remove(jobIdFor(r.eventId, r.gen));
          lost.push(r);
        } catch (err) {
          this.log.debug({ sink: r.sink, eventId: r.eventId, err: oneLine(err) }, 'could not remove a job Redis lost the data of; trying again later');
        }
      }
      if (lost.length) {
        // A key left with a few fields and no job (Redis lost the rest) would make the add below a
        // no-op: clear such leftovers first, atomically, never a whole job.
        const clear = this.client.pipeline();
        for (const r of lost) clear.eval(CLEAR_PARTIAL_JOB, 1, this.sinkQueue(r.sink).queue.toKey(jobIdFor(r.eventId, r.gen)));
        await clear.exec();
        // Rows the relay marked a moment ago may not be added yet: adding again is harmless, same id.
        await this.addJobs(lost);
        this.stats.reenqueued += lost.length;
        this.log.warn({ jobs: lost.length, sinks: [...new Set(lost.map((r) => r.sink))] }, 'jobs missing from Redis (lost or never added); enqueued again');
      }
      if (this.down) this.redisBack();
      if (rows.length < 500) return;
    }
  }

  /** How many workers take jobs from the queues of these rows' sinks (0: nobody is delivering). */
  async workers(): Promise<number> {
    let n = 0;
    for (const { queue } of this.queues.values()) n += await queue.getWorkersCount();
    return n;
  }

  private lastWorkerCheck = 0;
  private lastNoWorkerWarning = 0;

  /** Says so, now and then, when jobs wait in Redis and no worker is connected to take them. */
  private async checkWorkers(): Promise<void> {
    const now = Date.now();
    if (now - this.lastWorkerCheck < 10_000) return;
    this.lastWorkerCheck = now;
    const waiting = this.store.relayedCount(this.origin);
    if (waiting === 0 || (await this.workers()) > 0) return;
    if (now - this.lastNoWorkerWarning < 60_000) return;
    this.lastNoWorkerWarning = now;
    this.log.warn({ waiting }, 'no worker is taking jobs from the Redis queues; start `langfuse-bridge worker` (or `run --with-worker`)');
  }

  /** Resolves when no row of this relay's origin is queued, retrying, or handed over and open. */
  async drain(signal?: AbortSignal, pollMs = 100): Promise<void> {
    for (;;) {
      await this.flushClosed().catch(() => undefined);
      if (this.store.pending(this.origin) === 0) return;
      signal?.throwIfAborted();
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wake();
    await this.loopDone;
    await this.flushClosed().catch(() => undefined);
    await this.drainAttempts().catch(() => undefined);
    const all = [...this.queues.values()].flatMap(({ queue, events }) => [queue, events]);
    const closed = await Promise.race([Promise.allSettled(all.map((c) => c.close())).then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 2_000).unref())]);
    // Redis away: drop the connections instead of waiting for it.
    if (!closed) await Promise.allSettled(all.map((c) => c.disconnect()));
    await this.flushClosed().catch(() => undefined);
    for (const [sink, d] of this.deadLog) {
      if (d.timer) clearTimeout(d.timer);
      if (d.more) this.log.error({ sink, deadLettered: d.more, lastReason: d.lastReason }, 'dead-lettered more deliveries since the last line; `langfuse-bridge replay` sends them again');
    }
    this.client.disconnect();
  }
}

function safe<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}
