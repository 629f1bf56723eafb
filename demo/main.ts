/**
 * `npm run demo`: the real bridge against a simulated Langfuse on loopback. No credentials, no network:
 * a trickle of traces, generations, errors and scores flows in, and the events and the Slack alerts
 * they raise are printed here until Ctrl-C.
 */
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
// The bridge as `npm run build` leaves it in dist/, the same modules the CLI runs; the demo itself is
// built apart (tsconfig.demo.json) so that nothing of it ships.
import { runDaemon } from '../dist/commands/run.js';
import { loadConfig } from '../dist/config/index.js';
import { compileMonitors } from '../dist/monitors/index.js';
import { createLogger } from '../dist/ops/logger.js';
import { LangfuseSimulator } from './simulator.js';

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: string, s: string): string => (color ? `\x1b[${code}m${s}\x1b[0m` : s);

const EVENT_COLORS: Record<string, string> = {
  'trace.created': '36',
  'trace.updated': '31;1',
  'generation.created': '35',
  'generation.updated': '35',
  'score.created': '33',
  'score.updated': '33',
  'monitor.alert': '41;97',
  'monitor.warning': '43;30',
  'monitor.resolved': '42;30',
};

/** One readable line per event; the full JSON is what a webhook receiver gets. */
function describe(line: string): string {
  try {
    const e = JSON.parse(line) as { id: string; event: string; timestamp: string; data: Record<string, unknown> };
    const d = e.data;
    let what = '';
    switch (e.event) {
      case 'trace.created':
      case 'trace.updated':
        what = `${d.name ?? '(unnamed)'} level=${d.level}${d.statusMessage ? ` "${d.statusMessage}"` : ''}`;
        break;
      case 'generation.created':
      case 'generation.updated': {
        const u = d.usage as { totalTokens?: number | null } | undefined;
        what = `${d.model ?? '?'} ${u?.totalTokens ?? 0} tokens${typeof d.totalCost === 'number' ? ` $${d.totalCost.toFixed(5)}` : ''}${d.level !== 'DEFAULT' ? ` level=${d.level}` : ''}`;
        break;
      }
      case 'monitor.alert':
      case 'monitor.warning':
      case 'monitor.resolved':
        what = `${d.monitor}: ${d.metric} ${typeof d.value === 'number' ? Number(d.value.toPrecision(3)) : 'no data'} over ${d.window} (${d.samples} items; alert ${d.op} ${d.threshold})`;
        break;
      default:
        what = `${d.name ?? ''} = ${JSON.stringify(d.value)}`;
    }
    const ref = String(d.traceId ?? '').slice(0, 8);
    return `${paint('2', e.timestamp.slice(11, 23))} ${paint(EVENT_COLORS[e.event] ?? '0', e.event.padEnd(18))} ${paint('2', ref)} ${what}  ${paint('2', e.id)}\n`;
  } catch {
    return `${line}\n`;
  }
}

