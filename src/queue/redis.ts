/**
 * Shared pieces of the Redis delivery backend (BRIDGE_REDIS_URL): connection settings, the start-up
 * wait, queue names, job ids and the retry schedule the workers use.
 *
 * Names: one BullMQ queue per sink, `sink-<name>` under the key prefix BRIDGE_QUEUE_PREFIX (BullMQ
 * queue names may not contain ':'). Job ids: `<event id>.<generation>`, where the generation is the
 * outbox row's `next_at` when it was handed over (base 36). The same row handed over twice (a relay
 * repeated after a crash, a lost job re-enqueued) names the same job, which Redis stores once; a row
 * sent again on purpose (`replay`, `backfill --redeliver`) has a new `next_at` and so a new job.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/index.js';
import { ConfigError, oneLine } from '../errors.js';
import { redactUrl } from '../http.js';
import { retryDelayMs } from '../delivery/retry.js';

export type QueueSettings = BridgeConfig['queue'];

/** What every job carries: enough for a worker on another machine to deliver without the database. */
export interface JobData {
  eventId: string;
  sink: string;
  /** The exact body, byte for byte the same on every attempt. */
  body: string;
  type: string;
  /** What the router decided the sink sends (the outbox row's route); absent when it decided nothing, or in a job of an older version. */
  route?: string;
  /** Attempts made in-process before the row was handed to Redis. */
  priorAttempts?: number;
}

export const BACKOFF_TYPE = 'bridge';

/**
 * The failure a worker reports for a job whose data Redis no longer has (it lost keys under the job).
 * Not a dead letter: the relay removes such a job and enqueues its outbox row again.
 */
export const LOST_JOB = 'job data missing in Redis';

/** Most outbox rows of one sink handed to Redis and not closed yet. */
export const MAX_OPEN = 10_000;

/**
 * Completed jobs are kept a day, and more of them than can be open at once: a relay that was down
 * still reads the end of every job it handed over instead of taking it for lost.
 */
export const KEEP_COMPLETED = { age: 24 * 3600, count: 2 * MAX_OPEN + 5_000 };

export function keepFailed(retentionDays: number): { age: number; count: number } {
  return { age: retentionDays * 86_400, count: 100_000 };
}

/**
 * Where workers record a sink's state (ok, failing, paused) for `status`, by queue name. It expires a
 * day after the last change, so a state nobody renews (no worker left) does not linger.
 */
export function sinkStateKey(prefix: string, queue: string): string {
  return `${prefix}:${queue}:sink-state`;
}
export const STATE_TTL_MS = 86_400_000;

/** Worker.rateLimit sets a queue's limiter to Number.MAX_SAFE_INTEGER: a pause; real counts stay far below this. */
export const PAUSE_LIMIT = 1_000_000_000_000;

export function queueName(sink: string): string {
  return `sink-${encodeURIComponent(sink)}`;
}

export function jobIdFor(eventId: string, gen: number): string {
  return `${eventId.replace(/:/g, '%3A')}.${Math.max(0, Math.trunc(gen)).toString(36)}`;
}

export function parseJobId(jobId: string): { eventId: string; gen: number } | null {
  const dot = jobId.lastIndexOf('.');
  if (dot <= 0) return null;
  const gen = parseInt(jobId.slice(dot + 1), 36);
  if (!Number.isFinite(gen)) return null;
  return { eventId: jobId.slice(0, dot).replace(/%3A/g, ':'), gen };
}


/**
 * Connection options for BullMQ's queues, workers and event listeners. Reconnects quickly and for
 * ever: a Redis that goes away while the bridge runs is waited for, never given up on.
 */
export function connectionFor(q: QueueSettings, extra: RedisOptions = {}): RedisOptions & { url: string } {
  if (!q.redisUrl) throw new Error('BRIDGE_REDIS_URL is not set');
  return {
    url: q.redisUrl,
    connectionName: 'langfuse-bridge',
    retryStrategy: (times: number) => Math.min(100 * times, 3_000),
    ...extra,
  };
}

