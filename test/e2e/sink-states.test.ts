/**
 * A sink that breaks, seen from outside: the daemon says so in a handful of log lines (its changes of
 * state, not one per attempt), its breaker holds deliveries and probes with one, and the backlog drains
 * when the receiver is back, without a restart. A 429 pauses the sink for every process delivering to it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, killLiveChildren, runCli } from '../helpers/cli.js';
import { withHarness } from '../helpers/harness.js';
import { byKey, expectedEvents, keyDiff, parseEvent } from '../helpers/sim.js';
import { waitFor } from '../helpers/wait.js';

const HOUR = 3_600_000;

beforeAll(() => assertBuilt());
afterAll(async () => killLiveChildren());

/** The log lines about one sink, at info and above. */
function sinkLines(logs: Array<Record<string, unknown>>, sink: string): Array<Record<string, unknown>> {
  return logs.filter((l) => l.sink === sink && Number(l.level) >= 30);
}

describe.concurrent('sink states', () => {
  it('a sink answering 500: failing → open → one probe at a time → ok, the backlog drains without a restart, in a handful of log lines', () =>
    withHarness({ generation: 'v4', seed: 31 }, async (h) => {
      const { sim, rx } = h;
      const toMs = Date.now() - 60_000;
      const fromMs = toMs - HOUR;
      sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 25 });
      const expected = expectedEvents(sim, fromMs, toMs);
      rx.setMode({ status: 500 });
      const env = h.env({
        BRIDGE_START_FROM: new Date(fromMs).toISOString(),
        BRIDGE_POLL_INTERVAL_SECONDS: '1',
        BRIDGE_RETRY_BASE_SECONDS: '0.2',
        BRIDGE_RETRY_MAX_ATTEMPTS: '40',
      });
      const daemon = h.spawn(['run'], env);
      try {
        await waitFor(() => sinkLines(daemon.logs(), 'webhook').some((l) => l.state === 'open'), 30_000, 'the breaker to open');
        const openedAt = Date.now();
        expect((await h.status(env)).sinks.find((s) => s.name === 'webhook')).toMatchObject({ state: 'open' });
        // While open, one delivery at a time probes the sink (after 0.2 s, then 0.4, 0.8, 1.6...). The
        // first second is left out: attempts already under way when it opened may land late on a busy machine.
        await new Promise((r) => setTimeout(r, 3_500));
        const whileOpen = rx.requests.filter((r) => r.at > openedAt + 1_000);
        expect(whileOpen.length, 'requests while the breaker was open').toBeGreaterThanOrEqual(1);
        expect(whileOpen.length, 'requests while the breaker was open').toBeLessThanOrEqual(3);

        rx.setMode(null);
        await waitFor(() => byKey(rx.accepted).size >= expected.size, 30_000, 'every event delivered once the sink is back');
        await waitFor(() => sinkLines(daemon.logs(), 'webhook').some((l) => l.state === 'ok'), 5_000, 'the breaker to close');
        const got = byKey(rx.accepted);
        expect(keyDiff(expected.keys(), got.keys())).toEqual({ missing: [], unexpected: [] });
        // The first request after the receiver came back is the probe; the backlog follows it.
        const firstOk = rx.requests.findIndex((r) => r.status === 200);
        expect(rx.requests.slice(firstOk + 1).some((r) => r.status === 200)).toBe(true);

        const lines = sinkLines(daemon.logs(), 'webhook');
        // Failing, open, closed: nothing per attempt (hundreds of attempts failed meanwhile).
        expect(rx.requests.filter((r) => r.status === 500).length).toBeGreaterThanOrEqual(20);
        expect(lines.map((l) => l.state), daemon.stderr.slice(-3000)).toEqual(['failing', 'open', 'ok']);
        expect(lines.length).toBeLessThanOrEqual(5);
        expect(lines[2]).toMatchObject({ level: 30, was: 'open' });
        expect(String(lines[2]!.msg)).toMatch(/circuit closed/);
        await waitFor(async () => (await h.status(env)).sinks.find((s) => s.name === 'webhook')?.state === 'ok', 5_000, 'status to say ok');
        const text = await runCli(['status'], env);
        expect(text.stdout).toMatch(/^webhook\s+ok\s+0\s/m);
      } finally {
        daemon.kill('SIGTERM');
      }
      expect((await daemon.wait(12_000)).code, daemon.describe()).toBe(0);
    }));

  it('a 429 with Retry-After pauses the sink in every process delivering to it: no call starts before it has passed', () =>
    withHarness({ generation: 'v4', seed: 32 }, async (h) => {
      const { sim, rx } = h;
      const toMs = Date.now() - 60_000;
      const midMs = toMs - HOUR;
      const fromMs = midMs - HOUR;
      sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 80 });
      const expected = expectedEvents(sim, fromMs, toMs);
      // Two processes on one database, each delivering its own range to the same receiver.
      const env = h.env({ BRIDGE_WEBHOOK_CONCURRENCY: '2' });
      rx.setDelay(25);
      const half = (ts: number): 'a' | 'b' => (ts < midMs ? 'a' : 'b');
      const seen = new Set<string>();
      let pausedAt = 0;
      rx.setResponder((req) => {
        seen.add(half(Date.parse(String(parseEvent(req).timestamp))));
        if (pausedAt === 0 && seen.size === 2 && rx.requests.length > 10) {
          pausedAt = req.at;
          return { status: 429, headers: { 'retry-after': '2' } };
        }
        return undefined;
      });
      const a = h.spawn(['backfill', '--from', new Date(fromMs).toISOString(), '--to', new Date(midMs).toISOString()], env);
      const b = h.spawn(['backfill', '--from', new Date(midMs).toISOString(), '--to', new Date(toMs).toISOString()], env);
      await waitFor(() => pausedAt > 0 || !a.running || !b.running, 30_000, 'both processes delivering, then a 429');
      expect(pausedAt, 'the 429 came while both processes were delivering').toBeGreaterThan(0);
      expect((await a.wait(40_000)).code, a.describe()).toBe(0);
      expect((await b.wait(40_000)).code, b.describe()).toBe(0);

      // The process that met the 429 says so when it read the answer (under load, a while after the
      // receiver sent it: the other process could not know before). From then on, calls already under
      // way land within a moment, and none starts in either process until Retry-After has passed.
      const told = [a, b].flatMap((p) => sinkLines(p.logs(), 'webhook').filter((l) => l.state === 'paused').map((l) => Number(l.time)));
      const knownAt = Math.min(...told);
      const after = rx.requests.filter((r) => r.at > pausedAt);
      const during = after.filter((r) => r.at > knownAt + 100 && r.at < pausedAt + 2_000);
      expect(during.map((r) => r.at - pausedAt), `calls during the pause (ms after the 429; known after ${knownAt - pausedAt} ms)`).toEqual([]);
      const resumed = after.filter((r) => r.at >= pausedAt + 2_000);
      const halves = new Set(resumed.map((r) => half(Date.parse(String(parseEvent(r).timestamp)))));
      expect(halves, 'both processes resumed after the pause').toEqual(new Set(['a', 'b']));
      expect(keyDiff(expected.keys(), byKey(rx.accepted).keys())).toEqual({ missing: [], unexpected: [] });
      // Each process says it paused once, naming the state.
      for (const p of [a, b]) expect(sinkLines(p.logs(), 'webhook').filter((l) => l.state === 'paused'), p.stderr.slice(-2000)).toHaveLength(1);
    }));

  it('a 429 asking for a day pauses the sink for an hour, kept in the database: after a SIGKILL the next daemon does not call before it has passed', () =>
    withHarness({ generation: 'v4', seed: 33 }, async (h) => {
      const { sim, rx } = h;
      const toMs = Date.now() - 60_000;
      const fromMs = toMs - HOUR;
      sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 10 });
      rx.setResponder(() => ({ status: 429, headers: { 'retry-after': '86400' } }));
      const env = h.env({ BRIDGE_START_FROM: new Date(fromMs).toISOString(), BRIDGE_POLL_INTERVAL_SECONDS: '1' });
      const first = h.spawn(['run'], env);
      await waitFor(() => sinkLines(first.logs(), 'webhook').some((l) => l.state === 'paused'), 30_000, 'the sink to pause');
      const sink = async () => (await h.status(env)).sinks.find((s) => s.name === 'webhook')!;
      const paused = await sink();
      expect(paused.state).toBe('paused');
      // Retry-After is capped at an hour, in what every process reads from the database.
      const left = Date.parse(paused.pausedUntil!) - Date.now();
      expect(left).toBeGreaterThan(3_590_000);
      expect(left).toBeLessThanOrEqual(3_600_000);
      first.kill('SIGKILL');
      await first.wait(5_000).catch(() => undefined);
      const killedAt = Date.now();

      const second = h.spawn(['run'], env);
      try {
        // It runs: it polls Langfuse, and its dispatcher has had seconds to send what is queued.
        await waitFor(() => sim.requests.filter((r) => r.at > killedAt).length >= 3, 20_000, 'the next daemon to poll');
        await new Promise((r) => setTimeout(r, 3_000));
        // Attempts under way when the first was killed may land a moment later; none starts after.
        expect(rx.requests.filter((r) => r.at > killedAt + 500).map((r) => r.at - killedAt), 'calls after the restart').toEqual([]);
        expect(await sink()).toMatchObject({ state: 'paused', pausedUntil: paused.pausedUntil, dead: 0 });
      } finally {
        second.kill('SIGTERM');
      }
      expect((await second.wait(12_000)).code, second.describe()).toBe(0);
    }));
});
