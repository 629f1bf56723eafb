/**
 * The facts monitors aggregate, taken from the records of a committed slice: one per observation,
 * per score, and per trace (its earliest start, latest end and highest level so far, merged with
 * what earlier slices knew by the store's upsert).
 */
import { levelRank, type ObservationRecord, type ScoreRecord, type TraceRecord } from '../events/records.js';
import { totalTokens } from '../rules/index.js';
import type { Fact } from '../store/monitors.js';

export interface FactBatch {
  observations?: readonly ObservationRecord[];
  traces?: readonly TraceRecord[];
  /** Observations read from a trace's own endpoint: they tell its level and times. */
  context?: readonly ObservationRecord[];
  scores?: readonly ScoreRecord[];
}

function ms(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : null;
}

function observationFact(o: ObservationRecord): Fact | null {
  const start = ms(o.startTime);
  if (start === null) return null;
  const end = ms(o.endTime);
  return {
    kind: 'observation',
    id: o.id,
    tsMs: start,
    endMs: end,
    type: o.type,
    name: o.traceName,
    environment: o.environment,
    tags: o.tags,
    model: o.model,
    dataType: null,
    level: levelRank(o.level),
    latency: end !== null && end >= start ? (end - start) / 1000 : null,
    cost: o.totalCost,
    tokens: totalTokens({ usage: { promptTokens: o.promptTokens, completionTokens: o.completionTokens, totalTokens: o.totalTokens }, usageDetails: o.usageDetails }),
    value: null,
  };
}

function scoreValue(s: ScoreRecord): number | null {
  if (typeof s.value === 'number') return Number.isFinite(s.value) ? s.value : null;
  if (typeof s.value === 'boolean') return s.value ? 1 : 0;
  return null;
}

/** A trace's own fields, as far as known. */
export interface TraceFields {
  name: string | null;
  environment: string | null;
  tags: string[] | null;
}

/**
 * Facts of this batch; items beyond the horizon (older than any window reads) are left out. On
 * legacy servers observations do not carry their trace's name, environment and tags: they are taken
 * from the batch's listed traces, else from `traceOf` (what earlier reads learnt of the trace).
 */
export function factsOf(batch: FactBatch, sinceMs = 0, traceOf: (traceId: string) => TraceFields | null = () => null): Fact[] {
  const listed = new Map<string, TraceFields>();
  for (const tr of batch.traces ?? []) listed.set(tr.id, { name: tr.name ?? null, environment: tr.environment ?? null, tags: tr.tags?.length ? tr.tags : null });
  const known = new Map<string, TraceFields | null>();
  const fieldsOf = (traceId: string): TraceFields | null => {
    if (!known.has(traceId)) known.set(traceId, listed.get(traceId) ?? traceOf(traceId));
    return known.get(traceId) ?? null;
  };
  const fill = (f: Fact, traceId: string): void => {
    if (f.name !== null && f.environment !== null && f.tags?.length) return;
    const t = fieldsOf(traceId);
    if (!t) return;
    f.name ??= t.name;
    f.environment ??= t.environment;
    if (!f.tags?.length && t.tags?.length) f.tags = t.tags;
  };
  const out: Fact[] = [];
  const traces = new Map<string, Fact>();
  const trace = (id: string, tsMs: number): Fact => {
    let t = traces.get(id);
    if (!t) {
      t = { kind: 'trace', id, tsMs, endMs: null, type: null, name: null, environment: null, tags: null, model: null, dataType: null, level: 1, latency: null, cost: null, tokens: null, value: null };
      traces.set(id, t);
    }
    return t;
  };
  for (const tr of batch.traces ?? []) {
    const ts = ms(tr.timestamp);
    if (ts === null) continue;
    const t = trace(tr.id, ts);
    t.tsMs = Math.min(t.tsMs, ts);
    t.name = tr.name ?? t.name;
    t.environment = tr.environment ?? t.environment;
    t.tags = tr.tags?.length ? tr.tags : t.tags;
  }
  const seeTrace = (o: ObservationRecord, f: Fact): void => {
    const t = trace(o.traceId, f.tsMs);
    t.tsMs = Math.min(t.tsMs, f.tsMs);
    const end = f.endMs ?? f.tsMs;
    t.endMs = t.endMs === null ? end : Math.max(t.endMs, end);
    t.level = Math.max(t.level, f.level);
    t.name ??= o.traceName;
    t.environment ??= o.environment;
    if (!t.tags?.length && o.tags?.length) t.tags = o.tags;
  };
  for (const o of batch.observations ?? []) {
    const f = observationFact(o);
    if (!f) continue;
    fill(f, o.traceId);
    seeTrace(o, f);
    if (f.tsMs >= sinceMs) out.push(f);
  }
  for (const o of batch.context ?? []) {
    const f = observationFact(o);
    if (f) seeTrace(o, f);
  }
  for (const t of traces.values()) {
    if (t.tsMs < sinceMs) continue;
    fill(t, t.id);
    t.latency = t.endMs !== null && t.endMs >= t.tsMs ? (t.endMs - t.tsMs) / 1000 : null;
    out.push(t);
  }
  for (const s of batch.scores ?? []) {
    const ts = ms(s.timestamp);
    if (ts === null || ts < sinceMs) continue;
    out.push({
      kind: 'score',
      id: s.id,
      tsMs: ts,
      endMs: null,
      type: null,
      name: s.name,
      environment: null,
      tags: null,
      model: null,
      dataType: s.dataType,
      level: 1,
      latency: null,
      cost: null,
      tokens: null,
      value: scoreValue(s),
    });
  }
  return out;
}

/** Every field of a fact, as one string (a template: several times cheaper than JSON for a sweep's thousands). */
function fingerprint(f: Fact): string {
  return `${f.tsMs}|${f.endMs}|${f.level}|${f.latency}|${f.cost}|${f.tokens}|${f.value}|${f.type}|${f.name}|${f.environment}|${f.model}|${f.dataType}|${f.tags ? f.tags.join('\u0001') : ''}`;
}

/**
 * The facts this process last wrote, by item, so that a late-data sweep re-reading items that did
 * not change writes none of them again (an upsert costs as much as a write even when nothing
 * changes). Only a cache: what is not in it is written, and it forgets the oldest past `max`.
 */
export class WrittenFacts {
  /** By kind, then item id: the fingerprint last written. */
  private readonly last = new Map<string, Map<string, string>>();
  private size = 0;
  constructor(private readonly max = 20_000) {}

  /** The facts that differ from what was last written for their items; `written()` once they are committed. */
  changed(facts: readonly Fact[]): { facts: Fact[]; written(): void } {
    const out: Fact[] = [];
    const prints: string[] = [];
    for (const f of facts) {
      const print = fingerprint(f);
      if (this.last.get(f.kind)?.get(f.id) === print) continue;
      out.push(f);
      prints.push(print);
    }
    return {
      facts: out,
      written: () => {
        out.forEach((f, i) => {
          let byId = this.last.get(f.kind);
          if (!byId) this.last.set(f.kind, (byId = new Map()));
          if (byId.delete(f.id)) this.size--;
          byId.set(f.id, prints[i]!);
          this.size++;
        });
        // Past the cap, forget the oldest of each kind in turn (insertion order is write order).
        while (this.size > this.max) {
          for (const byId of this.last.values()) {
            const oldest = byId.keys().next();
            if (!oldest.done) {
              byId.delete(oldest.value);
              this.size--;
            }
          }
        }
      },
    };
  }
}
