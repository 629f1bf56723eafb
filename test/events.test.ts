import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Stream } from '../src/config/index.js';
import { matchesEventPatterns } from '../src/events/patterns.js';
import { detectObservations, detectScores, eventId, type AnyBridgeEvent, type ObservationRecord, type SeenAccess, type TraceRecord } from '../src/events/index.js';
import { mapItems, toObservation, toScore, toTrace } from '../src/sources/map.js';
import type { SeenRow } from '../src/events/index.js';

const ALL: ReadonlySet<Stream> = new Set(['traces', 'generations', 'scores', 'prompts']);

function memorySeen(): SeenAccess & { rows: Map<string, SeenRow> } {
  const rows = new Map<string, SeenRow>();
  return {
    rows,
    get: (kind, id) => rows.get(`${kind}/${id}`),
    put: (row) => void rows.set(`${row.kind}/${row.id}`, { ...row }),
  };
}

function obs(p: Partial<ObservationRecord> & { id: string; traceId: string; startTime: string }): ObservationRecord {
  return {
    type: 'SPAN',
    name: null,
    level: 'DEFAULT',
    statusMessage: null,
    endTime: null,
    model: null,
    promptTokens: null,
    completionTokens: null,
    totalTokens: null,
    usageDetails: null,
    costDetails: null,
    totalCost: null,
    updatedAt: null,
    environment: 'production',
    userId: null,
    sessionId: null,
    traceName: 'chat',
    tags: ['a'],
    isRoot: false,
    ...p,
  };
}

const opts = (fresh = false) => ({ projectId: 'p1', streams: ALL, includeIo: false, fresh });
const types = (evs: AnyBridgeEvent[]) => evs.map((e) => `${e.event}${e.event === 'trace.updated' ? `:${e.data.level}` : ''}`);

