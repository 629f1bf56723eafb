/**
 * The request ceiling: no 60 s window holds more than BRIDGE_MAX_REQUESTS_PER_MINUTE calls to
 * Langfuse, retries included. The built CLI is held to it against a rate-limiting legacy server
 * (a low ceiling: after it is spent, nothing goes out), and the RateLimiter itself with a fake clock.
 */
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { RateLimiter } from '../../src/langfuse/rate-limiter.js';
import { assertBuilt, bridgeEnv, killLiveChildren, spawnCli, tempDir } from '../helpers/cli.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startSim, type LangfuseSimulator } from '../helpers/sim.js';
import { delay, waitFor } from '../helpers/wait.js';

const HOUR = 3_600_000;

/** The most calls any half-open window [t, t + windowMs) holds. */
function maxInWindow(times: number[], windowMs: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i]! - t[j]! >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

describe('the built CLI under BRIDGE_MAX_REQUESTS_PER_MINUTE', () => {
  let sim: LangfuseSimulator;
  let rx: Receiver;
  const tmp = tempDir();

  beforeAll(async () => {
    assertBuilt();
    rx = await startReceiver();
  });
  afterEach(async () => killLiveChildren());
  afterAll(async () => {
    await sim?.stop();
    await rx?.stop();
    tmp.cleanup();
  });

  it('spends at most the ceiling in a minute against a legacy v2 server that rate-limits, and is never refused', async () => {
    const ceiling = 6;
    sim = await startSim({ generation: 'v2', seed: 31, rateLimitPerMinute: ceiling });
    const toMs = Date.now() - 60_000;
    const fromMs = toMs - 2 * HOUR;
    // 150 traces × 5 observations at 100 rows a page: far more calls than the ceiling.
    sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 150 });
    const env = bridgeEnv({ langfuseUrl: sim.url, database: path.join(tmp.dir, 'rl.db'), webhookUrl: rx.url, extra: { BRIDGE_MAX_REQUESTS_PER_MINUTE: String(ceiling) } });
    const p = spawnCli(['backfill', '--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()], env);
    await waitFor(() => sim.requests.length >= ceiling || !p.running, 15_000, `${ceiling} calls to Langfuse`);
    expect(p.running, p.describe()).toBe(true);
    const spentAt = Date.now();
    // Nothing more may go out until a minute after the first call; watch a few seconds of it.
    await delay(4_000);
    expect(sim.requests.length, JSON.stringify(sim.requests.map((r) => `${r.at - sim.requests[0]!.at} ${r.status} ${r.path}`), null, 1)).toBe(ceiling);
    expect(sim.requests[0]!.at + 60_000).toBeGreaterThan(spentAt + 4_000);
    expect(sim.requests.filter((r) => r.status === 429)).toEqual([]);
    expect(p.running, 'the backfill waits for the window instead of failing').toBe(true);
    expect(maxInWindow(sim.requests.map((r) => r.at), 60_000)).toBeLessThanOrEqual(ceiling);
    p.kill('SIGTERM');
    await p.wait(10_000);
  });

  it('counts retries toward the ceiling: a server failing every other call still sees at most the ceiling', async () => {
    const ceiling = 12;
    const flaky = await startSim({ generation: 'v2', seed: 32, failEvery: 2 });
    try {
      const toMs = Date.now() - 60_000;
      const fromMs = toMs - 2 * HOUR;
      flaky.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 150 });
      const env = bridgeEnv({ langfuseUrl: flaky.url, database: path.join(tmp.dir, 'flaky.db'), webhookUrl: rx.url, extra: { BRIDGE_MAX_REQUESTS_PER_MINUTE: String(ceiling) } });
      const p = spawnCli(['backfill', '--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()], env);
      await waitFor(() => flaky.requests.length >= ceiling || !p.running, 20_000, `${ceiling} calls to Langfuse`);
      expect(p.running, p.describe()).toBe(true);
      // Retries come quickly (backoff from 1 s): watch long enough for several to be due.
      await delay(5_000);
      const log = JSON.stringify(flaky.requests.map((r) => `${r.receivedAt - flaky.requests[0]!.receivedAt} ${r.status} ${r.path}`), null, 1);
      expect(flaky.requests.filter((r) => r.status === 500).length, log).toBeGreaterThanOrEqual(2);
      expect(flaky.requests.length, log).toBe(ceiling);
      expect(maxInWindow(flaky.requests.map((r) => r.receivedAt), 60_000)).toBeLessThanOrEqual(ceiling);
      expect(p.running, 'the backfill waits for the window instead of failing').toBe(true);
      p.kill('SIGTERM');
      await p.wait(10_000);
    } finally {
      await flaky.stop();
    }
  });
});

