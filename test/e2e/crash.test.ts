/**
 * SIGKILL at random moments, during a backfill and during `run`: nothing is lost (every expected
 * event arrives at least once), and `run` stops cleanly on SIGTERM even with a hanging sink.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, killLiveChildren, type CliProcess } from '../helpers/cli.js';
import { withHarness } from '../helpers/harness.js';
import { byKey, expectedEvents, keyDiff } from '../helpers/sim.js';
import { delay, randomInt, waitFor } from '../helpers/wait.js';

const HOUR = 3_600_000;

beforeAll(() => assertBuilt());
afterAll(async () => killLiveChildren());

describe.concurrent('crash safety', () => {
  it('SIGKILL during a backfill of 2000 traces, 3 times, then a run to completion: every expected event arrives', () =>
    withHarness({ generation: 'v4', seed: 11 }, async (h) => {
      const { sim, rx } = h;
      const toMs = Date.now() - 60_000;
      const fromMs = toMs - 2 * HOUR;
      sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 2000 });
      const expected = expectedEvents(sim, fromMs, toMs);
      const env = h.env();
      const args = ['backfill', '--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()];

      const delays: number[] = [];
      for (let round = 0; round < 3; round++) {
        const ms = randomInt(100, 1500);
        delays.push(ms);
        const p = h.spawn(args, env);
        await Promise.race([delay(ms), p.exited]);
        p.kill('SIGKILL');
        const exit = await p.wait(10_000);
        // A backfill this size does not finish within 1.5 s; if it did, the kill tested nothing.
        expect(exit.signal, `round ${round}: killed after ${ms} ms\n${p.describe()}`).toBe('SIGKILL');
      }
      const final = await h.run(args, env, 45_000);
      expect(final.exit?.code, `after kills at ${delays.join(', ')} ms\n${final.describe()}`).toBe(0);

      const got = byKey(rx.accepted);
      expect(keyDiff(expected.keys(), got.keys()), `kills at ${delays.join(', ')} ms`).toEqual({ missing: [], unexpected: [] });
      const st = await h.status(env);
      const sink = st.sinks.find((s) => s.name === 'webhook')!;
      expect(sink).toMatchObject({ queued: 0, delivering: 0, retrying: 0, dead: 0 });
      expect(sink.delivered).toBe(expected.size);
    }));

  it('SIGKILL during `run` while data arrives, 3 times, then SIGTERM: every expected event arrives and nothing stays queued', () =>
    withHarness({ generation: 'v4', seed: 12 }, async (h) => {
      const { sim, rx } = h;
      const t0 = Date.now();
      const startFrom = t0 - 120_000;
      sim.generate({ from: new Date(t0 - 90_000), to: new Date(t0 - 30_000), traces: 40 });
      const env = h.env({ BRIDGE_POLL_INTERVAL_SECONDS: '1', BRIDGE_START_FROM: new Date(startFrom).toISOString() });

      // Data keeps arriving while the daemon runs and is killed.
      let adding = true;
      const adder = (async () => {
        while (adding) {
          const now = Date.now();
          sim.generate({ from: new Date(now - 2_000), to: new Date(now), traces: 4 });
          await delay(250);
        }
      })();

      const delays: number[] = [];
      let p: CliProcess = h.spawn(['run'], env);
      try {
        for (let round = 0; round < 3; round++) {
          const ms = randomInt(300, 2500);
          delays.push(ms);
          await delay(ms);
          expect(p.running, `run exited on its own:\n${p.describe()}`).toBe(true);
          p.kill('SIGKILL');
          expect((await p.wait(10_000)).signal).toBe('SIGKILL');
          p = h.spawn(['run'], env);
        }
        await delay(randomInt(300, 1500));
      } finally {
        adding = false;
        await adder;
      }
      const expected = expectedEvents(sim, startFrom, Date.now() + 1);
      expect(expected.size).toBeGreaterThan(200);

      await waitFor(() => keyDiff(expected.keys(), byKey(rx.accepted).keys()).missing.length === 0, 30_000, `every expected event after kills at ${delays.join(', ')} ms`, 100).catch(
        (err: Error) => {
          const d = keyDiff(expected.keys(), byKey(rx.accepted).keys());
          throw new Error(`${err.message}; missing ${JSON.stringify(d.missing)}\n${p.describe()}`);
        },
      );

      p.kill('SIGTERM');
      const exit = await p.wait(12_000);
      expect(exit.code, p.describe()).toBe(0);

      const got = byKey(rx.accepted);
      expect(keyDiff(expected.keys(), got.keys()).unexpected, 'events that the data does not explain').toEqual([]);
      // After the final run: no cursor is ahead of anything left undelivered.
      const st = await h.status(env);
      const sink = st.sinks.find((s) => s.name === 'webhook')!;
      expect(sink, JSON.stringify(st)).toMatchObject({ queued: 0, delivering: 0, retrying: 0, dead: 0 });
      expect(sink.delivered).toBe(expected.size);
      expect(st.streams.map((s) => s.source).sort()).toEqual(['observations', 'scores']);
      for (const s of st.streams) {
        expect(s.lastOutcome, JSON.stringify(s)).toBe('ok');
        expect(Date.parse(s.cursor!)).toBeGreaterThan(t0);
      }
    }));

  it('`run` exits 0 within 10 s of SIGTERM while the sink hangs, and the hung deliveries stay queued', () =>
    withHarness({ generation: 'v4', seed: 13 }, async (h) => {
      const { sim, rx } = h;
      const t0 = Date.now();
      sim.generate({ from: new Date(t0 - 60_000), to: new Date(t0 - 10_000), traces: 10 });
      const expected = expectedEvents(sim, t0 - 60_000, t0);
      rx.setMode('hang');
      const env = h.env({ BRIDGE_POLL_INTERVAL_SECONDS: '1', BRIDGE_START_FROM: new Date(t0 - 120_000).toISOString(), BRIDGE_WEBHOOK_TIMEOUT_SECONDS: '30' });
      const p = h.spawn(['run'], env);
      await waitFor(() => rx.hangingCount >= 5, 20_000, 'deliveries hanging at the receiver');
      const sent = Date.now();
      p.kill('SIGTERM');
      const exit = await p.wait(15_000);
      const took = Date.now() - sent;
      expect(exit.code, p.describe()).toBe(0);
      expect(took, 'ms from SIGTERM to exit').toBeLessThan(10_000);

      const st = await h.status(env);
      const sink = st.sinks.find((s) => s.name === 'webhook')!;
      expect(sink).toMatchObject({ delivered: 0, dead: 0, delivering: 0 });
      expect(sink.queued + sink.retrying).toBe(expected.size);
    }));

  it('`run` exits 0 promptly on SIGINT (Ctrl-C) between polls', () =>
    withHarness({ generation: 'v4', seed: 14 }, async (h) => {
      const env = h.env({ BRIDGE_POLL_INTERVAL_SECONDS: '30' });
      const p = h.spawn(['run'], env);
      await waitFor(() => h.sim.requests.some((r) => r.path.includes('fromTimestamp')) || !p.running, 20_000, 'a first poll');
      expect(p.running, p.describe()).toBe(true);
      const sent = Date.now();
      p.kill('SIGINT');
      const exit = await p.wait(12_000);
      expect(exit.code, p.describe()).toBe(0);
      expect(Date.now() - sent).toBeLessThan(10_000);
      expect(p.stdout, 'stdout carries only events').toBe('');
    }));
});