describe('trace level changes (v4: traces known through observations)', () => {
  it('emits created, then one trace.updated per new level above DEFAULT, never twice', () => {
    const seen = memorySeen();
    const a = detectObservations({ observations: [obs({ id: 'o1', traceId: 't1', startTime: '2026-11-27T01:00:00.000Z', isRoot: true })] }, seen, opts());
    expect(types(a)).toEqual(['trace.created']);
    expect(a[0]!.timestamp).toBe('2026-11-27T01:00:00.000Z');

    const warn = obs({ id: 'o2', traceId: 't1', startTime: '2026-11-27T01:00:01.000Z', level: 'WARNING', statusMessage: 'slow' });
    const b = detectObservations({ observations: [warn] }, seen, opts());
    expect(types(b)).toEqual(['trace.updated:WARNING']);
    expect(b[0]!.timestamp).toBe(warn.startTime);
    expect(b[0]!.data).toMatchObject({ traceId: 't1', level: 'WARNING', statusMessage: 'slow', name: 'chat' });

    // The same WARNING again, and a DEFAULT: nothing.
    expect(detectObservations({ observations: [warn, obs({ id: 'o3', traceId: 't1', startTime: '2026-11-27T01:00:02.000Z' })] }, seen, opts())).toEqual([]);

    const err = obs({ id: 'o4', traceId: 't1', type: 'GENERATION', startTime: '2026-11-27T01:00:03.000Z', level: 'ERROR', statusMessage: 'boom' });
    const c = detectObservations({ observations: [err] }, seen, opts());
    expect(types(c)).toEqual(['trace.updated:ERROR', 'generation.created']);
    expect(c[0]!.data).toMatchObject({ level: 'ERROR', statusMessage: 'boom' });
    // A second ERROR observation does not repeat the level.
    const d = detectObservations({ observations: [obs({ id: 'o5', traceId: 't1', startTime: '2026-11-27T01:00:04.000Z', level: 'ERROR' })] }, seen, opts());
    expect(types(d)).toEqual([]);
  });

  it('a trace first seen already at ERROR gets created then updated, and the earliest observation sets its time', () => {
    const seen = memorySeen();
    const evs = detectObservations(
      {
        observations: [
          obs({ id: 'late', traceId: 't2', startTime: '2026-11-27T01:00:05.000Z', level: 'ERROR', statusMessage: 'x' }),
          obs({ id: 'early', traceId: 't2', startTime: '2026-11-27T01:00:00.000Z', isRoot: true, traceName: 'root-name' }),
        ],
      },
      seen,
      opts(),
    );
    expect(types(evs)).toEqual(['trace.created', 'trace.updated:ERROR']);
    expect(evs[0]!.timestamp).toBe('2026-11-27T01:00:00.000Z');
    expect(evs[0]!.data).toMatchObject({ name: 'root-name', level: 'ERROR', statusMessage: 'x', environment: 'production', tags: ['a'] });
    expect(evs[1]!.timestamp).toBe('2026-11-27T01:00:05.000Z');
  });

  it('ids depend on project, type, entity and version only, and are stable', () => {
    const run = () => detectObservations({ observations: [obs({ id: 'o', traceId: 't', startTime: '2026-11-27T01:00:00.000Z', level: 'ERROR' })] }, memorySeen(), opts());
    const a = run();
    const b = run();
    expect(a.map((e) => JSON.stringify(e))).toEqual(b.map((e) => JSON.stringify(e)));
    expect(a[0]!.id).toBe(eventId('p1', 'trace.created', 't', ''));
    expect(a[1]!.id).toBe(eventId('p1', 'trace.updated', 't', 'ERROR'));
    expect(a[0]!.id).toMatch(/^evt_[0-9a-f]{32}$/);
    expect(eventId('p2', 'trace.created', 't', '')).not.toBe(a[0]!.id);
  });

  it('fresh (backfill) reports everything again but keeps what was learnt', () => {
    const seen = memorySeen();
    const batch = { observations: [obs({ id: 'o', traceId: 't', type: 'GENERATION', startTime: '2026-11-27T01:00:00.000Z', level: 'WARNING' })] };
    const live = detectObservations(batch, seen, opts());
    const again = detectObservations(batch, seen, opts(true));
    expect(again.map((e) => e.id)).toEqual(live.map((e) => e.id));
    expect(detectObservations(batch, seen, opts())).toEqual([]);
  });

  it('legacy: a trace is created from the trace list; observations seen first only raise its level', () => {
    const seen = memorySeen();
    const e = obs({ id: 'g', traceId: 'lt', type: 'GENERATION', startTime: '2026-11-27T01:00:02.000Z', level: 'ERROR', statusMessage: 'bad' });
    // Observation arrives before its trace is listed: no trace event yet.
    expect(types(detectObservations({ observations: [e], traces: [] }, seen, opts()))).toEqual(['generation.created']);
    const trace: TraceRecord = { id: 'lt', timestamp: '2026-11-27T01:00:00.000Z', name: 'legacy', userId: 'u', sessionId: null, environment: null, tags: [] };
    const evs = detectObservations({ observations: [], traces: [trace] }, seen, opts());
    expect(types(evs)).toEqual(['trace.created', 'trace.updated:ERROR']);
    expect(evs[1]!.data).toMatchObject({ statusMessage: 'bad', name: 'legacy' });
    expect(evs[1]!.timestamp).toBe(e.startTime);
  });

  it('legacy generation.updated when updatedAt moves; v4 observations (no updatedAt) never update', () => {
    const seen = memorySeen();
    const g = obs({ id: 'g', traceId: 't', type: 'GENERATION', startTime: '2026-11-27T01:00:00.000Z', updatedAt: '2026-11-27T01:00:01.000Z' });
    detectObservations({ observations: [g], traces: [] }, seen, opts());
    const u = detectObservations({ observations: [{ ...g, updatedAt: '2026-11-27T01:05:00.000Z', endTime: '2026-11-27T01:04:00.000Z' }], traces: [] }, seen, opts());
    expect(types(u)).toEqual(['generation.updated']);
    expect(u[0]!.timestamp).toBe('2026-11-27T01:05:00.000Z');
    expect(u[0]!.id).toBe(eventId('p1', 'generation.updated', 'g', '2026-11-27T01:05:00.000Z'));
    const v4 = obs({ id: 'g4', traceId: 't4', type: 'GENERATION', startTime: '2026-11-27T01:00:00.000Z' });
    detectObservations({ observations: [v4] }, seen, opts());
    expect(detectObservations({ observations: [v4] }, seen, opts())).toEqual([]);
  });

  it('respects the configured streams', () => {
    const only = (s: Stream[]) => ({ ...opts(), streams: new Set(s) });
    const o = obs({ id: 'g', traceId: 't', type: 'GENERATION', startTime: '2026-11-27T01:00:00.000Z' });
    expect(types(detectObservations({ observations: [o] }, memorySeen(), only(['generations'])))).toEqual(['generation.created']);
    expect(types(detectObservations({ observations: [o] }, memorySeen(), only(['traces'])))).toEqual(['trace.created']);
  });
});

describe('scores', () => {
  it('created once, updated when value/comment/updatedAt change, typed like v3', () => {
    const seen = memorySeen();
    const s = toScore({ id: 's1', name: 'acc', value: 0.25, dataType: 'NUMERIC', timestamp: '2026-11-27T01:00:00Z', updatedAt: '2026-11-27T01:00:00Z', traceId: 't', source: 'API' });
    expect(types(detectScores([s], seen, opts()))).toEqual(['score.created']);
    expect(detectScores([s], seen, opts())).toEqual([]);
    const resent = toScore({ id: 's1', name: 'acc', value: 0.9, dataType: 'NUMERIC', timestamp: '2026-11-27T01:00:00Z', updatedAt: '2026-11-27T01:10:00Z', traceId: 't', source: 'API' });
    const u = detectScores([resent], seen, opts());
    expect(types(u)).toEqual(['score.updated']);
    expect(u[0]!.timestamp).toBe('2026-11-27T01:10:00.000Z');
    expect(u[0]!.data).toMatchObject({ value: 0.9, stringValue: null, dataType: 'NUMERIC', scoreId: 's1', traceId: 't' });
  });
});