describe('RateLimiter with a fake clock', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  async function acquireAll(limiter: RateLimiter, n: number, onEach?: (i: number) => void): Promise<number[]> {
    const starts: number[] = [];
    const run = (async () => {
      for (let i = 0; i < n; i++) {
        await limiter.acquire();
        starts.push(Date.now());
        onEach?.(i);
      }
    })();
    // Drive the fake clock until every call got its slot.
    while (starts.length < n) await vi.advanceTimersByTimeAsync(250);
    await run;
    return starts;
  }

  it('never lets more than maxPerMinute calls into any 60 s window, and spaces the rest', async () => {
    vi.useFakeTimers({ now: Date.parse('2026-11-27T00:00:00Z') });
    const limiter = new RateLimiter(20, 60_000, () => Date.now());
    const t0 = Date.now();
    const starts = await acquireAll(limiter, 65);
    expect(maxInWindow(starts, 60_000)).toBe(20);
    // The first 20 go at once; 21–40 only after the first minute, 41–60 after the second.
    expect(starts.slice(0, 20).every((t) => t === t0)).toBe(true);
    expect(starts[20]! - t0).toBeGreaterThan(60_000);
    expect(starts[40]! - t0).toBeGreaterThan(120_000);
    for (let i = 20; i < starts.length; i++) expect(starts[i]! - starts[i - 20]!).toBeGreaterThanOrEqual(60_000);
    expect(limiter.waits).toBeGreaterThan(0);
  });

  it('holds the ceiling for calls spread irregularly over several minutes', async () => {
    vi.useFakeTimers({ now: Date.parse('2026-11-27T00:00:00Z') });
    const limiter = new RateLimiter(7, 60_000, () => Date.now());
    let seed = 12345;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const starts: number[] = [];
    const done = (async () => {
      for (let i = 0; i < 40; i++) {
        await new Promise((r) => setTimeout(r, Math.floor(rnd() * 9_000)));
        await limiter.acquire();
        starts.push(Date.now());
      }
    })();
    while (starts.length < 40) await vi.advanceTimersByTimeAsync(100);
    await done;
    expect(maxInWindow(starts, 60_000)).toBeLessThanOrEqual(7);
  });

  it('a 429 pause holds every call until it has passed, even with room in the window', async () => {
    vi.useFakeTimers({ now: Date.parse('2026-11-27T00:00:00Z') });
    const limiter = new RateLimiter(100, 60_000, () => Date.now());
    await limiter.acquire();
    const t0 = Date.now();
    limiter.pause(t0 + 2_000);
    expect(limiter.available()).toBe(99);
    let got = 0;
    const p = limiter.acquire().then(() => (got = Date.now()));
    await vi.advanceTimersByTimeAsync(1_999);
    expect(got).toBe(0);
    await vi.advanceTimersByTimeAsync(10);
    await p;
    expect(got).toBeGreaterThanOrEqual(t0 + 2_000);
    // An earlier pause does not shorten a later one.
    limiter.pause(Date.now() + 5_000);
    limiter.pause(Date.now() + 1_000);
    expect(limiter.pausedUntilMs).toBe(Date.now() + 5_000);
  });

  it('a waiting acquire rejects when its signal aborts', async () => {
    vi.useFakeTimers({ now: Date.parse('2026-11-27T00:00:00Z') });
    const limiter = new RateLimiter(1, 60_000, () => Date.now());
    await limiter.acquire();
    const ac = new AbortController();
    const p = limiter.acquire(ac.signal);
    const settled = p.then(
      () => 'resolved',
      () => 'rejected',
    );
    await vi.advanceTimersByTimeAsync(1_000);
    ac.abort(new Error('stop'));
    expect(await settled).toBe('rejected');
    expect(limiter.available()).toBe(0);
  });
});
