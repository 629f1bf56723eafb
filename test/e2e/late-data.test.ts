/**
 * Late data under `run` (BRIDGE_POLL_INTERVAL_SECONDS=1, BRIDGE_LOOKBACK_SECONDS=60): rows that appear
 * after the cursor moved past their timestamp are delivered while they are younger than the lookback;
 * rows that appear already older than the lookback are not (documented behaviour: the lookback is
 * how far back the bridge re-reads).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, killLiveChildren } from '../helpers/cli.js';
import { withHarness } from '../helpers/harness.js';
import { byKey, keyDiff, type LangfuseSimulator } from '../helpers/sim.js';
import { waitFor } from '../helpers/wait.js';

beforeAll(() => assertBuilt());
afterAll(async () => killLiveChildren());

const iso = (ms: number): string => new Date(ms).toISOString();

/** One trace with a root span, an ERROR generation and a score; returns the event keys it must yield. */
function addLateTrace(sim: LangfuseSimulator, tsMs: number, name: string, visibleAt?: Date): string[] {
  const v = visibleAt ? { visibleAt } : undefined;
  const t = sim.addTrace({ name, timestamp: iso(tsMs), userId: 'late-user' }, v);
  const root = sim.addObservation({ traceId: t.id, type: 'SPAN', name: 'root', startTime: iso(tsMs), endTime: iso(tsMs + 900) }, v);
  const gen = sim.addObservation(
    { traceId: t.id, type: 'GENERATION', name: 'llm', startTime: iso(tsMs + 10), endTime: iso(tsMs + 800), parentObservationId: root.id, level: 'ERROR', statusMessage: `boom ${name}`, promptTokens: 10, completionTokens: 5 },
    v,
  );
  const score = sim.addScore({ traceId: t.id, name: 'accuracy', value: 0.25, timestamp: iso(tsMs + 1_000) }, v);
  return [`trace.created|${t.id}`, `trace.updated|ERROR|${t.id}`, `generation.created|${gen.id}`, `score.created|${score.id}`];
}

describe.concurrent('late data', () => {
  it.each(['v4', 'v2'] as const)('against a %s server: rows that appear 20–40 s after their timestamp are delivered, rows that appear older than the lookback are not', (generation) =>
    withHarness({ generation, seed: 41 }, async (h) => {
      const { sim, rx } = h;
      const env = h.env({ BRIDGE_POLL_INTERVAL_SECONDS: '1', BRIDGE_LOOKBACK_SECONDS: '60' });
      const obsPath = generation === 'v4' ? '/api/public/v2/observations?' : '/api/public/observations?';
      const polls = (): number => sim.requests.filter((r) => r.path.startsWith(obsPath) && r.path.includes('fromStartTime')).length;
      const p = h.spawn(['run'], env);
      // Two polls done: the cursor is at "now".
      await waitFor(() => polls() >= 2, 15_000, 'two polls').catch((e: Error) => {
        throw new Error(`${e.message}\n${p.describe()}`);
    });

    const t = Date.now();
    const due = [
      ...addLateTrace(sim, t - 20_000, 'late-20s'),
      ...addLateTrace(sim, t - 30_000, 'late-30s'),
      ...addLateTrace(sim, t - 40_000, 'late-40s'),
      // ingested late: timestamp 15 s ago, visible only 6 s from now (21 s after its timestamp)
      ...addLateTrace(sim, t - 15_000, 'ingested-late', new Date(t + 6_000)),
    ];
    // Appears 90 s after its timestamp: beyond the 60 s lookback, so it is not read (expected).
    const tooOld = addLateTrace(sim, t - 90_000, 'too-old');

    await waitFor(() => keyDiff(due, byKey(rx.accepted).keys()).missing.length === 0, 25_000, 'the late rows delivered').catch((e: Error) => {
      throw new Error(`${e.message}; missing ${JSON.stringify(keyDiff(due, byKey(rx.accepted).keys()).missing)}\n${p.describe()}`);
    });
    // Two more full polls after that: the too-old rows had every chance.
    const n = polls();
    await waitFor(() => polls() >= n + 2, 10_000, 'two more polls');

    const got = byKey(rx.accepted);
    expect(keyDiff(due, got.keys()).unexpected.filter((k) => !tooOld.includes(k))).toEqual([]);
    expect(tooOld.filter((k) => got.has(k)), 'rows older than the lookback when they appeared').toEqual([]);
    expect([...got.values()].every((rs) => rs.length === 1), 'each late event delivered once').toBe(true);

    p.kill('SIGTERM');
    expect((await p.wait(12_000)).code, p.describe()).toBe(0);
    }),
  );
});
