/**
 * Backfill slices keep the rows held in memory near a target whatever the data's density: a slice far
 * denser than expected is dropped past twice the target and read again shorter, and the next slices are
 * sized from the rate seen. Nothing is lost or reported twice on the way.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Poller } from '../src/poll/index.js';
import { FIRST_SLICE_MS, nextSliceMs } from '../src/poll/slices.js';
import { HOUR, backfillWorld, iso, log } from './helpers/backfill.js';
import { memorySink } from './helpers/memory-sink.js';
import { sqlite } from './helpers/sqlite.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('the next slice length', () => {
  it('shrinks at once to what would have held the target, on the grid of halves', () => {
    // 40,000 rows in an hour, target 8,000: a fifth of an hour is needed, so an eighth (7.5 min).
    expect(nextSliceMs(HOUR, 40_000, HOUR, 8_000)).toBe(HOUR / 8);
    // Just over the target: one halving.
    expect(nextSliceMs(HOUR, 8_001, HOUR, 8_000)).toBe(HOUR / 2);
    // A short window (the first, cut by --from) counts by its rate, not its row count alone.
    expect(nextSliceMs(HOUR, 9_000, HOUR / 4, 8_000)).toBe(HOUR / 8);
  });

  it('doubles when a slice held under a quarter of the target, and stays within 1 s to 1 day', () => {
    expect(nextSliceMs(HOUR, 100, HOUR, 8_000)).toBe(2 * HOUR);
    expect(nextSliceMs(HOUR, 4_000, HOUR, 8_000)).toBe(HOUR);
    expect(nextSliceMs(24 * HOUR, 0, 24 * HOUR, 8_000)).toBe(24 * HOUR);
    expect(nextSliceMs(2_000, 1_000_000, 2_000, 8_000)).toBe(1_000);
  });
});

describe('a backfill over data far denser than its first slice', () => {
  it('reads the dense slice again shorter, sizes the next ones from its rate, and reports every event once', async () => {
    const F = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
    const world = await backfillWorld(9);
    cleanups.push(world.close);
    const { sim, store, config, client } = world;
    // 120 traces in the first hour (a root span and a generation each): 240 observations, with a
    // slice target of 20 rows.
    for (let i = 0; i < 120; i++) {
      const at = F + Math.floor((i * HOUR) / 120);
      const t = sim.addTrace({ name: `t${i}`, timestamp: iso(at) });
      const root = sim.addObservation({ traceId: t.id, type: 'SPAN', name: 'root', startTime: iso(at), endTime: iso(at + 500) });
      sim.addObservation({ traceId: t.id, type: 'GENERATION', name: 'llm', parentObservationId: root.id, startTime: iso(at + 100), endTime: iso(at + 400) });
    }
    const slices: number[] = [];
    const sinks = [memorySink('mem')];
    const r = await new Poller(store, client, config, sinks, log).backfill(F, F + 2 * HOUR, {
      sinks,
      enqueue: { origin: 'backfill:dense' },
      sliceTargetRows: 20,
      onProgress: (p) => {
        if (p.source === 'observations') slices.push(p.doneMs);
      },
    });
    // Every trace and generation once.
    const count = (type: string): number => (sqlite(store).prepare(`SELECT COUNT(*) AS n FROM events WHERE type = ?`).get(type) as { n: number }).n;
    expect(count('trace.created')).toBe(120);
    expect(count('generation.created')).toBe(120);
    expect(r.inserted).toBe(240);
    // The first hour was not committed whole: its first read stopped past 40 rows and slices got short.
    expect(slices[0]).toBeLessThan(FIRST_SLICE_MS);
    expect(slices.length).toBeGreaterThan(6);
    // The dropped read cost calls that committed nothing.
    const obsCalls = sim.requests.filter((q) => q.path.startsWith('/api/public/v2/observations'));
    expect(obsCalls.length).toBeGreaterThan(slices.length);
  });
});
