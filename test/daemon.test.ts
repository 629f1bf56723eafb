/**
 * The daemon in-process against the simulator and real local receivers: alerts by the default rules,
 * /metrics and /healthz, the prompts stream, and no repeats after a restart.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import http from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { runBackfill } from '../src/commands/backfill.js';
import { replay } from '../src/commands/replay.js';
import { runDaemon } from '../src/commands/run.js';
import { statusReport } from '../src/commands/status.js';
import { loadConfig } from '../src/config/index.js';
import { LangfuseSimulator } from '../demo/simulator.js';
import { silentLogger } from '../src/ops/logger.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

interface Received {
  at: number;
  path: string;
  body: Record<string, unknown>;
}

async function receiver(status: (n: number) => number = () => 200): Promise<{ url: string; got: Received[] }> {
  const got: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      got.push({ at: Date.now(), path: req.url ?? '', body: JSON.parse(body) as Record<string, unknown> });
      const s = status(got.length);
      res.writeHead(s, s === 429 ? { 'retry-after': '1' } : {}).end(s === 202 ? '{"status":"success"}' : 'ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, got };
}

async function waitFor(cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function healthBecomes(ops: string, status: number): Promise<void> {
  const end = Date.now() + 20_000;
  while ((await fetch(`${ops}/healthz`)).status !== status) {
    if (Date.now() > end) throw new Error(`/healthz never answered ${status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function sink(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(l);
      cb();
    },
  });
  return { stream, lines };
}

describe('daemon', () => {
  it('alerts once per ERROR trace and low score, exposes metrics and health, and repeats nothing after a restart', async () => {
    const sim = new LangfuseSimulator({ seed: 11 });
    const url = await sim.start();
    cleanups.push(() => sim.stop());
    const slack = await receiver((n) => (n === 1 ? 429 : 200)); // the first post is rate-limited
    const pd = await receiver(() => 202);
    const db = join(mkdtempSync(join(tmpdir(), 'daemon-')), 'b.db');
    const now = Date.now();
    const ts = (s: number) => new Date(now - s * 1000).toISOString();
    sim.addTrace({ id: 'ok-trace', name: 'fine', timestamp: ts(50) });
    sim.addObservation({ traceId: 'ok-trace', id: 'ok-gen', type: 'GENERATION', startTime: ts(50), model: 'gpt-4o', promptTokens: 100, completionTokens: 20 });
    sim.addTrace({ id: 'bad-trace', name: 'broken', timestamp: ts(40), environment: 'production' });
    sim.addObservation({ traceId: 'bad-trace', id: 'bad-gen', type: 'GENERATION', startTime: ts(40), level: 'ERROR', statusMessage: 'model exploded', model: 'gpt-4o', promptTokens: 10, completionTokens: 5 });
    sim.addScore({ id: 'low', traceId: 'ok-trace', name: 'accuracy', dataType: 'NUMERIC', value: 0.2, timestamp: ts(30) });
    sim.addScore({ id: 'high', traceId: 'ok-trace', name: 'accuracy', dataType: 'NUMERIC', value: 0.9, timestamp: ts(30) });
    sim.addPromptVersion({ name: 'greeting', prompt: 'Hello {{name}}', labels: ['production'] });

    const config = () =>
      loadConfig({
        env: {
          LANGFUSE_PUBLIC_KEY: 'pk-lf-demo',
          LANGFUSE_SECRET_KEY: 'sk-lf-demo',
          LANGFUSE_BASE_URL: url,
          BRIDGE_DATABASE: db,
          BRIDGE_POLL_INTERVAL_SECONDS: '1',
          BRIDGE_START_FROM: ts(120),
          BRIDGE_STREAMS: 'traces,generations,scores,prompts',
          BRIDGE_MAX_REQUESTS_PER_MINUTE: '600',
          BRIDGE_RETRY_BASE_SECONDS: '0.05',
          BRIDGE_HTTP_PORT: '0',
          BRIDGE_HEALTH_MAX_AGE_SECONDS: '2',
          BRIDGE_STDOUT: 'true',
          SLACK_WEBHOOK_URL: `${slack.url}/services/T/B/X`,
          PAGERDUTY_ROUTING_KEY: 'R0UTINGKEY0000000000000000000000',
          PAGERDUTY_EVENTS_URL: `${pd.url}/v2/enqueue`,
        },
      });
    // When the bridge sends each Slack post, seen where it sends it (undici's diagnostics channel, in this
    // process): the receiver's arrival times here also carry this loaded process's event-loop delays.
    const slackSends: number[] = [];
    const onRequest = (m: unknown): void => {
      if (String((m as { request: { origin: unknown } }).request.origin) === slack.url) slackSends.push(Date.now());
    };
    diagnostics_channel.subscribe('undici:request:create', onRequest);
    cleanups.push(() => diagnostics_channel.unsubscribe('undici:request:create', onRequest));
    const out = sink();
    const h = await runDaemon(config(), silentLogger(), { stdout: out.stream });
    const ops = (await h.opsUrl)!;
    await waitFor(() => out.lines.some((l) => l.includes('"prompt.created"')) && slack.got.length >= 3 && pd.got.length >= 1);

    // Slack: the ERROR trace and the low score, each once (the 429 was retried); nothing for healthy data.
    await new Promise((r) => setTimeout(r, 1500));
    const slackTexts = slack.got.map((g) => String(g.body.text));
    expect(slackTexts.filter((t) => t.includes('broken')).length).toBe(2); // the 429'd attempt + its retry
    expect(slackTexts.filter((t) => t.includes('accuracy')).length).toBe(1);
    expect(slackTexts.some((t) => t.includes('fine"'))).toBe(false);
    expect(slackTexts.find((t) => t.includes('broken'))).toContain(`${url}/project/demo-project/traces/bad-trace`);
    // Never more than one Slack message a second, as sent.
    expect(slackSends).toHaveLength(slack.got.length);
    const gaps = slackSends.slice(1).map((t, i) => t - slackSends[i]!);
    for (const gap of gaps) expect(gap, `ms between Slack posts: ${gaps.join(', ')}`).toBeGreaterThanOrEqual(1000);
    // PagerDuty: one page, for the ERROR trace only, with a stable dedup key.
    expect(pd.got).toHaveLength(1);
    expect(pd.got[0]!.body).toMatchObject({ event_action: 'trigger', routing_key: 'R0UTINGKEY0000000000000000000000' });
    expect(String(pd.got[0]!.body.dedup_key)).toContain('bad-trace');

    // The prompt event carries no prompt text by default.
    const prompt = JSON.parse(out.lines.find((l) => l.includes('"prompt.created"'))!) as { data: { prompt: Record<string, unknown> } };
    expect(prompt.data.prompt).toMatchObject({ name: 'greeting', version: 1 });
    expect(prompt.data.prompt.prompt).toBeUndefined();

    // Metrics parse as Prometheus text and count what flowed.
    const metrics = await (await fetch(`${ops}/metrics`)).text();
    expect(metrics).toMatch(/^bridge_events_total\{event="trace.updated"\} 1$/m);
    expect(metrics).toMatch(/^bridge_deliveries_total\{sink="slack",outcome="retrying",event="trace.updated"\} 1$/m);
    expect(metrics).toMatch(/^bridge_generation_tokens_total\{model="gpt-4o",kind="prompt"\} 110$/m);
    expect(metrics).toMatch(/^bridge_langfuse_requests_total\{status="200"\} \d+$/m);
    // Metric names as Prometheus defines them (digits too: nodejs_eventloop_lag_p99_seconds).
    for (const line of metrics.split('\n').filter((l) => l && !l.startsWith('#'))) expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[\d.e+-]+$/);
    expect((await fetch(`${ops}/healthz`)).status).toBe(200);

    // Langfuse goes away: health turns 503 after the max age, and back to 200 when it returns.
    sim.injectFaults(...Array.from({ length: 400 }, () => ({ kind: '500' as const })));
    await healthBecomes(ops, 503);
    const reason = (await (await fetch(`${ops}/healthz`)).json()) as { reason: string };
    expect(reason.reason).toMatch(/last successful poll/);
    sim.clearFaults();
    await healthBecomes(ops, 200);

    h.stop();
    await h.done;

    // A restart on the same database repeats nothing.
    const before = { slack: slack.got.length, pd: pd.got.length, out: out.lines.length };
    const out2 = sink();
    const restartedAt = Date.now();
    const served = sim.requests.length;
    const h2 = await runDaemon(config(), silentLogger(), { stdout: out2.stream });
    // The restarted daemon polled every stream and committed it (a poll succeeded), then began a
    // second pass: whatever its first pass found was queued by then, and stopping lets it go out.
    const since = (p: string): number => sim.requests.slice(served).filter((r) => r.path.startsWith(p) && r.status === 200).length;
    await waitFor(() => since('/api/public/v2/observations') >= 2 && since('/api/public/v3/scores') >= 2 && since('/api/public/v2/prompts') >= 2 && (h2.metrics.lastPollOk ?? 0) >= restartedAt);
    h2.stop();
    await h2.done;
    expect(slack.got.length).toBe(before.slack);
    expect(pd.got.length).toBe(before.pd);
    expect(out2.lines).toEqual([]);
  });
});

describe('handler modules through the outbox', () => {
  it('a throwing handler is retried, dead-lettered, shown by status, and replay runs it again', async () => {
    const sim = new LangfuseSimulator({ seed: 5 });
    const url = await sim.start();
    cleanups.push(() => sim.stop());
    const dir = mkdtempSync(join(tmpdir(), 'handlers-'));
    const broken = join(dir, 'broken');
    const seenFile = join(dir, 'seen.jsonl');
    writeFileSync(broken, '1');
    const mod = join(dir, 'handlers.mjs');
    writeFileSync(
      mod,
      `import { existsSync, appendFileSync } from 'node:fs';
export default {
  '*': async (event, ctx) => {
    appendFileSync(${JSON.stringify(seenFile)}, JSON.stringify({ id: event.id, type: event.event, attempt: ctx.attempt }) + '\\n');
    if (existsSync(${JSON.stringify(broken)})) throw new Error('downstream ticket system is down');
  },
};
`,
    );
    const now = Date.now();
    const ts = new Date(now - 60_000).toISOString();
    sim.addTrace({ id: 'h-trace', name: 'h', timestamp: ts });
    sim.addObservation({ traceId: 'h-trace', id: 'h-gen', type: 'GENERATION', startTime: ts, level: 'ERROR', statusMessage: 'x' });
    sim.addScore({ id: 'h-score', traceId: 'h-trace', name: 'acc', dataType: 'NUMERIC', value: 0.9, timestamp: ts });
    const config = loadConfig({
      env: {
        LANGFUSE_PUBLIC_KEY: 'pk-lf-demo',
        LANGFUSE_SECRET_KEY: 'sk-lf-demo',
        LANGFUSE_BASE_URL: url,
        BRIDGE_DATABASE: join(dir, 'b.db'),
        BRIDGE_HANDLERS: mod,
        BRIDGE_RETRY_MAX_ATTEMPTS: '2',
        BRIDGE_RETRY_BASE_SECONDS: '0.01',
        BRIDGE_MAX_REQUESTS_PER_MINUTE: '600',
      },
    });
    const from = now - 120_000;
    const r = await runBackfill(config, silentLogger(), { fromMs: from, toMs: now, redeliver: false, sink: null, alerts: false });
    expect(r.exitCode).toBe(3);
    // Every event type reached the handler, twice (two attempts), then died.
    const calls = () => readLines(seenFile);
    expect(new Set(calls().map((c) => c.type))).toEqual(new Set(['trace.created', 'trace.updated', 'generation.created', 'score.created']));
    expect(calls().filter((c) => c.attempt === 2)).toHaveLength(4);
    const status = statusReport(config);
    expect(status.sinks.find((s) => s.name === 'handler')).toMatchObject({ dead: 4, delivered: 0 });
    expect(status.recentDead[0]!.lastError).toMatch(/downstream ticket system is down/);

    rmSync(broken);
    expect(replay(config, 'handler', null)).toBe(4);
    // A pass over the same range now waits for the replayed deliveries and succeeds.
    const again = await runBackfill(config, silentLogger(), { fromMs: from, toMs: now, redeliver: false, sink: null, alerts: false });
    expect(again.exitCode).toBe(0);
    expect(statusReport(config).sinks.find((s) => s.name === 'handler')).toMatchObject({ dead: 0, delivered: 4 });
    expect(existsSync(broken)).toBe(false);
  });
});

function readLines(file: string): Array<{ id: string; type: string; attempt: number }> {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; type: string; attempt: number });
}
