/**
 * The local ops server: `/healthz` for liveness probes and `/metrics` for Prometheus, served by `run`
 * and by `worker`, each with its own idea of health; `run`'s also serves the console (src/ops/console).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ConfigError } from '../errors.js';
import type { Metrics, Scrapable } from './metrics.js';

export interface OpsServer {
  url: string;
  close(): Promise<void>;
}

export interface Health {
  ok: boolean;
  reason: string;
  /** What is wrong without making the process unhealthy (polls slower than asked). */
  warnings?: string[];
}

/** The bridge's health: a recent successful poll. */
export function health(metrics: Metrics, maxAgeSeconds: number, now = Date.now()): Health {
  const last = metrics.lastPollOk;
  if (last === null) {
    const age = (now - metrics.startedAt) / 1000;
    return age <= maxAgeSeconds ? { ok: true, reason: 'starting: no poll has finished yet' } : { ok: false, reason: `no successful poll since start ${Math.round(age)} s ago` };
  }
  const age = (now - last) / 1000;
  return age <= maxAgeSeconds
    ? { ok: true, reason: `last successful poll ${Math.round(age)} s ago` }
    : { ok: false, reason: `last successful poll ${Math.round(age)} s ago, more than ${maxAgeSeconds} s: Langfuse unreachable or failing` };
}

/** Polls slower than asked, because the request ceiling cannot hold the interval: said in /healthz's body (the status code keeps its meaning). */
export function paceWarnings(metrics: Metrics): string[] {
  const out: string[] = [];
  for (const [project, p] of metrics.paces) {
    const every = Math.max(p.effectiveIntervalSeconds, p.measuredIntervalSeconds ?? 0);
    if (every <= p.intervalSeconds * 1.5 && p.effectiveIntervalSeconds <= p.intervalSeconds) continue;
    out.push(
      `polls${metrics.paces.size > 1 ? ` of ${project}` : ''} run every ${every} s, not every ${p.intervalSeconds} s: the request ceiling of ${p.ceiling} calls a minute cannot hold ${p.callsPerPoll} calls a poll at that interval; raise BRIDGE_MAX_REQUESTS_PER_MINUTE or BRIDGE_POLL_INTERVAL_SECONDS`,
    );
  }
  return out;
}

/** A port that cannot be bound is a setting error: probes would fail later with no word why. */
function bindError(host: string, port: number, err: NodeJS.ErrnoException): ConfigError {
  const at = `${host}:${port}`;
  if (err.code === 'EADDRINUSE') return new ConfigError(`BRIDGE_HTTP_PORT ${port} is already in use on ${host}; stop what listens there or set another port`);
  if (err.code === 'EACCES') return new ConfigError(`BRIDGE_HTTP_PORT ${port} may not be bound by this user on ${host} (EACCES); use a port above 1023`);
  if (err.code === 'EADDRNOTAVAIL') return new ConfigError(`BRIDGE_HTTP_PORT ${port} cannot be bound: BRIDGE_HTTP_HOST ${host} is not an address of this machine`);
  return new ConfigError(`BRIDGE_HTTP_PORT ${port} cannot be bound on ${at} (${err.code ?? err.message}); set another port or host`);
}

/** Listens, or rejects with a ConfigError naming the port (exit 2). */
export async function startOpsServer(
  host: string,
  port: number,
  metrics: Scrapable,
  healthOf: () => Health | Promise<Health>,
  logger: Logger,
  consoleHandler?: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<OpsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      Promise.resolve()
        .then(healthOf)
        .catch((err: Error): Health => ({ ok: false, reason: `health check failed: ${err.message}` }))
        .then((h) => {
          res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ status: h.ok ? 'ok' : 'unhealthy', reason: h.reason, ...(h.warnings?.length ? { warnings: h.warnings } : {}) }));
        });
      return;
    }
    if (path === '/metrics') {
      metrics.render().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(text);
        },
        (err: Error) => {
          res.writeHead(500).end(err.message);
        },
      );
      return;
    }
    if (consoleHandler) {
      consoleHandler(req, res);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz or /metrics\n');
  });
  const url = await new Promise<string>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(bindError(host, port, err)));
    server.listen(port, host, () => {
      const a = server.address() as AddressInfo;
      const u = `http://${host === '0.0.0.0' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host}:${a.port}`;
      logger.info({ url: u }, consoleHandler ? 'ops server listening: the console at /, /healthz, /metrics' : 'ops server listening: /healthz, /metrics');
      resolve(u);
    });
  });
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
