/**
 * A backfill reads its range in time slices (the first one hour long). A trace whose observations
 * straddle a slice boundary must still yield its events, and a fresh database must produce the same
 * bodies whatever the alignment of the range.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, killLiveChildren } from '../helpers/cli.js';
import type { CliProcess } from '../helpers/cli.js';
import { harness, type Harness } from '../helpers/harness.js';
import type { ReceivedRequest } from '../helpers/receiver.js';
import { byKey, parseEvent } from '../helpers/sim.js';

const HOUR = 3_600_000;
const iso = (ms: number): string => new Date(ms).toISOString();

type Generation = 'v4' | 'v3' | 'v2';
interface SplitRun {
  h: Harness;
  traceId: string;
  genId: string;
  /** `backfill --from F` (the range splits the trace), on database "split" */
  run: CliProcess;
  accepted: ReceivedRequest[];
}
const splitRuns = new Map<Generation, Promise<SplitRun>>();

/** One world per generation, and its split backfill run once for both tests. */
function splitRun(generation: Generation): Promise<SplitRun> {
  let p = splitRuns.get(generation);
  if (!p) {
    p = (async () => {
      const h = await harness({ generation, seed: 51 });
      const { traceId, genId } = addStraddlingTrace(h);
      const run = await h.run(['backfill', '--from', iso(F), '--to', iso(F + 2 * HOUR)], h.env({}, h.db('split')), 30_000);
      return { h, traceId, genId, run, accepted: h.rx.accepted.slice() };
    })();
    splitRuns.set(generation, p);
  }
  return p;
}

beforeAll(() => assertBuilt());
afterAll(async () => {
  for (const p of splitRuns.values()) await (await p.catch(() => null))?.h.close();
  await killLiveChildren();
});

// A whole hour, three hours ago: the first slice of `--from F` ends at F + 1 h.
const F = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
const BOUNDARY = F + HOUR;

/** Root span 50 ms before the boundary, the ERROR generation 50 ms after it. */
function addStraddlingTrace(h: Harness): { traceId: string; genId: string } {
  const t = h.sim.addTrace({ name: 'straddle', timestamp: iso(BOUNDARY - 50), userId: 'u-1' });
  const root = h.sim.addObservation({ traceId: t.id, type: 'SPAN', name: 'root', startTime: iso(BOUNDARY - 50), endTime: iso(BOUNDARY + 900) });
  const gen = h.sim.addObservation({
    traceId: t.id,
    type: 'GENERATION',
    name: 'llm',
    startTime: iso(BOUNDARY + 50),
    endTime: iso(BOUNDARY + 800),
    parentObservationId: root.id,
    level: 'ERROR',
    statusMessage: 'upstream 500',
    promptTokens: 12,
    completionTokens: 0,
  });
  return { traceId: t.id, genId: gen.id };
}

describe.concurrent('a trace across a backfill slice boundary', () => {
  // Legacy servers (v3, v2): the second slice sees the ERROR generation but not the trace (listed by
  // its own timestamp in the first slice); with `fresh` detection the trace counts as never created
  // there, so no trace.updated is emitted (src/events/index.ts, detectObservations).
  for (const generation of ['v4', 'v3', 'v2'] as const) {
    it(`${generation}: still yields exactly one trace.updated with level ERROR`, async () => {
      const { traceId, genId, run, accepted } = await splitRun(generation);
      expect(run.exit?.code, run.describe()).toBe(0);
      const got = byKey(accepted);
      expect(got.get(`trace.created|${traceId}`)?.length).toBe(1);
      expect(got.get(`generation.created|${genId}`)?.length).toBe(1);
      const updated = got.get(`trace.updated|ERROR|${traceId}`) ?? [];
      expect(updated.length, `trace.updated ERROR; received: ${[...got.keys()].join(', ')}`).toBe(1);
      const ev = parseEvent(updated[0]!);
      expect(ev.data.statusMessage).toBe('upstream 500');
      expect(ev.timestamp).toBe(iso(BOUNDARY + 50));
    });
  }

  // Every generation: the trace.created body depends on which observations shared its slice —
  // "level": "DEFAULT" when the range splits the trace, "ERROR" when it does not (same event id,
  // different bytes).
  for (const generation of ['v4', 'v3', 'v2'] as const) {
    it(`${generation}: a fresh database gives byte-identical bodies whatever the start of the range`, async () => {
      const { h, run, accepted } = await splitRun(generation);
      expect(run.exit?.code, run.describe()).toBe(0);
      const split = new Map(accepted.map((r) => [parseEvent(r).id, r.body]));
      const before = h.rx.requests.length;
      const p = await h.run(['backfill', '--from', iso(F - HOUR / 2), '--to', iso(F + 2 * HOUR)], h.env({}, h.db('whole')), 30_000);
      expect(p.exit?.code, p.describe()).toBe(0);
      const whole = new Map(h.rx.requests.slice(before).map((r) => [parseEvent(r).id, r.body]));
      const id = [...whole].find(([, b]) => (JSON.parse(b) as { event: string }).event === 'trace.created')![0];
      expect(split.get(id), 'trace.created body').toBe(whole.get(id));
      for (const [eid, body] of whole) if (split.has(eid)) expect(split.get(eid), eid).toBe(body);
    });
  }
});
