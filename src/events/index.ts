/**
 * Change detection: Langfuse records + what was seen before → events. Deterministic: the same change
 * gives the same id and the same body on every run, after a restart and in any later backfill.
 */
import { createHash } from 'node:crypto';
import type { Stream } from '../config/index.js';
import { levelOf, levelRank, type ObservationRecord, type PromptVersionRecord, type ScoreRecord, type TraceRecord } from './records.js';
import type { AnyBridgeEvent, EventType, GenerationData, ScoreData, TraceData } from './types.js';

export * from './types.js';
export * from './records.js';

/**
 * Derived from project, event type, entity id and the version that changed — never from the API
 * generation, so a server upgraded from legacy to v4 redelivers nothing.
 */
export function eventId(projectId: string, type: EventType, entityId: string, version: string): string {
  const h = createHash('sha256').update(`${projectId}\u0000${type}\u0000${entityId}\u0000${version}`).digest('hex');
  return `evt_${h.slice(0, 32)}`;
}

export function makeEvent<T extends EventType>(type: T, id: string, timestamp: string, data: AnyBridgeEvent['data']): AnyBridgeEvent {
  // Key order is fixed here, which keeps bodies byte-identical.
  return { id, event: type, timestamp, data } as AnyBridgeEvent;
}

/** What the bridge keeps of an entity it turned into events: its version, level and the detail updates are told from. */
export interface SeenRow {
  kind: string;
  id: string;
  version: string | null;
  level: number;
  created: number;
  detail: string | null;
}

/** Read/write access to seen versions, bound to one project inside one transaction. */
export interface SeenAccess {
  get(kind: string, id: string): SeenRow | undefined;
  put(row: SeenRow): void;
}

export interface DetectOptions {
  projectId: string;
  streams: ReadonlySet<Stream>;
  includeIo: boolean;
  /**
   * Backfill: report every event the range holds as if nothing had been seen (the outbox skips what
   * a sink already has), while still merging what was learnt into the seen versions.
   */
  fresh: boolean;
}

interface TraceDetail {
  n: string | null;
  u: string | null;
  s: string | null;
  e: string | null;
  g: string[];
  t: string;
  /** statusMessage and startTime of the observation that raised the level. */
  m: string | null;
  a: string | null;
}

function parseDetail(row: SeenRow | undefined): TraceDetail | null {
  if (!row?.detail) return null;
  try {
    return JSON.parse(row.detail) as TraceDetail;
  } catch {
    return null;
  }
}

/** What a seen trace's record knows of the trace itself (legacy observations do not carry it). */
export function seenTraceFields(row: SeenRow | undefined): { name: string | null; environment: string | null; tags: string[] } | null {
  const d = parseDetail(row);
  return d ? { name: d.n, environment: d.e, tags: d.g ?? [] } : null;
}