/** A plain client for the relay's and the admin commands' own reads. */
export function plainClient(q: QueueSettings, extra: RedisOptions = {}): Redis {
  if (!q.redisUrl) throw new Error('BRIDGE_REDIS_URL is not set');
  const client = new Redis(q.redisUrl, { retryStrategy: (times: number) => Math.min(100 * times, 3_000), maxRetriesPerRequest: 2, ...extra });
  client.on('error', () => undefined); // reported by whoever uses it
  return client;
}

function errorCode(err: unknown): string {
  const e = err as (Error & { code?: string }) | undefined;
  if (!e) return 'no answer';
  if (e.code) return e.code;
  const first = (e.message ?? '').split(/[\s:]/, 1)[0] ?? '';
  return /^[A-Z][A-Z_]+$/.test(first) ? first : (oneLine(e) || 'no answer').slice(0, 120);
}

/** A setting error (exit 2, one line): BRIDGE_REDIS_URL names a Redis that does not answer. */
export class RedisUnreachable extends ConfigError {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/**
 * Waits up to `connectWaitSeconds` for Redis to answer PING. Never falls back to in-process delivery:
 * throws RedisUnreachable with the one line the CLI prints.
 */
export async function waitForRedis(q: QueueSettings, logger?: Logger, waitSeconds = q.connectWaitSeconds): Promise<void> {
  if (!q.redisUrl) return;
  const deadline = Date.now() + waitSeconds * 1000;
  let lastCode = 'no answer';
  let told = false;
  for (let attempt = 0; ; attempt++) {
    const left = deadline - Date.now();
    const client = new Redis(q.redisUrl, {
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      connectTimeout: Math.max(500, Math.min(5_000, left)),
    });
    let lastErr: unknown;
    client.on('error', (err: unknown) => (lastErr = err));
    try {
      await client.connect();
      await client.ping();
      client.disconnect();
      if (told) logger?.info({ redis: redactUrl(q.redisUrl) }, 'Redis answers');
      return;
    } catch (err) {
      lastCode = errorCode(lastErr ?? err);
      client.disconnect();
    }
    if (Date.now() + 250 >= deadline) break;
    if (!told && attempt >= 1) {
      // debug only: when the wait fails, the one line below is all a user should see.
      told = true;
      logger?.debug({ redis: redactUrl(q.redisUrl), err: lastCode, waitSeconds }, 'waiting for Redis');
    }
    await sleep(Math.min(1_000, 100 * (attempt + 1), Math.max(0, deadline - Date.now())));
  }
  throw new RedisUnreachable(
    `BRIDGE_REDIS_URL ${redactUrl(q.redisUrl)} is unreachable after ${waitSeconds} s (${lastCode}); start Redis or unset BRIDGE_REDIS_URL to deliver in-process`,
    lastCode,
  );
}

/** A failed attempt the sink wants retried; `retryAfterMs` is its Retry-After. */
export class RetryLater extends Error {
  override name = 'RetryLater';
  constructor(
    message: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(message);
  }
}

/**
 * The workers' backoff, the in-process dispatcher's schedule: base·2^(n−1) jittered to 50–100 %,
 * capped at an hour, never shorter than the sink's Retry-After. The base travels with the job
 * (`backoff.delay`), so every worker retries a job on the schedule the relay gave it.
 */
export function bridgeBackoff(attemptsMade: number, _type?: string, err?: Error, job?: { opts?: { backoff?: unknown }; data?: unknown }): number {
  const b = job?.opts?.backoff as { delay?: number } | number | undefined;
  const baseMs = typeof b === 'number' ? b : (b?.delay ?? 5_000);
  const prior = (job?.data as JobData | undefined)?.priorAttempts ?? 0;
  const after = err instanceof RetryLater || (err as RetryLater | undefined)?.retryAfterMs ? (err as RetryLater).retryAfterMs : undefined;
  return Math.max(1, retryDelayMs({ baseSeconds: baseMs / 1000 }, attemptsMade + prior, after));
}

/** Deletes every key under a prefix (tests, and `obliterate`-style cleanups). */
export async function deletePrefix(client: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) n += await client.del(...keys);
  } while (cursor !== '0');
  return n;
}
