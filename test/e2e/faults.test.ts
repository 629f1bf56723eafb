/**
 * Failures on both sides: Langfuse rate-limiting, failing, timing out and answering garbage during a
 * backfill; a sink that is down for a while, one that answers 410, one that always fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, killLiveChildren } from '../helpers/cli.js';
import { withHarness } from '../helpers/harness.js';
import { byKey, expectedEvents, keyDiff, parseEvent, signatureProblem } from '../helpers/sim.js';
import { waitFor } from '../helpers/wait.js';

const HOUR = 3_600_000;

beforeAll(() => assertBuilt());
afterAll(async () => killLiveChildren());

describe.concurrent('faults', () => {
  it('a backfill delivers everything through 429, 500, HTML 502, 524, 422, garbage, a hang and a malformed item (which is skipped with a warning)', () =>
    withHarness({ generation: 'v2', seed: 21 }, async (h) => {
      const { sim, rx } = h;
      const toMs = Date.now() - 60_000;
      const fromMs = toMs - 2 * HOUR;
      sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 150 });
      const expected = expectedEvents(sim, fromMs, toMs);
      // A legacy server has many endpoints: the faults are spread so no call needs many retries
      // (the client backs off exponentially within one call). Probes of absent endpoints fail too.
      sim.injectFaults({ kind: '500' }, '/api/public/v2/observations');
      sim.injectFaults({ kind: '500' }, '/api/public/v2/scores');
      sim.injectFaults({ kind: 'hang', ms: 3_000 }, '/api/public/projects');
      sim.injectFaults({ kind: '502-html' }, '/api/public/traces');
      sim.injectFaults({ kind: '524' }, { kind: '422' }, '/api/public/observations');
      sim.injectFaults({ kind: 'garbage' }, { kind: 'malformed-item' }, '/api/public/scores');
      // The 429 meets a later call (the third scores page), while observations are read side by side.
      sim.injectFaults({ kind: '429', retryAfterSeconds: 2 }, '/api/public/scores');
      const secret = h.secret;
      const env = h.env({ LANGFUSE_TIMEOUT_SECONDS: '1' });
      const range = ['--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()];

      const p = await h.run(['backfill', ...range], env, 35_000);
      expect(p.exit?.code, p.describe()).toBe(0);
      expect(sim.pendingFaults, 'faults not served').toBe(0);
      for (const status of [429, 500, 502, 524, 422]) expect(sim.requests.some((r) => r.status === status), `a ${status} was served`).toBe(true);

      // A 429 with Retry-After: 2 pauses every call to the project for 2 s, not only the one that got it.
      const i429 = sim.requests.findIndex((r) => r.status === 429);
      const t429 = sim.requests[i429]!.at;
      const scoresBefore = sim.requests.slice(0, i429).filter((r) => r.path.startsWith('/api/public/scores')).length;
      expect(scoresBefore, 'the 429 met a later call').toBeGreaterThanOrEqual(2);
      const after = sim.requests.filter((r) => r.receivedAt > t429);
      const trace = after.map((r) => `${r.receivedAt - t429} ms ${r.path}`).join('\n');
      // A call of the other source may already be on its way when the 429 is written (the client has
      // not read it yet): allow that moment, not the pause.
      for (const r of after) expect(r.receivedAt - t429 < 500 || r.receivedAt - t429 >= 1_990, trace).toBe(true);
      expect(after.filter((r) => r.receivedAt - t429 < 500).length, trace).toBeLessThanOrEqual(1);
      const retried = after.find((r) => r.path === sim.requests[i429]!.path)!;
      expect(retried.receivedAt - t429, trace).toBeGreaterThanOrEqual(1_990);
      expect(after.some((r) => r.receivedAt - t429 >= 1_990 && !r.path.startsWith('/api/public/scores')), `another endpoint was called after the pause:\n${trace}`).toBe(true);

      // The malformed score is skipped with a warning; everything else arrives, exactly once.
      const got = byKey(rx.accepted);
      const diff = keyDiff(expected.keys(), got.keys(), 100);
      expect(diff.unexpected).toEqual([]);
      expect(diff.missing.length, `missing: ${diff.missing.join(', ')}`).toBe(1);
      expect(diff.missing[0]).toMatch(/^score\.created\|/);
      expect([...got.values()].every((rs) => rs.length === 1)).toBe(true);
      for (const r of rx.accepted) expect(signatureProblem(r, secret)).toBeNull();
      const warnings = p.logs().filter((l) => l.level === 40 && /malformed/.test(String(l.msg)));
      expect(warnings.length, p.stderr.slice(-3000)).toBe(1);
      expect(warnings[0]).toMatchObject({ what: 'score' });

      // Without the fault, a second backfill delivers exactly the skipped score.
      const before = rx.requests.length;
      const again = await h.run(['backfill', ...range], env, 30_000);
      expect(again.exit?.code, again.describe()).toBe(0);
      const extra = rx.requests.slice(before).map((r) => parseEvent(r));
      expect(extra.map((e) => `score.created|${String(e.data.scoreId)}`)).toEqual(diff.missing);
    }));

  it('a sink down for the first 30 requests gets everything eventually, each event accepted once', () =>
    withHarness({ generation: 'v4', seed: 22 }, async (h) => {
      const { sim, rx } = h;
      const toMs = Date.now() - 60_000;
      const fromMs = toMs - HOUR;
      sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 30 });
      const expected = expectedEvents(sim, fromMs, toMs);
      rx.failNext(503, 30);
      const env = h.env();
      const p = await h.run(['backfill', '--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()], env, 30_000);
      expect(p.exit?.code, p.describe()).toBe(0);
      expect(rx.requests.slice(0, 30).every((r) => r.status === 503)).toBe(true);
      const got = byKey(rx.accepted);
      expect(keyDiff(expected.keys(), got.keys())).toEqual({ missing: [], unexpected: [] });
      const twice = [...got].filter(([, rs]) => rs.length > 1).map(([k]) => k);
      expect(twice, 'accepted more than once').toEqual([]);
      expect(rx.requests.length).toBe(expected.size + 30);
      const st = await h.status(env);
      expect(st.sinks.find((s) => s.name === 'webhook')).toMatchObject({ queued: 0, retrying: 0, delivering: 0, dead: 0, delivered: expected.size });
    }));

  it('a 410 dead-letters at once (exit 3); status shows it, replay queues it, and `run` delivers it', () =>
    withHarness({ generation: 'v4', seed: 23 }, async (h) => {
      const { sim, rx } = h;
      const toMs = Date.now() - 60_000;
      const fromMs = toMs - HOUR;
      sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 10 });
      const expected = expectedEvents(sim, fromMs, toMs);
      rx.failNext(410, 1);
      const secret = h.secret;
      const env = h.env();
      const p = await h.run(['backfill', '--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()], env, 30_000);
      expect(p.exit?.code, p.describe()).toBe(3);
      const gone = rx.requests[0]!;
      expect(gone.status).toBe(410);
      const goneId = parseEvent(gone).id;
      expect(rx.requests.filter((r) => parseEvent(r).id === goneId).length, '410 is not retried').toBe(1);
      expect(rx.requests.length).toBe(expected.size);

      let st = await h.status(env);
      expect(st.sinks.find((s) => s.name === 'webhook')).toMatchObject({ dead: 1, queued: 0, retrying: 0, delivered: expected.size - 1 });
      expect(st.recentDead.length).toBe(1);
      expect(st.recentDead[0]).toMatchObject({ eventId: goneId, sink: 'webhook', attempts: 1 });
      expect(st.recentDead[0]!.lastError).toMatch(/410/);

      const rp = await h.run(['replay'], env, 20_000);
      expect(rp.exit?.code, rp.describe()).toBe(0);
      expect(rp.stdout).toMatch(/^1 dead-lettered deliveries queued again/);
      st = await h.status(env);
      expect(st.sinks.find((s) => s.name === 'webhook')).toMatchObject({ dead: 0, queued: 1 });

      const before = rx.requests.length;
      const run = h.spawn(['run'], { ...env, BRIDGE_POLL_INTERVAL_SECONDS: '1', BRIDGE_START_FROM: new Date().toISOString() });
      await waitFor(() => rx.accepted.some((r) => parseEvent(r).id === goneId), 15_000, `replayed ${goneId} accepted`);
      run.kill('SIGTERM');
      expect((await run.wait(12_000)).code, run.describe()).toBe(0);
      const during = rx.requests.slice(before);
      expect(during.length, 'requests sent by `run` after the replay').toBe(1);
      expect(during[0]!.body).toBe(gone.body);
      expect(signatureProblem(during[0]!, secret)).toBeNull();
      st = await h.status(env);
      expect(st.sinks.find((s) => s.name === 'webhook')).toMatchObject({ dead: 0, queued: 0, retrying: 0, delivered: expected.size });
    }));

  it('a backfill exits 3 when a sink that always answers 500 exhausts BRIDGE_RETRY_MAX_ATTEMPTS=2', () =>
    withHarness({ generation: 'v4', seed: 24 }, async (h) => {
      const { sim, rx } = h;
      const toMs = Date.now() - 60_000;
      const fromMs = toMs - HOUR;
      sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 5 });
      const expected = expectedEvents(sim, fromMs, toMs);
      rx.setMode({ status: 500 });
      const env = h.env({ BRIDGE_RETRY_MAX_ATTEMPTS: '2' });
      const p = await h.run(['backfill', '--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()], env, 30_000);
      expect(p.exit?.code, p.describe()).toBe(3);
      const got = byKey(rx.requests);
      expect(keyDiff(expected.keys(), got.keys())).toEqual({ missing: [], unexpected: [] });
      const notTwice = [...got].filter(([, rs]) => rs.length !== 2).map(([k, rs]) => `${k}×${rs.length}`);
      expect(notTwice, 'attempts per event').toEqual([]);
      const st = await h.status(env);
      expect(st.sinks.find((s) => s.name === 'webhook')).toMatchObject({ dead: expected.size, delivered: 0, queued: 0, retrying: 0 });
    }));
});
