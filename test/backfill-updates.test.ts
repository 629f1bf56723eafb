/**
 * A backfill delivers every change it finds that a sink has not received, updates included: a score
 * or generation changed while the daemon was down (outside the lookback) is read again by a later
 * backfill, which sends its `*.updated` event, with the id a live poll would have given it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ApiGeneration } from '../demo/simulator.js';
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

async function world(generation: ApiGeneration, env: Record<string, string> = {}) {
  const w = await backfillWorld(7, { generation, env, ledger: true });
  cleanups.push(() => w.close());
  return w;
}

const types = (store: Store): string[] => (sqlite(store).prepare('SELECT type FROM events ORDER BY seq').all() as Array<{ type: string }>).map((r) => r.type);
/** What a dispatcher would do: every open delivery succeeds. */
const deliverAll = (store: Store): void => void sqlite(store).prepare(`UPDATE outbox SET status = 'delivered', delivered_at = ? WHERE status = 'queued'`).run(Date.now());
const queuedFor = (store: Store, origin: string): string[] =>
  (sqlite(store).prepare('SELECT e.type FROM outbox o JOIN events e ON e.seq = o.event_seq WHERE o.origin = ? ORDER BY o.seq').all(origin) as Array<{ type: string }>).map((r) => r.type);

describe('a backfill and the changes it finds', () => {
  it('sends score.updated for a score whose value changed outside the lookback', async () => {
    const { sim, store, config, client } = await world('v4');
    const t0 = Date.now() - 3 * HOUR;
    const trace = sim.addTrace({ name: 't', timestamp: iso(t0) });
    sim.addObservation({ traceId: trace.id, type: 'SPAN', startTime: iso(t0) });
    const score = sim.addScore({ traceId: trace.id, name: 'quality', value: 0.2, timestamp: iso(t0 + 1000) });
    const sinks = [memorySink('mem')];
    const poller = new Poller(store, client, config, sinks, log);
    // The first pass delivers what is there.
    await poller.backfill(t0 - HOUR, Date.now(), { sinks, enqueue: { origin: 'backfill:a' } });
    expect(queuedFor(store, 'backfill:a')).toContain('score.created');
    deliverAll(store);
    // The value changes while nothing polls; a later backfill reads it again.
    sim.updateScore(score.id, { value: 0.9 });
    await new Poller(store, client, config, sinks, log).backfill(t0 - HOUR, Date.now(), { sinks, enqueue: { origin: 'backfill:b' } });
    expect(queuedFor(store, 'backfill:b')).toEqual(['score.updated']);
    const body = JSON.parse((sqlite(store).prepare(`SELECT body FROM events WHERE type = 'score.updated'`).get() as { body: string }).body) as { id: string; data: { value: number }; timestamp: string };
    expect(body.data.value).toBe(0.9);
    expect(body.timestamp).toBe(sim.getScore(score.id)!.updatedAt);
    deliverAll(store);
    // A third pass finds nothing new.
    await new Poller(store, client, config, sinks, log).backfill(t0 - HOUR, Date.now(), { sinks, enqueue: { origin: 'backfill:c' } });
    expect(queuedFor(store, 'backfill:c')).toEqual([]);
    expect(types(store).filter((t) => t === 'score.updated')).toHaveLength(1);
  });

  it('sends generation.updated for a legacy generation updated outside the lookback, with the id a live poll gives it', async () => {
    const { sim, store, config, client } = await world('v2');
    const t0 = Date.now() - 3 * HOUR;
    const trace = sim.addTrace({ name: 't', timestamp: iso(t0) });
    const gen = sim.addObservation({ traceId: trace.id, type: 'GENERATION', startTime: iso(t0), endTime: null });
    const sinks = [memorySink('mem')];
    await new Poller(store, client, config, sinks, log).backfill(t0 - HOUR, Date.now(), { sinks, enqueue: { origin: 'backfill:a' } });
    expect(queuedFor(store, 'backfill:a')).toEqual(['trace.created', 'generation.created']);
    deliverAll(store);
    sim.updateObservation(gen.id, { endTime: iso(t0 + 5_000) });
    const poller = new Poller(store, client, config, sinks, log);
    await poller.backfill(t0 - HOUR, Date.now(), { sinks, enqueue: { origin: 'backfill:b' } });
    expect(queuedFor(store, 'backfill:b')).toEqual(['generation.updated']);
    const id = (sqlite(store).prepare(`SELECT id FROM events WHERE type = 'generation.updated'`).get() as { id: string }).id;
    expect(id).toBe(eventId(poller.projectId!, 'generation.updated', gen.id, sim.getObservation(gen.id)!.updatedAt));
  });
});