function byTimeThenId(a: { startTime: string; id: string }, b: { startTime: string; id: string }): number {
  return a.startTime < b.startTime ? -1 : a.startTime > b.startTime ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function firstNonNull<T>(obs: ObservationRecord[], pick: (o: ObservationRecord) => T | null | undefined): T | null {
  for (const o of obs) {
    const v = pick(o);
    if (v !== null && v !== undefined) return v;
  }
  return null;
}

function traceData(projectId: string, traceId: string, d: TraceDetail, level: number): TraceData {
  return {
    projectId,
    traceId,
    name: d.n,
    userId: d.u,
    sessionId: d.s,
    environment: d.e,
    tags: d.g,
    level: levelOf(level),
    statusMessage: level >= 2 ? d.m : null,
  };
}

function generationData(projectId: string, o: ObservationRecord, includeIo: boolean): GenerationData {
  const total = o.totalTokens ?? (o.promptTokens !== null || o.completionTokens !== null ? (o.promptTokens ?? 0) + (o.completionTokens ?? 0) : null);
  const data: GenerationData = {
    projectId,
    observationId: o.id,
    traceId: o.traceId,
    name: o.name,
    model: o.model,
    level: o.level,
    statusMessage: o.statusMessage,
    startTime: o.startTime,
    endTime: o.endTime,
    usage: { promptTokens: o.promptTokens, completionTokens: o.completionTokens, totalTokens: total },
    usageDetails: o.usageDetails,
    costDetails: o.costDetails,
    totalCost: o.totalCost,
  };
  if (includeIo) {
    data.input = o.input ?? null;
    data.output = o.output ?? null;
  }
  return data;
}

/**
 * Observations (and, from legacy servers, the trace list of the same window) → trace and generation
 * events. `context` holds observations read only to learn a listed trace's level (see Poller). A trace's level is the highest of its observations of every type; `trace.updated` fires
 * when that level first reaches WARNING or ERROR, never twice for one level.
 */
export function detectObservations(
  batch: { observations: ObservationRecord[]; traces?: TraceRecord[]; context?: ObservationRecord[] },
  seen: SeenAccess,
  opts: DetectOptions,
): AnyBridgeEvent[] {
  const out: AnyBridgeEvent[] = [];
  const { projectId } = opts;
  const byTrace = new Map<string, ObservationRecord[]>();
  const inBatch = new Set<string>();
  for (const o of batch.observations) {
    inBatch.add(o.id);
    let list = byTrace.get(o.traceId);
    if (!list) byTrace.set(o.traceId, (list = []));
    list.push(o);
  }
  // Observations read from a trace's own endpoint: they decide its level, and make no events of their own.
  for (const o of batch.context ?? []) {
    if (inBatch.has(o.id)) continue;
    inBatch.add(o.id);
    let list = byTrace.get(o.traceId);
    if (!list) byTrace.set(o.traceId, (list = []));
    list.push(o);
  }
  const listed = new Map<string, TraceRecord>();
  for (const t of batch.traces ?? []) listed.set(t.id, t);
  const legacy = batch.traces !== undefined;

  if (opts.streams.has('traces')) {
    const ids = new Set<string>([...listed.keys(), ...byTrace.keys()]);
    // Oldest first, so a batch's events come out in the order things happened.
    const order = [...ids].map((id) => ({ id, t: listed.get(id)?.timestamp ?? byTrace.get(id)?.reduce((m, o) => (o.startTime < m ? o.startTime : m), '9') ?? '' }));
    order.sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : a.id < b.id ? -1 : 1));
    for (const { id: traceId } of order) {
      const obs = (byTrace.get(traceId) ?? []).sort(byTimeThenId);
      const real = seen.get('trace', traceId);
      const prior = opts.fresh ? undefined : real;
      const realDetail = parseDetail(real);
      const priorDetail = opts.fresh ? null : realDetail;

      // The observation that raised the level in this batch: highest level, earliest start.
      let top: ObservationRecord | null = null;
      for (const o of obs) if (!top || levelRank(o.level) > levelRank(top.level)) top = o;
      const batchLevel = top ? levelRank(top.level) : -1;
      const priorLevel = prior ? prior.level : -1;
      const level = Math.max(priorLevel, batchLevel);
      const raisedHere = batchLevel > priorLevel && top !== null;

      // What we know of the trace itself: the listed trace (legacy), else what was seen before,
      // else what its observations carry (v4).
      const rec = listed.get(traceId);
      let meta: TraceDetail | null = null;
      if (rec) {
        meta = { n: rec.name, u: rec.userId, s: rec.sessionId, e: rec.environment, g: rec.tags, t: rec.timestamp, m: null, a: null };
      } else if (priorDetail) {
        meta = priorDetail;
      } else if (!legacy && obs.length) {
        const roots = [...obs.filter((o) => o.isRoot), ...obs.filter((o) => !o.isRoot)];
        meta = {
          n: firstNonNull(roots, (o) => o.traceName),
          u: firstNonNull(roots, (o) => o.userId),
          s: firstNonNull(roots, (o) => o.sessionId),
          e: firstNonNull(roots, (o) => o.environment),
          g: firstNonNull(roots, (o) => o.tags) ?? [],
          t: obs[0]!.startTime,
          m: null,
          a: null,
        };
      } else {
        // A legacy trace not listed yet: remember its level until the trace itself shows up.
        meta = realDetail ?? { n: null, u: null, s: null, e: null, g: [], t: '', m: null, a: null };
      }
      const known: TraceDetail = {
        ...meta,
        m: raisedHere ? top!.statusMessage : (priorDetail?.m ?? realDetail?.m ?? null),
        a: raisedHere ? top!.startTime : (priorDetail?.a ?? realDetail?.a ?? null),
      };

      const wasCreated = prior?.created === 1;
      const canCreate = !wasCreated && (rec !== undefined || (!legacy && obs.length > 0));
      // A backfill on a legacy server: the trace was listed in an earlier slice, its error shows up in this one.
      const createdEarlier = !wasCreated && !canCreate && opts.fresh && real?.created === 1;
      // A backfill re-reading part of a trace must not report a level below one already known.
      const belowKnown = (level: number): boolean => opts.fresh && real !== undefined && real.level > level;
      const created = wasCreated || canCreate;
      const shownLevel = Math.max(level, 1);

      if (canCreate) {
        out.push(makeEvent('trace.created', eventId(projectId, 'trace.created', traceId, ''), known.t, traceData(projectId, traceId, known, shownLevel)));
        if (shownLevel >= 2 && !belowKnown(shownLevel)) {
          out.push(makeEvent('trace.updated', eventId(projectId, 'trace.updated', traceId, levelOf(shownLevel)), known.a ?? known.t, traceData(projectId, traceId, known, shownLevel)));
        }
      } else if ((wasCreated || createdEarlier) && raisedHere && batchLevel >= 2 && !belowKnown(batchLevel)) {
        out.push(makeEvent('trace.updated', eventId(projectId, 'trace.updated', traceId, levelOf(batchLevel)), known.a ?? known.t, traceData(projectId, traceId, known, batchLevel)));
      }

      // Merge what was learnt into the real seen version (which `fresh` only ignored for output).
      const realLevel = real ? real.level : -1;
      const mergedLevel = Math.max(realLevel, batchLevel);
      const mergedDetail = { ...known };
      if (realDetail && realLevel >= batchLevel) {
        mergedDetail.m = realDetail.m;
        mergedDetail.a = realDetail.a;
      }
      if (realDetail && !rec && realDetail.t) mergedDetail.t = realDetail.t;
      const row = { kind: 'trace', id: traceId, version: null, level: mergedLevel, created: created || real?.created === 1 ? 1 : 0, detail: JSON.stringify(mergedDetail) };
      // Re-reads of the lookback mostly change nothing: write only what did.
      if (!real || real.level !== row.level || real.created !== row.created || real.detail !== row.detail) seen.put(row);
    }
  }

  if (opts.streams.has('generations')) {
    for (const o of batch.observations) {
      if (o.type !== 'GENERATION') continue;
      const real = seen.get('obs', o.id);
      const prior = opts.fresh ? undefined : real;
      const version = o.updatedAt ?? '';
      if (!prior) {
        out.push(makeEvent('generation.created', eventId(projectId, 'generation.created', o.id, ''), o.startTime, generationData(projectId, o, opts.includeIo)));
      }
      // A backfill reports the change too when it finds one the seen version has not recorded yet.
      const changed = prior ? version !== prior.version : opts.fresh && real !== undefined && (real.version ?? '') < version;
      if (o.updatedAt && changed) {
        out.push(makeEvent('generation.updated', eventId(projectId, 'generation.updated', o.id, o.updatedAt), o.updatedAt, generationData(projectId, o, opts.includeIo)));
      }
      if (!real || (o.updatedAt && real.version !== version && (real.version ?? '') < version)) {
        seen.put({ kind: 'obs', id: o.id, version, level: levelRank(o.level), created: 1, detail: null });
      }
    }
  }
  return out;
}

