/**
 * Slack's one message a second holds across worker processes: the pacing is BullMQ's queue-level
 * rate limiter, kept in Redis, not a timer in each process.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bridgeEnv, runCli, spawnCli, statusJson } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { REDIS_URL, duplicates, useQueueSuite } from './helpers.js';
import { skipWithout } from '../helpers/requirements.js';

const HOUR = 3_600_000;
// Attempts start at least 1200 ms apart (the limiter's margin over Slack's second); arrivals jitter
// with scheduling under load, never by enough to bring two messages within a second.

describe.skipIf(skipWithout('redis'))('Slack pacing across three workers', () => {
  const suite = useQueueSuite({ tag: 'slack', seed: 5 });

  it('receives at most one message a second in total', async () => {
    const { sim, rx: slack, tmp, prefix } = suite;
    const toMs = Date.now() - 60_000;
    const fromMs = toMs - HOUR;
    const gen = sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 14, errorRate: 0.5 });
    expect(gen.errorTraces).toBeGreaterThan(2);
    const env = bridgeEnv({
      langfuseUrl: sim.url,
      database: path.join(tmp.dir, 'slack.db'),
      extra: { BRIDGE_REDIS_URL: REDIS_URL, BRIDGE_QUEUE_PREFIX: prefix, SLACK_WEBHOOK_URL: slack.url },
    });
    const workers = [0, 1, 2].map(() => spawnCli(['worker', '--sink', 'slack', '--concurrency', '4', '--log-level', 'debug'], env));
    await waitFor(() => workers.every((w) => /worker taking jobs/.test(w.stderr)), 15_000, 'three workers to connect');

    // --sink slack: history goes to the alert sink named here.
    const bf = await runCli(['backfill', '--sink', 'slack', '--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()], env, 45_000);
    expect(bf.exit?.code, bf.describe()).toBe(0);

    const st = await statusJson(env);
    const row = st.sinks.find((s) => s.name === 'slack')!;
    expect(row.delivered).toBeGreaterThanOrEqual(gen.errorTraces);
    expect(row.dead).toBe(0);
    expect(slack.hits.length).toBe(row.delivered);
    expect(duplicates(slack.hits.map((h) => h.body))).toEqual([]);

    // More than one worker posted (the limit is shared, not per process) ...
    const posted = workers.map((w) => w.logs().filter((l) => l.msg === 'delivered' && l.sink === 'slack').length);
    expect(posted.reduce((a, b) => a + b, 0)).toBe(row.delivered);
    expect(posted.filter((n) => n > 0).length, `messages per worker: ${posted.join(', ')}`).toBeGreaterThanOrEqual(2);
    // ... and no two messages arrived closer than a second apart.
    const at = slack.hits.map((h) => h.at).sort((a, b) => a - b);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    console.log(`Slack messages: ${at.length}, per worker ${posted.join('/')}, gaps ${gaps.join(', ')} ms`);
    expect(Math.min(...gaps), `gaps between Slack messages: ${gaps.join(', ')} ms`).toBeGreaterThanOrEqual(1000);
    // No burst over any run of messages either: k + 1 messages span at least k seconds.
    for (let k = 2; k < at.length; k++) for (let i = 0; i + k < at.length; i++) expect(at[i + k]! - at[i]!).toBeGreaterThanOrEqual(k * 1000);
    // And they went out at the pace, not slower than needed.
    expect(at[at.length - 1]! - at[0]!).toBeLessThan(gaps.length * 1200 + 5_000);

    for (const w of workers) w.kill('SIGTERM');
    for (const w of workers) expect((await w.wait(12_000)).code, w.describe()).toBe(0);
  });
});
