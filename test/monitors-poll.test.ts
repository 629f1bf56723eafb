/**
 * Monitors fed by the real Poller against the simulated Langfuse: what a window counts depends on
 * what the poller read and committed before the window was due.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { BridgeConfig } from '../src/config/index.js';
import { compileMonitors, evaluateMonitor, measureWindow, type MonitorSpec } from '../src/monitors/index.js';
import { Poller } from '../src/poll/index.js';
import { HOUR, backfillWorld, iso, log, type BackfillWorld } from './helpers/backfill.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function world(o: Parameters<typeof backfillWorld>[1] = {}): Promise<BackfillWorld> {
  const w = await backfillWorld(5, o);
  cleanups.push(() => w.close());
  return w;
}

function monitor(raw: Record<string, unknown>): MonitorSpec {
  return compileMonitors([{ name: 'm', sinks: ['stdout'], op: '>', alert: 1000, ...raw }], { sinks: ['stdout'], streams: ['traces', 'generations', 'scores'] })[0]!;
}

function withMonitors(config: BridgeConfig, monitors: MonitorSpec[]): BridgeConfig {
  return { ...config, monitors };
}

describe('monitors fed by the poller', () => {
  it('counts an item that became visible within the delay, even when the previous poll ran before it was visible', async () => {
    const { sim, store, client, config } = await world({ env: { BRIDGE_POLL_INTERVAL_SECONDS: '5' } });
    const m = monitor({ source: 'generations', metric: 'count', window: '1m', every: '10s', delay: '110s' });
    const poller = new Poller(store, client, withMonitors(config, [m]), [], log);
    await poller.pollOnce();
    const project = poller.projectId!;
    // As if the previous poll ran 25 s ago (its sweep done): an item 125 s old became visible since
    // (100 s late, within the 110 s delay).
    const now = Date.now();
    const c = store.getCursor(project, 'observations');
    store.putCursor({ ...c, cursorMs: now - 25_000, lastSweepDoneAt: now });
    const tr = sim.addTrace({ name: 'late', timestamp: iso(now - 125_000) });
    sim.addObservation({ traceId: tr.id, type: 'GENERATION', name: 'llm', startTime: iso(now - 125_000) });
    await poller.pollOnce();
    const e = evaluateMonitor(store, project, m, '')!;
    expect(e.windowEndMs).toBeGreaterThan(now - 125_000);
    expect(e.windowEndMs - m.windowMs).toBeLessThanOrEqual(now - 125_000);
    expect(e.value).toBe(1);
  });

  it('leaves a window starting before the first read unevaluated, until a backfill reads back that far', async () => {
    const { store, client, config } = await world();
    const m = monitor({ source: 'traces', metric: 'count', window: '1h', delay: '0s', op: '<', alert: 1 });
    const poller = new Poller(store, client, withMonitors(config, [m]), [], log);
    // A fresh database: the first poll reads the lookback (20 minutes), not the hour the window spans.
    await poller.pollOnce();
    const project = poller.projectId!;
    expect(evaluateMonitor(store, project, m, '')).toBeNull();
    expect(store.monitors.getState(project, 'm')).toBeNull();
    await poller.backfill(Date.now() - 2 * HOUR, Date.now(), { sinks: [], enqueue: {} });
    expect(evaluateMonitor(store, project, m, '')).toMatchObject({ value: 0, severity: 'alert' });
  });

  it.each(['v2', 'v3'] as const)('on a legacy server (%s), filters generations and observations by the name, environment and tags of their trace', async (generation) => {
    const { sim, store, client, config } = await world({ generation });
    const poller = new Poller(store, client, config, [], log);
    const t = Date.now() - 5 * 60_000;
    const rag = sim.addTrace({ name: 'rag-query', environment: 'production', tags: ['rag'], timestamp: iso(t) });
    sim.addObservation({ traceId: rag.id, type: 'GENERATION', name: 'llm', startTime: iso(t + 1000) });
    const other = sim.addTrace({ name: 'chat', environment: 'staging', timestamp: iso(t) });
    sim.addObservation({ traceId: other.id, type: 'GENERATION', name: 'llm', startTime: iso(t + 2000) });
    await poller.pollOnce();
    const project = poller.projectId!;
    const count = (where: Record<string, unknown>, source = 'generations'): number => measureWindow(store, project, monitor({ source, metric: 'count', window: '1h', where }), t + 30 * 60_000).aggregate.samples;
    expect(count({})).toBe(2);
    expect(count({ traceName: 'rag-*' })).toBe(1);
    expect(count({ tags: ['rag'] })).toBe(1);
    expect(count({ traceName: 'chat' }, 'observations')).toBe(1);
    // v2 knows no environments at all (neither traces nor observations carry one).
    if (generation === 'v3') {
      expect(count({ environment: 'production' })).toBe(1);
      expect(count({ traceName: 'chat', environment: 'staging' }, 'observations')).toBe(1);
    }
  });
});

