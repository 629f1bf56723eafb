/**
 * A backfill interrupted right after a slice committed resumes where it must: a trace that started
 * near that slice's end was held back for the next slice, so the rerun reads it again and reports it
 * once, with the level its later observations raised (nothing lost, nothing twice).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Poller } from '../src/poll/index.js';
import { HOUR, backfillWorld, iso, log } from './helpers/backfill.js';
import { memorySink } from './helpers/memory-sink.js';
import { sqlite } from './helpers/sqlite.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('an interrupted backfill and the traces it held back', () => {
  it('reads a held trace again on the rerun and reports it once, at its final level', async () => {
    const F = Math.floor(Date.now() / HOUR) * HOUR - 4 * HOUR;
    const world = await backfillWorld(3);
    cleanups.push(world.close);
    const { sim, store, config, client } = world;
    // One trace well inside the first slice, one starting 5 minutes before its end whose ERROR
    // generation comes 2 minutes into the second slice.
    const early = sim.addTrace({ name: 'early', timestamp: iso(F + 10 * 60_000) });
    sim.addObservation({ traceId: early.id, type: 'SPAN', name: 'root', startTime: iso(F + 10 * 60_000), endTime: iso(F + 10 * 60_000 + 500) });
    const late = sim.addTrace({ name: 'late', timestamp: iso(F + HOUR - 5 * 60_000) });
    const root = sim.addObservation({ traceId: late.id, type: 'SPAN', name: 'root', startTime: iso(F + HOUR - 5 * 60_000), endTime: iso(F + HOUR + 3 * 60_000) });
    sim.addObservation({ traceId: late.id, type: 'GENERATION', name: 'llm', parentObservationId: root.id, startTime: iso(F + HOUR + 2 * 60_000), endTime: iso(F + HOUR + 2 * 60_000 + 800), level: 'ERROR', statusMessage: 'upstream 500' });

    const sinks = [memorySink('mem')];
    const opts = { sinks, enqueue: { origin: 'backfill:test' }, resumeKey: 'backfill:test' };
    const createdFor = (traceId: string): Array<{ level: string }> =>
      (sqlite(store).prepare(`SELECT body FROM events WHERE type = 'trace.created'`).all() as Array<{ body: string }>)
        .map((r) => JSON.parse(r.body) as { data: { traceId: string; level: string } })
        .filter((e) => e.data.traceId === traceId)
        .map((e) => ({ level: e.data.level }));

    // First pass: stopped as soon as the first observations slice has committed.
    const stop = new AbortController();
    await expect(
      new Poller(store, client, config, sinks, log).backfill(F, F + 3 * HOUR, {
        ...opts,
        signal: stop.signal,
        onProgress: (p) => {
          if (p.source === 'observations' && p.doneMs >= HOUR) stop.abort(new Error('interrupted'));
        },
      }),
    ).rejects.toThrow('interrupted');
    expect(createdFor(early.id)).toEqual([{ level: 'DEFAULT' }]);
    expect(createdFor(late.id)).toEqual([]); // held back, not yet reported
    // The rerun starts no later than the held trace's first observation.
    expect(store.meta.resumePoint('backfill:test', 'observations')).toBeLessThanOrEqual(F + HOUR - 5 * 60_000);

    // Second pass: the same command again.
    await new Poller(store, client, config, sinks, log).backfill(F, F + 3 * HOUR, opts);
    expect(createdFor(late.id)).toEqual([{ level: 'ERROR' }]);
    expect(createdFor(early.id)).toEqual([{ level: 'DEFAULT' }]);
  });
});
