/**
 * `backfill` against each API generation: exactly one delivery per expected event, idempotent reruns,
 * `--redeliver` with the same ids and bodies, and byte-identical bodies from a fresh database.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, killLiveChildren } from '../helpers/cli.js';
import { withHarness } from '../helpers/harness.js';
import type { ReceivedRequest } from '../helpers/receiver.js';
import { byKey, eventKey, expectedEvents, keyDiff, parseEvent, signatureProblem, simRows } from '../helpers/sim.js';
import { waitFor } from '../helpers/wait.js';

const HOUR = 3_600_000;

beforeAll(() => assertBuilt());
afterAll(async () => killLiveChildren());

// The three generations run side by side, each against its own simulator, receiver and databases.
describe.concurrent('backfill', () => {
  it.each(['v4', 'v3', 'v2'] as const)('against a %s server: each expected event exactly once, reruns deliver nothing, --redeliver and a fresh database give the same bytes', async (generation) =>
    withHarness({ generation, seed: 7 }, async (h) => {
      const { sim, rx, secret } = h;
      const toMs = Date.now() - 60_000;
      const fromMs = toMs - 2 * HOUR;
      const gen = sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 150, errorRate: 0.1, warningRate: 0.1 });
      expect(gen.traces).toBe(150);
      expect(gen.errorTraces).toBeGreaterThan(3);
      const expected = expectedEvents(sim, fromMs, toMs);
      const { traces, observations, scores } = simRows(sim);
      // The expected set follows from the data: one per trace, GENERATION and score, one per raised level.
      expect([...expected.values()].filter((e) => e.type === 'trace.created').length).toBe(traces.length);
      expect([...expected.values()].filter((e) => e.type === 'generation.created').length).toBe(observations.filter((o) => o.type === 'GENERATION').length);
      expect([...expected.values()].filter((e) => e.type === 'score.created').length).toBe(scores.length);
      const errorTraces = new Set(observations.filter((o) => o.level === 'ERROR').map((o) => o.traceId));
      expect(errorTraces.size).toBe(gen.errorTraces);
      expect([...expected.keys()].filter((k) => k.startsWith('trace.updated|ERROR|')).length).toBe(errorTraces.size);

      const range = ['--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()];
      const env = h.env();

      // 1. First backfill: exactly one request per expected event, nothing else.
      const first = await h.run(['backfill', ...range], env, 30_000);
      expect(first.exit?.code, first.describe()).toBe(0);
      const run1 = rx.requests.slice();
      const got1 = byKey(run1);
      const diff = keyDiff(expected.keys(), got1.keys());
      expect(diff, 'missing / unexpected event keys').toEqual({ missing: [], unexpected: [] });
      const dupes = [...got1].filter(([, rs]) => rs.length !== 1).map(([k, rs]) => `${k}×${rs.length}`);
      expect(dupes, 'events delivered more than once').toEqual([]);
      expect(run1.length).toBe(expected.size);
      expect(run1.every((r) => r.status === 200)).toBe(true);

      // Headers and bodies as the contract has them.
      const byId1 = new Map<string, ReceivedRequest>();
      for (const r of run1) {
        const ev = parseEvent(r);
        expect(ev.id).toMatch(/^evt_/);
        expect(r.headers['webhook-id']).toBe(ev.id);
        expect(r.headers['content-type']).toBe('application/json');
        expect(String(r.headers['user-agent'])).toMatch(/^langfuse-bridge\//);
        expect(signatureProblem(r, secret)).toBeNull();
        expect(ev.data.projectId).toBe('demo-project');
        // timestamp comes from Langfuse's data
        expect(Date.parse(ev.timestamp), `timestamp of ${eventKey(ev)}`).toBe(expected.get(eventKey(ev))!.tsMs);
        byId1.set(ev.id, r);
      }
      expect(byId1.size).toBe(run1.length);

      // ERROR updates carry the level and the raising observation's status message.
      for (const r of run1) {
        const ev = parseEvent(r);
        if (ev.event !== 'trace.updated' || ev.data.level !== 'ERROR') continue;
        const raiser = observations.find((o) => o.traceId === ev.data.traceId && o.level === 'ERROR')!;
        expect(ev.data.statusMessage).toBe(raiser.statusMessage);
      }
      // Score values are typed as v3 types them, in every generation.
      for (const r of run1) {
        const ev = parseEvent(r);
        if (ev.event !== 'score.created') continue;
        const s = scores.find((x) => x.id === ev.data.scoreId)!;
        expect(ev.data.dataType).toBe(s.dataType);
        if (s.dataType === 'NUMERIC') {
          expect(ev.data.value).toBe(s.value);
          expect(ev.data.stringValue).toBeNull();
        } else if (s.dataType === 'BOOLEAN') expect(ev.data.value).toBe(s.value);
        else {
          expect(ev.data.value).toBe(s.value);
          expect(ev.data.stringValue).toBe(s.value);
        }
      }

      // 2. The same backfill again: nothing new.
      const second = await h.run(['backfill', ...range], env, 30_000);
      expect(second.exit?.code, second.describe()).toBe(0);
      expect(rx.requests.length - run1.length, 'requests sent by an identical second backfill').toBe(0);

      // 3. --redeliver: the same ids, byte-identical bodies, a fresh webhook-timestamp.
      const lastTs = Math.max(...run1.map((r) => Number(r.headers['webhook-timestamp'])));
      await waitFor(() => Math.floor(Date.now() / 1000) > lastTs, 2_000, 'the next second');
      const before3 = rx.requests.length;
      const third = await h.run(['backfill', ...range, '--redeliver'], env, 30_000);
      expect(third.exit?.code, third.describe()).toBe(0);
      const run3 = rx.requests.slice(before3);
      expect(run3.length).toBe(run1.length);
      const ids3 = new Set(run3.map((r) => parseEvent(r).id));
      expect(ids3).toEqual(new Set(byId1.keys()));
      for (const r of run3) {
        const id = parseEvent(r).id;
        const orig = byId1.get(id)!;
        expect(r.body, `redelivered body of ${id}`).toBe(orig.body);
        expect(Number(r.headers['webhook-timestamp'])).toBeGreaterThan(Number(orig.headers['webhook-timestamp']));
        expect(signatureProblem(r, secret)).toBeNull();
      }

      // 4. A fresh database over the same range: same ids, byte-identical bodies.
      const before4 = rx.requests.length;
      const fresh = await h.run(['backfill', ...range], { ...env, BRIDGE_DATABASE: h.db('fresh') }, 30_000);
      expect(fresh.exit?.code, fresh.describe()).toBe(0);
      const run4 = rx.requests.slice(before4);
      expect(run4.length).toBe(run1.length);
      const mismatched: string[] = [];
      for (const r of run4) {
        const ev = parseEvent(r);
        const orig = byId1.get(ev.id);
        if (!orig) mismatched.push(`new id ${ev.id} (${eventKey(ev)})`);
        else if (orig.body !== r.body) mismatched.push(`${eventKey(ev)}:\n  first ${orig.body}\n  fresh ${r.body}`);
      }
      expect(mismatched.slice(0, 5), 'bodies that differ from a fresh database').toEqual([]);
    }),
  );
});
