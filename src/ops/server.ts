/** The local ops server: `/healthz` for liveness probes and `/metrics` for Prometheus. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';

export interface OpsServer {
  url: Promise<string | null>;
  close(): Promise<void>;
}

export function health(metrics: Metrics, maxAgeSeconds: number, now = Date.now()): { ok: boolean; reason: string } {
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

export function startOpsServer(host: string, port: number, metrics: Metrics, maxAgeSeconds: number, logger: Logger): OpsServer {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      const h = health(metrics, maxAgeSeconds);
      const warnings = paceWarnings(metrics);
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: h.ok ? 'ok' : 'unhealthy', reason: h.reason, ...(warnings.length ? { warnings } : {}) }));
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
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz or /metrics\n');
  });
  const url = new Promise<string | null>((resolve) => {
    server.once('error', (err) => {
      logger.error({ port, err: err.message }, 'ops server could not listen; /healthz and /metrics are off');
      resolve(null);
    });
    server.listen(port, host, () => {
      const a = server.address() as AddressInfo;
      const u = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${a.port}`;
      logger.info({ url: u }, 'ops server listening: /healthz, /metrics');
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
