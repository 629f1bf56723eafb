/**
 * Sink states in-process: a Slack 429 pauses the whole sink until its Retry-After (the next message
 * waits too), /metrics names the state; a sink that keeps failing says so in one summary a minute.
 */
import http from 'node:http';
import { mkdtempSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { runDaemon } from '../src/commands/run.js';
import { loadConfig } from '../src/config/index.js';
import { LangfuseSimulator } from '../demo/simulator.js';
import { SinkHealth } from '../src/delivery/health.js';
import { silentLogger } from '../src/ops/logger.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function waitFor(cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function capture(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

describe('sink states', () => {
  it('a Slack 429 with Retry-After 2 holds the next message for 2 s, not only the one that got it; /metrics says paused, then ok', async () => {
    const sim = new LangfuseSimulator({ seed: 12 });
    const url = await sim.start();
    cleanups.push(() => sim.stop());
    const posts: number[] = [];
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        posts.push(Date.now());
        if (posts.length === 1) res.writeHead(429, { 'retry-after': '2' }).end('rate_limited');
        else res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const now = Date.now();
    const ts = (s: number) => new Date(now - s * 1000).toISOString();
    for (const [i, t] of [50, 40, 30].entries()) {
      sim.addTrace({ id: `bad-${i}`, name: `broken-${i}`, timestamp: ts(t) });
      sim.addObservation({ traceId: `bad-${i}`, id: `gen-${i}`, type: 'GENERATION', startTime: ts(t), level: 'ERROR', statusMessage: 'boom' });
    }
    const config = loadConfig({
      env: {
        LANGFUSE_PUBLIC_KEY: 'pk-lf-demo',
        LANGFUSE_SECRET_KEY: 'sk-lf-demo',
        LANGFUSE_BASE_URL: url,
        BRIDGE_DATABASE: join(mkdtempSync(join(tmpdir(), 'states-')), 'b.db'),
        BRIDGE_POLL_INTERVAL_SECONDS: '1',
        BRIDGE_START_FROM: ts(120),
        BRIDGE_MAX_REQUESTS_PER_MINUTE: '600',
        BRIDGE_RETRY_BASE_SECONDS: '0.05',
        BRIDGE_HTTP_PORT: '0',
        SLACK_WEBHOOK_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/services/T/B/X`,
      },
    });
    const h = await runDaemon(config, silentLogger(), { stdout: new Writable({ write: (_c, _e, cb) => cb() }) });
    cleanups.push(async () => {
      h.stop();
      await h.done;
    });
    const ops = (await h.opsUrl)!;
    const metrics = async (): Promise<string> => (await fetch(`${ops}/metrics`)).text();
    await waitFor(() => posts.length >= 1);
    await waitFor(async () => /^bridge_sink_state\{sink="slack",state="paused"\} 1$/m.test(await metrics()), 1_500);
    await waitFor(() => posts.length >= 4);
    // The three alerts and the retry of the one that got the 429: none before the 2 s had passed.
    expect(posts[1]! - posts[0]!, `posts after the 429: ${posts.map((p) => p - posts[0]!).join(', ')} ms`).toBeGreaterThanOrEqual(2_000);
    // Then Slack's one message a second again.
    for (let i = 2; i < posts.length; i++) expect(posts[i]! - posts[i - 1]!).toBeGreaterThanOrEqual(950);
    const m = await metrics();
    expect(m).toMatch(/^bridge_sink_state\{sink="slack",state="ok"\} 1$/m);
    expect(m).toMatch(/^bridge_sink_state\{sink="slack",state="paused"\} 0$/m);
  });

  it('a sink that keeps failing: one line when it starts, then one summary per interval with attempts, statuses, next retry and dead letters', async () => {
    const { logger, lines } = capture();
    const health = new SinkHealth('hook', { logger, baseSeconds: 60, summaryEveryMs: 300 });
    cleanups.push(() => health.stop());
    const fail = (status: number) => ({ ok: false as const, retry: true, reason: `HTTP ${status}`, status });
    const nextAt = Date.now() + 60_000;
    for (let i = 0; i < 40; i++) health.record(fail(i % 2 ? 500 : 502), 'retrying', { nextAt });
    health.record(fail(500), 'dead', { eventId: 'evt_x' });
    expect(lines.map((l) => l.state)).toEqual(['failing']);
    // A retry base of a minute: 40 failures within it do not open the breaker.
    expect(health.state).toBe('failing');
    await waitFor(() => lines.length >= 2, 3_000);
    expect(lines[1]).toMatchObject({
      sink: 'hook',
      state: 'failing',
      attempts: 41,
      failed: 41,
      statuses: { '500': 21, '502': 20 },
      nextRetryAt: new Date(nextAt).toISOString(),
      deadLettered: 1,
    });
    // A minute with nothing tried (every delivery waiting, or dead-lettered) adds no line.
    await new Promise((r) => setTimeout(r, 800));
    expect(lines).toHaveLength(2);
    health.record({ ok: true }, 'delivered');
    expect(lines[2]).toMatchObject({ state: 'ok', failedAttempts: 41, deadLettered: 1 });
    const count = lines.length;
    await new Promise((r) => setTimeout(r, 700));
    expect(lines.length, 'an ok sink says nothing more').toBe(count);
  });

  it('a 429 pauses the sink for its Retry-After, at most an hour; a 503 pauses it only when it says when', () => {
    const health = new SinkHealth('hook', { logger: silentLogger(), baseSeconds: 1 });
    cleanups.push(() => health.stop());
    health.record({ ok: false, retry: true, reason: 'HTTP 503', status: 503 }, 'retrying', { nextAt: Date.now() + 1_000 });
    expect(health.state).toBe('failing');
    const until = health.record({ ok: false, retry: true, retryAfterMs: 5 * 3_600_000, reason: 'HTTP 429', status: 429 }, 'retrying', { nextAt: Date.now() + 3_600_000 });
    expect(health.state).toBe('paused');
    expect(until! - Date.now()).toBeGreaterThan(3_590_000);
    expect(until! - Date.now()).toBeLessThanOrEqual(3_600_000);
    expect(health.heldUntil()).toBe(until);
  });

  it('a 503 that says when (Retry-After) pauses the sink like a 429', () => {
    const health = new SinkHealth('hook', { logger: silentLogger(), baseSeconds: 1 });
    cleanups.push(() => health.stop());
    const until = health.record({ ok: false, retry: true, retryAfterMs: 3_000, reason: 'HTTP 503', status: 503 }, 'retrying', { nextAt: Date.now() + 3_000 });
    expect(health.state).toBe('paused');
    expect(until! - Date.now()).toBeGreaterThan(2_900);
    expect(until! - Date.now()).toBeLessThanOrEqual(3_000);
    expect(health.heldUntil()).toBe(until);
  });
});
