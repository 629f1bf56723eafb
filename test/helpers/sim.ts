/**
 * The simulated Langfuse for e2e tests, and the events the bridge must deliver for its data,
 * computed from the simulator's own rows (independently of the bridge's code).
 */
import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { LangfuseSimulator, type SimObservation, type SimScore, type SimTrace, type SimulatorOptions } from '../../demo/simulator.js';
import type { SimStore } from '../../demo/sim-data.js';
import type { ReceivedRequest } from './receiver.js';

export { LangfuseSimulator };

export async function startSim(opts: SimulatorOptions = {}): Promise<LangfuseSimulator> {
  const sim = new LangfuseSimulator(opts);
  await sim.start();
  return sim;
}

/** The simulator's rows (the store is private; tests read it to compute what must be delivered). */
export function simRows(sim: LangfuseSimulator): { traces: SimTrace[]; observations: SimObservation[]; scores: SimScore[]; store: SimStore } {
  const store = (sim as unknown as { store: SimStore }).store;
  return { traces: store.traces.rows, observations: store.observations.rows, scores: store.scores.rows, store };
}


export interface ExpectedEvent {
  key: string;
  type: string;
  entityId: string;
  /** the event's timestamp per the contract, as epoch ms */
  tsMs: number;
}

/**
 * What a complete pass over [fromMs, toMs) must deliver (the default streams traces, generations,
 * scores): one trace.created per trace, one generation.created per GENERATION observation, one
 * score.created per score, and one trace.updated per level above DEFAULT the trace reaches
 * (the simulator's traces reach WARNING or ERROR, never both). Only rows visible now count.
 */
export function expectedEvents(sim: LangfuseSimulator, fromMs: number, toMs: number, opts: { excludeTraces?: Set<string> } = {}): Map<string, ExpectedEvent> {
  const { store } = simRows(sim);
  const now = Date.now();
  const out = new Map<string, ExpectedEvent>();
  const add = (e: Omit<ExpectedEvent, 'key'> & { level?: string }): void => {
    const key = e.level ? `${e.type}|${e.level}|${e.entityId}` : `${e.type}|${e.entityId}`;
    out.set(key, { key, type: e.type, entityId: e.entityId, tsMs: e.tsMs });
  };
  const inWindow = (ms: number): boolean => ms >= fromMs && ms < toMs;
  const obsByTrace = new Map<string, SimObservation[]>();
  store.observations.rows.forEach((o, i) => {
    if (!inWindow(store.observations.ts[i]!) || store.observations.vis[i]! > now) return;
    const list = obsByTrace.get(o.traceId) ?? [];
    list.push(o);
    obsByTrace.set(o.traceId, list);
    if (o.type === 'GENERATION') add({ type: 'generation.created', entityId: o.id, tsMs: Date.parse(o.startTime) });
  });
  store.traces.rows.forEach((t, i) => {
    if (!inWindow(store.traces.ts[i]!) || store.traces.vis[i]! > now) return;
    if (opts.excludeTraces?.has(t.id)) return;
    add({ type: 'trace.created', entityId: t.id, tsMs: Date.parse(t.timestamp) });
    const obs = (obsByTrace.get(t.id) ?? []).slice().sort((a, b) => Date.parse(a.startTime) - Date.parse(b.startTime) || (a.id < b.id ? -1 : 1));
    for (const level of ['WARNING', 'ERROR']) {
      const raiser = obs.find((o) => o.level === level);
      if (raiser) add({ type: 'trace.updated', level, entityId: t.id, tsMs: Date.parse(raiser.startTime) });
    }
  });
  store.scores.rows.forEach((s, i) => {
    if (!inWindow(store.scores.ts[i]!) || store.scores.vis[i]! > now) return;
    add({ type: 'score.created', entityId: s.id, tsMs: Date.parse(s.timestamp) });
  });
  return out;
}

export interface ParsedEvent {
  id: string;
  event: string;
  timestamp: string;
  data: Record<string, unknown>;
}

/** The key of a received event, comparable with expectedEvents(). */
export function eventKey(e: ParsedEvent): string {
  const d = e.data;
  switch (e.event) {
    case 'trace.created':
      return `trace.created|${String(d.traceId)}`;
    case 'trace.updated':
      return `trace.updated|${String(d.level)}|${String(d.traceId)}`;
    case 'generation.created':
    case 'generation.updated':
      return `${e.event}|${String(d.observationId)}`;
    case 'score.created':
    case 'score.updated':
      return `${e.event}|${String(d.scoreId)}`;
    default:
      return `${e.event}|${e.id}`;
  }
}

export function parseEvent(r: ReceivedRequest): ParsedEvent {
  return JSON.parse(r.body) as ParsedEvent;
}

/** Verifies both signature headers of the standard scheme; returns a problem or null. */
export function signatureProblem(r: ReceivedRequest, secret: string): string | null {
  const id = String(r.headers['webhook-id'] ?? '');
  const ts = String(r.headers['webhook-timestamp'] ?? '');
  try {
    new Webhook(secret).verify(r.body, { 'webhook-id': id, 'webhook-timestamp': ts, 'webhook-signature': String(r.headers['webhook-signature'] ?? '') });
  } catch (err) {
    return `standard-webhooks signature of ${id} does not verify: ${(err as Error).message}`;
  }
  const lf = String(r.headers['x-langfuse-signature'] ?? '');
  const want = `t=${ts},v1=${createHmac('sha256', secret).update(`${ts}.${r.body}`).digest('hex')}`;
  if (lf !== want) return `x-langfuse-signature of ${id} is ${lf}, want ${want}`;
  return null;
}

/** Group received requests by event key. */
export function byKey(reqs: ReceivedRequest[]): Map<string, ReceivedRequest[]> {
  const m = new Map<string, ReceivedRequest[]>();
  for (const r of reqs) {
    const k = eventKey(parseEvent(r));
    const list = m.get(k) ?? [];
    list.push(r);
    m.set(k, list);
  }
  return m;
}

/** Human-readable diff of key sets for assertion messages. */
export function keyDiff(expected: Iterable<string>, got: Iterable<string>, limit = 10): { missing: string[]; unexpected: string[] } {
  const e = new Set(expected);
  const g = new Set(got);
  return {
    missing: [...e].filter((k) => !g.has(k)).slice(0, limit),
    unexpected: [...g].filter((k) => !e.has(k)).slice(0, limit),
  };
}
