/**
 * A legacy (v2) trace whose timestamp moved: the SDK's `trace.update()` moves it to the update time,
 * so the trace enters a poll's window apart from its older observations. Its observations are read
 * from the trace's own endpoint, after the head read, before its level is decided: it gets its
 * `trace.updated` at ERROR, with the id and timestamp the ordinary path gives.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { eventId } from '../src/events/index.js';
import { Poller } from '../src/poll/index.js';
import type { Store } from '../src/store/index.js';
import { HOUR, backfillWorld, iso, log } from './helpers/backfill.js';
import { memorySink } from './helpers/memory-sink.js';
import { sqlite } from './helpers/sqlite.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function world() {
  const w = await backfillWorld(9, { generation: 'v2', ledger: true });
  cleanups.push(() => w.close());
  return w;
}

interface Ev {
  id: string;
  event: string;
  timestamp: string;
  data: { traceId: string; level: string; statusMessage: string | null };
}
const eventsOf = (store: Store, traceId: string): Ev[] =>
  (sqlite(store).prepare(`SELECT body FROM events ORDER BY seq`).all() as Array<{ body: string }>).map((r) => JSON.parse(r.body) as Ev).filter((e) => e.data.traceId === traceId && e.event.startsWith('trace.'));

describe('a legacy trace whose timestamp moved past its observations', () => {
  it('is reported at the level of its older observations by a live poll, reading the trace after the head', async () => {
    const { sim, store, config, client } = await world();
    const t0 = Date.now() - 2 * HOUR; // far outside the lookback
    const moved = sim.addTrace({ name: 'moved', timestamp: iso(t0) });
    sim.addObservation({ traceId: moved.id, type: 'SPAN', name: 'root', startTime: iso(t0) });
    const err = sim.addObservation({ traceId: moved.id, type: 'GENERATION', name: 'llm', startTime: iso(t0 + 1_000), level: 'ERROR', statusMessage: 'upstream 500' });
    // trace.update() a minute ago: the trace now lies in the head window, its observations do not.
    sim.addTrace({ id: moved.id, timestamp: iso(Date.now() - 60_000) });
    // An ordinary trace, all of it in the window: no extra call for it.
    const plain = sim.addTrace({ name: 'plain', timestamp: iso(Date.now() - 30_000) });
    sim.addObservation({ traceId: plain.id, type: 'GENERATION', name: 'llm', startTime: iso(Date.now() - 30_000), level: 'WARNING' });

    const sinks = [memorySink('mem')];
    const poller = new Poller(store, client, config, sinks, log);
    await poller.pollOnce();
    const project = poller.projectId!;

    const evs = eventsOf(store, moved.id);
    expect(evs.map((e) => `${e.event} ${e.data.level}`)).toEqual(['trace.created ERROR', 'trace.updated ERROR']);
    expect(evs[1]!.id).toBe(eventId(project, 'trace.updated', moved.id, 'ERROR'));
    expect(evs[1]!.timestamp).toBe(err.startTime);
    expect(evs[1]!.data.statusMessage).toBe('upstream 500');
    expect(evs[0]!.id).toBe(eventId(project, 'trace.created', moved.id, ''));
    // The trace's own endpoint, read once, after the head's trace and observation lists; counted like any call.
    const paths = sim.requests.map((r) => r.path.split('?')[0]!);
    const byId = paths.flatMap((p, i) => (p.startsWith('/api/public/traces/') ? [i] : []));
    expect(byId.map((i) => paths[i])).toEqual([`/api/public/traces/${moved.id}`]);
    expect(paths.indexOf('/api/public/traces')).toBeLessThan(byId[0]!);
    expect(paths.indexOf('/api/public/observations')).toBeLessThan(byId[0]!);
    expect(client.stats.calls).toBe(sim.requests.filter((r) => !r.path.startsWith('/api/public/health')).length + 1);
    // No generation event for an observation outside the window; the plain trace as always.
    expect((sqlite(store).prepare(`SELECT COUNT(*) AS n FROM events WHERE type = 'generation.created' AND body LIKE ?`).get(`%${err.id}%`) as { n: number }).n).toBe(0);
    expect(eventsOf(store, plain.id).map((e) => `${e.event} ${e.data.level}`)).toEqual(['trace.created WARNING', 'trace.updated WARNING']);

    // The next poll sees the trace again (it is still in the window): nothing more, no further read.
    const before = sim.requests.length;
    await poller.pollOnce();
    expect(eventsOf(store, moved.id)).toHaveLength(2);
    expect(sim.requests.slice(before).some((r) => r.path.startsWith('/api/public/traces/'))).toBe(false);
  });

  it('is reported at its level by a backfill whose range holds the trace but not its observations', async () => {
    const { sim, store, config, client } = await world();
    const t0 = Date.now() - 6 * HOUR;
    const moved = sim.addTrace({ name: 'moved', timestamp: iso(t0) });
    sim.addObservation({ traceId: moved.id, type: 'GENERATION', name: 'llm', startTime: iso(t0), level: 'ERROR', statusMessage: 'boom' });
    sim.addTrace({ id: moved.id, timestamp: iso(t0 + 3 * HOUR) });
    const sinks = [memorySink('mem')];
    await new Poller(store, client, config, sinks, log).backfill(t0 + 2 * HOUR, t0 + 4 * HOUR, { sinks, enqueue: { origin: 'backfill:x' } });
    expect(eventsOf(store, moved.id).map((e) => `${e.event} ${e.data.level}`)).toEqual(['trace.created ERROR', 'trace.updated ERROR']);
  });
});