async function main(): Promise<void> {
  const sim = new LangfuseSimulator({ generation: 'v4', seed: Date.now() % 100_000 });
  const simUrl = await sim.start();
  // Some history, so the first poll has something to show.
  const now = Date.now();
  sim.generate({ from: new Date(now - 90_000), to: new Date(now - 1_000), traces: 8, errorRate: 0.25 });
  const stopTrickle = sim.startTrickle({ intervalMs: 2_500, errorRate: 0.15, lateRate: 0.2 });

  // A stand-in for Slack's incoming webhook that prints what Slack would show.
  const slack = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      try {
        const msg = JSON.parse(body) as { text?: string };
        process.stdout.write(`${paint('41;97', ' SLACK ')} ${msg.text ?? body}\n`);
      } catch {
        process.stdout.write(`SLACK ${body}\n`);
      }
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => slack.listen(0, '127.0.0.1', r));
  const slackUrl = `http://127.0.0.1:${(slack.address() as AddressInfo).port}/slack`;

  // A stand-in for a team's own webhook receiver, flaky on purpose so the console has something to
  // show: one event in eight is always refused (dead after three attempts), one request in ten fails once.
  let received = 0;
  const receiver = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      const id = String(req.headers['webhook-id'] ?? '');
      const hash = [...id].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
      if (hash % 8 === 0) {
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'ticket system unavailable', retryable: false, requestId: `req_${received}` }));
      } else if (received % 10 === 0) {
        res.writeHead(503, { 'content-type': 'text/plain' }).end('upstream busy, try again');
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, requestId: `req_${received}` }));
      }
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/langfuse`;

  const dir = mkdtempSync(join(tmpdir(), 'langfuse-bridge-demo-'));
  const config = loadConfig({
    env: {
      LANGFUSE_PUBLIC_KEY: 'pk-lf-demo',
      LANGFUSE_SECRET_KEY: 'sk-lf-demo',
      LANGFUSE_BASE_URL: simUrl,
      BRIDGE_DATABASE: join(dir, 'bridge.db'),
      BRIDGE_POLL_INTERVAL_SECONDS: '3',
      BRIDGE_LOOKBACK_SECONDS: '120',
      BRIDGE_START_FROM: new Date(now - 120_000).toISOString(),
      BRIDGE_MAX_REQUESTS_PER_MINUTE: '120',
      BRIDGE_STDOUT: 'true',
      SLACK_WEBHOOK_URL: slackUrl,
      BRIDGE_WEBHOOK_URL: receiverUrl,
      BRIDGE_WEBHOOK_SECRET: 'whsec_ZGVtby1zZWNyZXQtbm90LWZvci1wcm9kdWN0aW9uIQ==',
      BRIDGE_RETRY_MAX_ATTEMPTS: '3',
      BRIDGE_RETRY_BASE_SECONDS: '2',
      BRIDGE_HTTP_PORT: process.env.BRIDGE_HTTP_PORT ?? '0',
      BRIDGE_HTTP_HOST: '127.0.0.1',
    },
  });
  // A monitor with a short window, and a scripted incident it catches: from 20 s to 45 s after the
  // start, every trace fails. It fires within a minute and resolves once the burst leaves its window.
  config.monitors = compileMonitors(
    [{ name: 'demo-error-rate', source: 'traces', metric: 'errorRate', window: '30s', every: '10s', delay: '5s', op: '>', alert: 0.5, minSamples: 5, sinks: ['slack', 'stdout'] }],
    { sinks: config.sinks.map((s) => s.name), streams: config.streams },
  );
  const incident = setInterval(() => {
    const t = Date.now() - now;
    if (t >= 20_000 && t < 45_000) sim.generate({ from: new Date(Date.now() - 500), to: new Date(), traces: 1, errorRate: 1 });
    if (t >= 45_000) clearInterval(incident);
  }, 500);
  const logger = createLogger(process.env.LOG_LEVEL ?? 'fatal');
  const pretty = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) process.stdout.write(describe(line));
      cb();
    },
  });

  process.stdout.write(
    `${paint('1', 'langfuse-bridge demo')}: simulated Langfuse at ${simUrl}, events below, Slack alerts in red. Ctrl-C to stop.\n` +
      `${paint('2', `database ${config.database} (BRIDGE_DATABASE=${config.database} npx langfuse-bridge status, or replay, reads it); LOG_LEVEL=info npm run demo shows the bridge's own logs`)}\n\n`,
  );
  const handle = await runDaemon(config, logger, { stdout: pretty });
  const consoleUrl = await handle.opsUrl;
  if (consoleUrl) process.stdout.write(`${paint('1;32', 'console')}: ${consoleUrl}/  (deliveries, dead letters, replay, monitors; a flaky webhook receiver dead-letters one event in eight)\n\n`);
  process.stdout.write(`${paint('2', 'monitor demo-error-rate: error rate of traces over 30 s above 50 %; a scripted incident 20-45 s in fires it, and it resolves about a minute later')}\n\n`);
  const stop = (): void => {
    process.stdout.write('\nstopping…\n');
    stopTrickle();
    clearInterval(incident);
    handle.stop();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  if (process.env.DEMO_SECONDS) setTimeout(stop, Number(process.env.DEMO_SECONDS) * 1000).unref();
  await handle.done;
  await sim.stop();
  slack.closeAllConnections();
  slack.close();
  receiver.closeAllConnections();
  receiver.close();
  rmSync(dir, { recursive: true, force: true });
}

await main();
