import { describe, expect, it } from 'vitest';
import type { ObservationRecord, TraceRecord } from '../src/events/records.js';
import { holdRecentTraces } from '../src/poll/index.js';

const obs = (id: string, traceId: string, startTime: string): ObservationRecord => ({
  id, traceId, type: 'SPAN', name: null, level: 'DEFAULT', statusMessage: null, startTime, endTime: null, model: null,
  promptTokens: null, completionTokens: null, totalTokens: null, usageDetails: null, costDetails: null, totalCost: null,
  updatedAt: null, environment: null, userId: null, sessionId: null, traceName: null, tags: null, isRoot: false,
});
const trace = (id: string, timestamp: string): TraceRecord => ({ id, timestamp, name: null, userId: null, sessionId: null, environment: null, tags: [] } as unknown as TraceRecord);

describe('backfill slices hold traces that start near their end', () => {
  const cut = '2026-11-27T10:45:00.000Z';

  it('holds every row of a trace whose first observation is at or after the cut, and nothing else', () => {
    const rows = [
      obs('a1', 'A', '2026-11-27T10:10:00.000Z'),
      obs('a2', 'A', '2026-11-27T10:50:00.000Z'), // a trace that started earlier is processed whole now
      obs('b1', 'B', '2026-11-27T10:45:00.000Z'),
      obs('b2', 'B', '2026-11-27T10:59:00.000Z'),
      obs('c1', 'C', '2026-11-27T10:44:59.999Z'),
    ];
    const { ready, held } = holdRecentTraces(rows, undefined, cut);
    expect(ready.observations.map((o) => o.id)).toEqual(['a1', 'a2', 'c1']);
    expect(held.observations.map((o) => o.id)).toEqual(['b1', 'b2']);
    expect(ready.traces).toBeUndefined();
  });

  it('on legacy servers a listed trace decides by its own timestamp and travels with its observations', () => {
    const rows = [obs('x1', 'X', '2026-11-27T10:50:00.000Z'), obs('y1', 'Y', '2026-11-27T10:50:00.000Z')];
    // X was listed with an earlier timestamp: processed now; Z has no observations yet but started late: held.
    const listed = [trace('X', '2026-11-27T10:30:00.000Z'), trace('Z', '2026-11-27T10:58:00.000Z')];
    const { ready, held } = holdRecentTraces(rows, listed, cut);
    expect(ready.observations.map((o) => o.id)).toEqual(['x1']);
    expect(ready.traces!.map((t) => t.id)).toEqual(['X']);
    expect(held.observations.map((o) => o.id)).toEqual(['y1']);
    expect(held.traces!.map((t) => t.id)).toEqual(['Z']);
  });
});
