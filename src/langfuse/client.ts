/**
 * The Langfuse public API as the bridge uses it: Basic auth, the request ceiling, 429s honoured,
 * transient failures (5xx, 422, 524, timeouts, bodies that are not JSON) retried with backoff.
 * A call that still fails throws, and the caller leaves its cursor where it was.
 */
import { request, type Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { MAX_RETRY_AFTER_MS, attemptSignal, createDispatcher, parseRetryAfter } from '../http.js';
import { RateLimiter, sleep, type CallLedger, type LedgerAnswer, type WaitReason } from './rate-limiter.js';

export type LangfuseErrorKind = 'auth' | 'absent' | 'bad-request' | 'transient';

export class LangfuseError extends Error {
  override name = 'LangfuseError';
  constructor(
    message: string,
    readonly kind: LangfuseErrorKind,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface LangfuseClientOptions {
  baseUrl: string;
  publicKey: string;
  secretKey: string;
  maxRequestsPerMinute: number;
  /** Whether maxRequestsPerMinute was set rather than the default (a default yields to a set one). */
  maxRequestsPerMinuteSet?: boolean;
  /** Who waits, in what it logs: a live poll or a backfill. */
  role?: 'live' | 'backfill';
  timeoutSeconds: number;
  logger: Logger;
  /** Attempts for one call before it fails (429s count too). */
  maxAttempts?: number;
  /** First backoff step; doubles per attempt, capped at 30 s. */
  backoffBaseMs?: number;
  userAgent: string;
  /** Shares the ceiling with other processes on the same database. */
  ledger?: CallLedger;
}

export interface CallStats {
  calls: number;
  byStatus: Map<string, number>;
  rateLimited: number;
}

type Query = Record<string, string | number | undefined | null>;

export class LangfuseClient {
  readonly limiter: RateLimiter;
  readonly stats: CallStats = { calls: 0, byStatus: new Map(), rateLimited: 0 };
  private readonly dispatcher: Dispatcher;
  private readonly auth: string;
  private readonly origin: string;
  private readonly prefix: string;
  /** Called after each HTTP answer (metrics). */
  onCall?: (status: string, path: string) => void;

  constructor(readonly opts: LangfuseClientOptions) {
    this.limiter = new RateLimiter(opts.maxRequestsPerMinute, 60_000, Date.now, opts.ledger ?? null);
    this.limiter.onLedger = (a) => this.noteLedger(a);
    this.limiter.onWait = (reason, untilMs) => this.noteWait(reason, untilMs);
    this.dispatcher = createDispatcher({ connections: 4 });
    this.auth = `Basic ${Buffer.from(`${opts.publicKey}:${opts.secretKey}`).toString('base64')}`;
    const u = new URL(opts.baseUrl);
    this.origin = u.origin;
    this.prefix = u.pathname.replace(/\/+$/, '');
  }

  private readonly noted = new Set<string>();
  private lastWaitLog = new Map<WaitReason, number>();

  /** Says once what another process on the database changes about the ceiling. */
  private noteLedger(a: LedgerAnswer): void {
    const own = this.opts.maxRequestsPerMinute;
    const set = this.opts.maxRequestsPerMinuteSet !== false;
    for (const p of a.peers) {
      if (!p.explicit || p.max === own) continue;
      const key = `${p.pid}:${p.max}`;
      if (this.noted.has(key)) continue;
      this.noted.add(key);
      if (set) {
        this.opts.logger.warn(
          { ownCeiling: own, otherCeiling: p.max, otherPid: p.pid, ceiling: a.ceiling },
          `BRIDGE_MAX_REQUESTS_PER_MINUTE is ${own} here and ${p.max} in another process on this database (pid ${p.pid}): the lower, ${a.ceiling} calls a minute, holds for both`,
        );
      } else {
        this.opts.logger.info(
          { ceiling: a.ceiling, otherPid: p.pid },
          `BRIDGE_MAX_REQUESTS_PER_MINUTE is not set here: using ${a.ceiling} calls a minute, the ceiling another process on this database (pid ${p.pid}) set`,
        );
      }
    }
  }

  /** A call that has to wait says what for (at most every 30 s per reason, and only waits of a second or more). */
  private noteWait(reason: WaitReason, untilMs: number): void {
    const ms = untilMs - Date.now();
    if (ms < 1_000) return;
    const last = this.lastWaitLog.get(reason) ?? 0;
    if (Date.now() - last < 30_000) return;
    this.lastWaitLog.set(reason, Date.now());
    this.opts.logger.info({ waitSeconds: Math.ceil(ms / 1000), reason, ceiling: this.limiter.ceiling }, waitText(reason, this.limiter.ceiling, this.limiter.shared, this.opts.role ?? 'live', ms));
  }

  private record(status: string, path: string): void {
    this.stats.calls++;
    this.stats.byStatus.set(status, (this.stats.byStatus.get(status) ?? 0) + 1);
    this.onCall?.(status, path);
  }

  /**
   * GET a JSON document. 404 → LangfuseError('absent') at once (a legacy server's HTML 404 page
   * included), 401/403 → 'auth', 400 → 'bad-request'; the rest is retried.
   */
  async get<T = unknown>(path: string, query: Query = {}, signal?: AbortSignal, opts: { auth?: boolean } = {}): Promise<T> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') qs.set(k, String(v));
    const fullPath = `${this.prefix}${path}${qs.size ? `?${qs}` : ''}`;
    const maxAttempts = this.opts.maxAttempts ?? 6;
    const base = this.opts.backoffBaseMs ?? 1000;
    let lastProblem = '';
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      await this.limiter.acquire(signal);
      let status = 0;
      let text = '';
      let retryAfter: number | null = null;
      // Released once the body is read: a long-lived caller signal keeps no listener per call.
      const call = attemptSignal(signal, this.opts.timeoutSeconds * 1000);
      try {
        const res = await request(`${this.origin}${fullPath}`, {
          method: 'GET',
          dispatcher: this.dispatcher,
          headers: {
            accept: 'application/json',
            'user-agent': this.opts.userAgent,
            ...(opts.auth === false ? {} : { authorization: this.auth }),
          },
          signal: call.signal,
        });
        status = res.statusCode;
        retryAfter = parseRetryAfter(res.headers['retry-after']);
        text = await res.body.text();
        call.release();
      } catch (err) {
        call.release();
        if (signal?.aborted) throw signal.reason;
        const e = err as Error & { code?: string };
        lastProblem = call.timedOut() ? `timed out after ${this.opts.timeoutSeconds} s` : `${e.code ?? e.name}: ${e.message}`;
        this.record('error', path);
        if (attempt >= maxAttempts) break;
        this.opts.logger.warn({ path, attempt, problem: lastProblem }, 'Langfuse call failed; retrying');
        await sleep(backoff(base, attempt), signal);
        continue;
      }
      this.record(String(status), path);

      if (status >= 200 && status < 300) {
        try {
          return JSON.parse(text) as T;
        } catch {
          lastProblem = `HTTP ${status} with a body that is not JSON (${snippet(text)})`;
          if (attempt >= maxAttempts) break;
          this.opts.logger.warn({ path, attempt, problem: lastProblem }, 'Langfuse answered garbage; retrying');
          await sleep(backoff(base, attempt), signal);
          continue;
        }
      }
      if (status === 401 || status === 403) {
        throw new LangfuseError(`Langfuse refused the credentials (HTTP ${status}: ${messageOf(text)}); check LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_BASE_URL`, 'auth', status);
      }
      if (status === 404) throw new LangfuseError(`${path} is not served by this Langfuse (HTTP 404)`, 'absent', 404);
      if (status === 429) {
        this.stats.rateLimited++;
        // Capped at an hour, as a sink's is: a server asking for a day would silence every poll for it.
        const wait = Math.min(MAX_RETRY_AFTER_MS, retryAfter ?? retryAfterFromBody(text) ?? 60_000);
        this.limiter.pause(Date.now() + wait);
        lastProblem = `rate limited (HTTP 429), waiting ${Math.ceil(wait / 1000)} s`;
        this.opts.logger.warn({ path, attempt, retryAfterMs: wait }, 'Langfuse rate limit reached; pausing calls to this project');
        continue;
      }
      if (status === 400) throw new LangfuseError(`Langfuse rejected ${path} (HTTP 400: ${messageOf(text)})`, 'bad-request', 400);
      lastProblem = `HTTP ${status}${text ? ` (${snippet(text)})` : ''}`;
      if (attempt >= maxAttempts) break;
      this.opts.logger.warn({ path, attempt, status }, 'Langfuse answered an error; retrying');
      await sleep(retryAfter ?? backoff(base, attempt), signal);
    }
    throw new LangfuseError(`${path} failed after ${maxAttempts} attempts: ${lastProblem}`, 'transient');
  }

  async close(): Promise<void> {
    this.limiter.release();
    await this.dispatcher.close();
  }
}

/** What a wait for Langfuse is for, in a few words (a progress line). */
export function shortWaitText(reason: WaitReason, ceiling: number, ms: number): string {
  const s = Math.ceil(ms / 1000);
  switch (reason) {
    case 'pause':
      return `waiting ${s} s: Langfuse answered 429`;
    case 'live':
      return `waiting ${s} s: live polls first (a backfill keeps 1/4 of ${ceiling}/min; BRIDGE_MAX_REQUESTS_PER_MINUTE raises it)`;
    default:
      return `waiting ${s} s for the request ceiling (${ceiling}/min; BRIDGE_MAX_REQUESTS_PER_MINUTE raises it)`;
  }
}

/** What a wait for Langfuse is for, in a sentence (logs). */
export function waitText(reason: WaitReason, ceiling: number, shared: boolean, role: 'live' | 'backfill', ms: number): string {
  const s = Math.ceil(ms / 1000);
  const who = role === 'backfill' ? 'backfill' : 'poll';
  switch (reason) {
    case 'pause':
      return `${who} waiting ${s} s: Langfuse rate-limited this project (HTTP 429) and asked to wait`;
    case 'backfill':
      return `${who} waiting ${s} s: a quarter of the request ceiling (${ceiling} calls a minute) is kept for a running backfill; BRIDGE_MAX_REQUESTS_PER_MINUTE raises it`;
    case 'live':
      return `${who} waiting ${s} s: live polls come first (a backfill keeps a quarter of the ${ceiling} calls a minute); BRIDGE_MAX_REQUESTS_PER_MINUTE raises it`;
    default:
      return `${who} waiting ${s} s for the request ceiling: ${ceiling} calls a minute${shared ? ', shared by every process on this database' : ''}; BRIDGE_MAX_REQUESTS_PER_MINUTE raises it`;
  }
}

function backoff(baseMs: number, attempt: number): number {
  const exp = Math.min(30_000, baseMs * 2 ** (attempt - 1));
  return exp / 2 + Math.random() * (exp / 2);
}

function snippet(text: string): string {
  const s = text.replace(/\s+/g, ' ').trim();
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

function messageOf(text: string): string {
  try {
    const j = JSON.parse(text) as { message?: unknown };
    if (typeof j.message === 'string') return j.message;
  } catch {
    /* not JSON */
  }
  return snippet(text);
}

function retryAfterFromBody(text: string): number | null {
  try {
    const j = JSON.parse(text) as { details?: { retryAfterSeconds?: unknown } };
    const s = j.details?.retryAfterSeconds;
    return typeof s === 'number' ? s * 1000 : null;
  } catch {
    return null;
  }
}