describe('real answers of a Langfuse v2 server', () => {
  const load = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/v2/${name}.json`, import.meta.url), 'utf8')) as { body: { data: unknown[] } };
  const noSkip = (why: string) => {
    throw new Error(`unexpected skip: ${why}`);
  };

  it('maps v1 observations leniently (no environment, usage from promptTokens)', () => {
    const rows = mapItems(load('observations_generation_from_page1').body.data, (r) => toObservation(r, false), noSkip);
    expect(rows).toHaveLength(10);
    const g = rows[0]!;
    expect(g).toMatchObject({ id: 'lfchk-gen-26', type: 'GENERATION', model: 'claude-3-5-sonnet-20241022', promptTokens: 1062, completionTokens: 306, totalTokens: 1368, totalCost: 0.007776, environment: null, usageDetails: null });
  });

  it('maps v1 scores: BOOLEAN 1/0 → true/false, CATEGORICAL label from stringValue', () => {
    const rows = mapItems(load('scores_v1_from_page3').body.data, toScore, noSkip);
    const bool = rows.find((r) => r.dataType === 'BOOLEAN')!;
    expect(typeof bool.value).toBe('boolean');
    expect(bool.stringValue).toMatch(/^(True|False)$/);
    const cat = rows.find((r) => r.dataType === 'CATEGORICAL')!;
    expect(typeof cat.value).toBe('string');
    expect(cat.value).toBe(cat.stringValue);
    const num = rows.find((r) => r.dataType === 'NUMERIC')!;
    expect(typeof num.value).toBe('number');
    expect(num.stringValue).toBeNull();
  });

  it('turns a page of traces and all-type observations into one ERROR trace.updated per error trace', () => {
    const traces = mapItems(load('traces_from_asc_page1').body.data, toTrace, noSkip);
    const observations = mapItems(load('observations_from_all_types_page1').body.data, (r) => toObservation(r, false), noSkip);
    const evs = detectObservations({ observations, traces }, memorySeen(), opts());
    const errorTraces = new Set(observations.filter((o) => o.level === 'ERROR').map((o) => o.traceId));
    const listedErrorTraces = [...errorTraces].filter((id) => traces.some((t) => t.id === id));
    const errorUpdates = evs.filter((e) => e.event === 'trace.updated' && e.data.level === 'ERROR');
    expect(errorUpdates.map((e) => (e.data as { traceId: string }).traceId).sort()).toEqual(listedErrorTraces.sort());
    expect(evs.filter((e) => e.event === 'trace.created')).toHaveLength(traces.length);
  });

  it('skips a malformed item and keeps the rest', () => {
    const data = [...load('scores_v1_from_page1').body.data];
    data.splice(2, 0, { id: 42, name: null });
    const skipped: string[] = [];
    const rows = mapItems(data, toScore, (why) => skipped.push(why));
    expect(rows).toHaveLength(10);
    expect(skipped).toHaveLength(1);
  });
});

describe('timestamps from Langfuse', () => {
  const obs = (startTime: string): ObservationRecord => toObservation({ id: 'o', traceId: 't', type: 'SPAN', startTime }, false);

  it('keeps canonical ISO times as they are and normalises every other form', () => {
    expect(obs('2026-11-27T10:00:00.123Z').startTime).toBe('2026-11-27T10:00:00.123Z');
    expect(obs('2026-11-27T10:00:00Z').startTime).toBe('2026-11-27T10:00:00.000Z');
    expect(obs('2026-11-27T11:00:00.123+01:00').startTime).toBe('2026-11-27T10:00:00.123Z');
  });

  it('rolls a day the month does not have over as Date does, even in canonical form', () => {
    expect(obs('2026-02-30T00:00:00.000Z').startTime).toBe(new Date(Date.parse('2026-02-30T00:00:00.000Z')).toISOString());
    expect(obs('2026-04-31T00:00:00.000Z').startTime).toBe(new Date(Date.parse('2026-04-31T00:00:00.000Z')).toISOString());
    expect(obs('2026-01-31T00:00:00.000Z').startTime).toBe('2026-01-31T00:00:00.000Z');
  });
});

describe('event-type patterns', () => {
  it('take globs', () => {
    expect(matchesEventPatterns(['trace.*'], 'trace.updated')).toBe(true);
    expect(matchesEventPatterns(['trace.*'], 'score.created')).toBe(false);
    expect(matchesEventPatterns(['*'], 'score.created')).toBe(true);
    expect(matchesEventPatterns(['score.created'], 'score.updated')).toBe(false);
  });
});
