/**
 * Outbound HTTP shared by every call the bridge makes (Langfuse and sinks): keep-alive connection
 * pools, and HTTPS_PROXY / HTTP_PROXY / NO_PROXY honoured (Node's own fetch ignores them), since
 * firewalled networks often leave only through a proxy.
 */
import { Agent, EnvHttpProxyAgent, fetch as undiciFetch, type Dispatcher } from 'undici';

const PROXY_ENV_VARS = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy'] as const;

/** Whether any proxy variable is set: then outbound calls go through undici's EnvHttpProxyAgent. */
export function proxyEnvironmentSet(env: Record<string, string | undefined> = process.env): boolean {
  return PROXY_ENV_VARS.some((name) => (env[name] ?? '').trim() !== '');
}

export type AgentOptions = ConstructorParameters<typeof Agent>[0];

export function createDispatcher(options: AgentOptions = {}): Dispatcher {
  const o = { keepAliveTimeout: 30_000, pipelining: 1, ...options };
  return proxyEnvironmentSet()
    ? // proxyTunnel: false sends http:// targets to an HTTP proxy in absolute form (as curl does);
      // https:// targets still go through a CONNECT tunnel.
      new EnvHttpProxyAgent({ ...o, proxyTunnel: false })
    : new Agent(o);
}

/** fetch through a dispatcher that honours the proxy settings. */
export function proxiedFetch(dispatcher: Dispatcher): (url: string, init: Parameters<typeof undiciFetch>[1]) => ReturnType<typeof undiciFetch> {
  return (url, init) => undiciFetch(url, { ...init, dispatcher });
}

/** The longest wait a `Retry-After` sets, from Langfuse or a sink. */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/**
 * `Retry-After` as milliseconds from now: delay-seconds (`7`, fractions allowed) or an HTTP date.
 * Null when absent or unreadable; a date in the past is 0.
 */
export function parseRetryAfter(value: string | string[] | null | undefined, nowMs: number = Date.now()): number | null {
  const raw = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!raw) return null;
  if (/^\d+(\.\d+)?$/.test(raw)) {
    const ms = Math.round(Number(raw) * 1000);
    return Number.isSafeInteger(ms) ? ms : null;
  }
  const at = Date.parse(raw);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

export interface AttemptSignal {
  signal: AbortSignal;
  timedOut(): boolean;
  /** Ends the attempt: drops the timer and the listener on the caller's signal. */
  release(): void;
}

/**
 * One attempt's signal: aborted by the caller's signal (if any) or after `ms`. Unlike AbortSignal.any,
 * it leaves nothing attached to a long-lived caller signal once released (the dispatcher shares one
 * across deliveries, a daemon or backfill one across API calls).
 */
export function attemptSignal(parent: AbortSignal | undefined, ms: number): AttemptSignal {
  const c = new AbortController();
  let timedOut = false;
  const onAbort = (): void => c.abort(parent?.reason);
  if (parent?.aborted) c.abort(parent.reason);
  else parent?.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(() => {
    timedOut = true;
    c.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError'));
  }, ms);
  timer.unref();
  return {
    signal: c.signal,
    timedOut: () => timedOut,
    release: () => {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onAbort);
    },
  };
}

/** Runs one attempt with its own signal (see attemptSignal) and always releases it. */
export async function withAttemptSignal<T>(parent: AbortSignal, ms: number, fn: (attempt: AttemptSignal) => Promise<T>): Promise<T> {
  const attempt = attemptSignal(parent, ms);
  try {
    return await fn(attempt);
  } finally {
    attempt.release();
  }
}

/** A URL as it may be shown in messages and logs: a user and password in it are replaced by `***`. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username) u.username = '***';
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url.replace(/\/\/([^@/]*)@/, '//***@');
  }
}
