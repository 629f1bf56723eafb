/**
 * An interval the request ceiling cannot hold: the daemon says so at start (with the numbers), polls
 * at the pace the ceiling holds instead of in bursts and silences, and `status`, `/metrics` and
 * `/healthz` show that pace; and a ceiling below what the late-data sweep needs shows as sweep lag.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, killLiveChildren, runCli } from '../helpers/cli.js';
import { withHarness } from '../helpers/harness.js';
import { delay, waitFor } from '../helpers/wait.js';

beforeAll(() => assertBuilt());
afterAll(async () => killLiveChildren());

interface PaceJson {
  pollPace: Array<{ intervalSeconds: number; effectiveIntervalSeconds: number; measuredIntervalSeconds: number | null; callsPerPoll: number; ceiling: number; limitedByCeiling: boolean }>;
  streams: Array<{ source: string; sweepBehindSeconds: number }>;
}

describe.concurrent('the poll pace under the request ceiling', () => {
  it('a 2 s interval against a v2 server at the default 30 calls a minute: said at start, polls every 6 s, shown everywhere', () =>
    withHarness({ generation: 'v2', seed: 81 }, async (h) => {
      const { sim } = h;
      sim.generate({ from: new Date(Date.now() - 15 * 60_000), to: new Date(Date.now() - 1_000), traces: 10 });
      const env = h.env({ BRIDGE_POLL_INTERVAL_SECONDS: '2', BRIDGE_MAX_REQUESTS_PER_MINUTE: undefined, BRIDGE_HTTP_PORT: '0' });
      const daemon = h.spawn(['run'], env);
      await waitFor(() => daemon.logs().some((l) => l.level === 40 && /BRIDGE_POLL_INTERVAL_SECONDS=2/.test(String(l.msg))), 20_000, 'the warning').catch((e: Error) => {
        throw new Error(`${e.message}\n${daemon.describe()}`);
      });
      const warn = daemon.logs().find((l) => /BRIDGE_POLL_INTERVAL_SECONDS=2/.test(String(l.msg)))!;
      expect(warn.msg).toBe('BRIDGE_POLL_INTERVAL_SECONDS=2 needs 90 calls a minute (3 a poll) but the request ceiling is 30: polling every 6 s instead; raise BRIDGE_MAX_REQUESTS_PER_MINUTE or the interval');
      const ops = String(daemon.logs().find((l) => /^ops server listening/.test(String(l.msg)))!.url);

      // Polls run evenly, no burst-then-silence: watch 26 s of trace-list calls.
      const from = Date.now();
      await delay(26_000);
      const polls = sim.requests.filter((r) => r.receivedAt >= from && r.path.startsWith('/api/public/traces?')).map((r) => r.receivedAt);
      const gaps = polls.slice(1).map((t, i) => t - polls[i]!);
      expect(polls.length, JSON.stringify(gaps)).toBeGreaterThanOrEqual(3);
      expect(Math.max(...gaps), JSON.stringify(gaps)).toBeLessThan(15_000);
      // Not in bursts either (a loaded machine or a sweep's extra call may delay one poll a little).
      expect(Math.min(...gaps), JSON.stringify(gaps)).toBeGreaterThanOrEqual(2_500);

      const metrics = await (await fetch(`${ops}/metrics`)).text();
      expect(metrics).toMatch(/^bridge_poll_interval_configured_seconds\{project="demo-project"\} 2$/m);
      expect(metrics).toMatch(/^bridge_langfuse_request_ceiling\{project="demo-project"\} 30$/m);
      const effective = Number(/^bridge_poll_interval_effective_seconds\{project="demo-project"\} ([\d.]+)$/m.exec(metrics)?.[1]);
      expect(effective, metrics).toBeGreaterThanOrEqual(5.5);
      expect(effective).toBeLessThan(15);
      const health = await fetch(`${ops}/healthz`);
      expect(health.status).toBe(200);
      const body = (await health.json()) as { status: string; warnings?: string[] };
      expect(body.warnings?.[0]).toMatch(/^polls run every [\d.]+ s, not every 2 s: the request ceiling of 30 calls a minute cannot hold 3 calls a poll/);

      const st = await runCli(['status', '--json'], env, 20_000);
      const json = JSON.parse(st.stdout) as PaceJson;
      expect(json.pollPace).toEqual([expect.objectContaining({ intervalSeconds: 2, effectiveIntervalSeconds: 6, callsPerPoll: 3, ceiling: 30, limitedByCeiling: true })]);
      const text = await runCli(['status'], env, 20_000);
      expect(text.stdout).toMatch(/polls every [\d.]+ s \([\d.]+ a minute; interval set: 2 s\): the request ceiling of 30 calls a minute holds 3 calls a poll every 6 s at most/);
      daemon.kill('SIGTERM');
      expect((await daemon.wait(12_000)).code, daemon.describe()).toBe(0);
    }));

  it('a ceiling below what re-reading the lookback needs shows as sweep lag in status and /metrics', () =>
    withHarness({ generation: 'v4', seed: 82 }, async (h) => {
      const { sim } = h;
      sim.generate({ from: new Date(Date.now() - 40_000), to: new Date(Date.now() - 1_000), traces: 50 });
      // 12 calls a minute: polls every 10 s with two calls each, nothing left for the sweep, due every 10 s.
      const env = h.env({ BRIDGE_POLL_INTERVAL_SECONDS: '2', BRIDGE_MAX_REQUESTS_PER_MINUTE: '12', BRIDGE_LOOKBACK_SECONDS: '40', BRIDGE_HTTP_PORT: '0' });
      const daemon = h.spawn(['run'], env);
      await waitFor(() => daemon.logs().some((l) => /^ops server listening/.test(String(l.msg))), 20_000, 'the ops server');
      const ops = String(daemon.logs().find((l) => /^ops server listening/.test(String(l.msg)))!.url);
      let behind = 0;
      await waitFor(
        async () => {
          const m = await (await fetch(`${ops}/metrics`)).text();
          behind = Number(/^bridge_late_data_sweep_behind_seconds\{source="observations"\} ([\d.]+)$/m.exec(m)?.[1] ?? 0);
          return behind >= 5;
        },
        45_000,
        'the sweep falling behind in /metrics',
      ).catch((e: Error) => {
        throw new Error(`${e.message}\n${daemon.describe()}`);
      });
      const json = JSON.parse((await runCli(['status', '--json'], env, 20_000)).stdout) as PaceJson;
      expect(json.streams.find((s) => s.source === 'observations')!.sweepBehindSeconds).toBeGreaterThanOrEqual(5);
      const text = (await runCli(['status'], env, 20_000)).stdout;
      expect(text).toMatch(/traces,generations .* behind \d+ s/);
      expect(daemon.logs().some((l) => l.msg === 'late-data sweep paused by the request ceiling; it resumes next poll')).toBe(true);
      daemon.kill('SIGTERM');
      expect((await daemon.wait(12_000)).code, daemon.describe()).toBe(0);
    }));
});