function scoreFingerprint(s: ScoreRecord): string {
  return createHash('sha1')
    .update(JSON.stringify([s.value, s.stringValue, s.comment, s.updatedAt]))
    .digest('base64url')
    .slice(0, 16);
}

export function scoreData(projectId: string, s: ScoreRecord): ScoreData {
  return {
    projectId,
    scoreId: s.id,
    traceId: s.traceId,
    observationId: s.observationId,
    sessionId: s.sessionId,
    name: s.name,
    value: s.value,
    stringValue: s.stringValue,
    dataType: s.dataType,
    source: s.source,
    comment: s.comment,
  };
}

/** Scores: first sight → score.created; a changed value, comment or updatedAt → score.updated. */
export function detectScores(scores: ScoreRecord[], seen: SeenAccess, opts: DetectOptions): AnyBridgeEvent[] {
  const out: AnyBridgeEvent[] = [];
  if (!opts.streams.has('scores')) return out;
  const { projectId } = opts;
  const sorted = [...scores].sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : a.id < b.id ? -1 : 1));
  for (const s of sorted) {
    const real = seen.get('score', s.id);
    const prior = opts.fresh ? undefined : real;
    const fp = scoreFingerprint(s);
    if (!prior) {
      out.push(makeEvent('score.created', eventId(projectId, 'score.created', s.id, ''), s.timestamp, scoreData(projectId, s)));
    }
    // A backfill (fresh) also reports a change the seen version has not recorded yet: the live poll
    // never read it (it happened outside the lookback), so no sink has it.
    const changedFrom = prior ?? (opts.fresh ? real : undefined);
    if (changedFrom && changedFrom.version !== fp) {
      const version = `${s.updatedAt ?? ''}/${fp}`;
      out.push(makeEvent('score.updated', eventId(projectId, 'score.updated', s.id, version), s.updatedAt ?? s.timestamp, scoreData(projectId, s)));
    }
    if (!real || real.version !== fp) seen.put({ kind: 'score', id: s.id, version: fp, level: 0, created: 1, detail: null });
  }
  return out;
}

