/**
 * Outbound HTTP for every call the bridge makes: keep-alive connections, and HTTPS_PROXY / HTTP_PROXY /
 * NO_PROXY honoured (Node's own fetch ignores them), since firewalled networks often leave only
 * through a proxy.
 */
import { Agent, EnvHttpProxyAgent, type Dispatcher } from 'undici';

export function proxyConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.HTTPS_PROXY || env.https_proxy || env.HTTP_PROXY || env.http_proxy);
}

export function createDispatcher(opts: { connections?: number; env?: NodeJS.ProcessEnv } = {}): Dispatcher {
  const common = { keepAliveTimeout: 30_000, connections: opts.connections ?? 16, pipelining: 1 };
  return proxyConfigured(opts.env) ? new EnvHttpProxyAgent(common) : new Agent(common);
}

/** Seconds or an HTTP date, as Retry-After allows; null when absent or unreadable. */
export function retryAfterMs(value: string | string[] | undefined | null, now = Date.now()): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return null;
  if (/^\s*\d+(\.\d+)?\s*$/.test(v)) return Math.round(Number(v) * 1000);
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : Math.max(0, t - now);
}