/** Prompt versions: a new version → prompt.created; changed labels or tags → prompt.updated. */
export function detectPrompts(versions: PromptVersionRecord[], seen: SeenAccess, opts: DetectOptions): AnyBridgeEvent[] {
  const out: AnyBridgeEvent[] = [];
  if (!opts.streams.has('prompts')) return out;
  const { projectId } = opts;
  for (const p of versions) {
    const key = `${p.name}@${p.version}`;
    const real = seen.get('prompt', key);
    const prior = opts.fresh ? undefined : real;
    const fp = JSON.stringify([[...p.labels].sort(), [...p.tags].sort()]);
    const prompt = { ...p.prompt };
    if (!opts.includeIo) delete prompt.prompt;
    if (!prior) {
      out.push(makeEvent('prompt.created', eventId(projectId, 'prompt.created', key, ''), p.createdAt ?? p.updatedAt ?? new Date(0).toISOString(), { projectId, prompt }));
    }
    const changedFrom = prior ?? (opts.fresh ? real : undefined);
    if (changedFrom && changedFrom.version !== fp) {
      const version = createHash('sha1').update(fp).digest('hex').slice(0, 16);
      out.push(makeEvent('prompt.updated', eventId(projectId, 'prompt.updated', key, `${p.updatedAt ?? ''}/${version}`), p.updatedAt ?? p.createdAt ?? new Date(0).toISOString(), { projectId, prompt }));
    }
    if (!real || real.version !== fp) seen.put({ kind: 'prompt', id: key, version: fp, level: 0, created: 1, detail: null });
  }
  return out;
}

export function testEvent(projectId: string, now = new Date()): AnyBridgeEvent {
  const ts = now.toISOString();
  return makeEvent('test', eventId(projectId, 'test', 'test', ts), ts, { projectId, message: 'This is a test event from langfuse-bridge.' });
}
