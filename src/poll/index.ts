/**
 * Polling and backfill: reads windows from the sources, turns them into events in one transaction
 * with the seen versions and the cursor, and routes each event to the sinks that want it.
 *
 * A poll reads what is newer than its cursor, and the last minute again (where most late rows land;
 * with monitors, their longest delay again),
 * and commits those events together with the new cursor.
 * Every sweep interval it also re-reads the lookback (the late-data sweep), newest first, with
 * whatever the request budget leaves; a sweep cut short resumes on the next poll where it stopped.
 */
import type { Logger } from 'pino';
import type { BridgeConfig, Stream } from '../config/index.js';
import {
  detectObservations,
  detectPrompts,
  detectScores,
  seenTraceFields,
  type AnyBridgeEvent,
  type DetectOptions,
  type ObservationRecord,
  type ScoreRecord,
  type SeenAccess,
  type SeenRow,
  type TraceRecord,
} from '../events/index.js';
import type { Handoff } from '../delivery/handoff.js';
import { LangfuseError, type LangfuseClient } from '../langfuse/client.js';
import { observationPages, probeApi, promptVersions, scorePages, traceObservations, tracePages, type ApiShape, type Page, type ReadContext, type Window } from '../sources/index.js';
import { isSqliteError, type CursorRow, type EnqueueOptions, type NewEvent, type Store } from '../store/index.js';
import { routeEvent } from '../rules/route.js';
import type { Sink } from '../sinks/types.js';
import { FIRST_SLICE_MS, MIN_SLICE_MS, SLICE_TARGET_ROWS, nextSliceMs } from './slices.js';
import { factsHorizonMs, factsOf, WrittenFacts } from '../monitors/index.js';

export type SourceName = 'observations' | 'scores' | 'prompts';

/** How long a trace's observations may span and still be read together by one backfill slice. */
const TRACE_SPAN_MS = 15 * 60_000;

/**
 * Splits a backfill slice's observations (and, on legacy servers, its listed traces): traces that
 * started at or after `cutIso` wait for the next slice, which reads on from where this one ended,
 * so every trace is processed with at least TRACE_SPAN_MS of its observations, each row read once.
 */
export function holdRecentTraces(
  observations: ObservationRecord[],
  traces: TraceRecord[] | undefined,
  cutIso: string,
): { ready: { observations: ObservationRecord[]; traces?: TraceRecord[] }; held: { observations: ObservationRecord[]; traces?: TraceRecord[] } } {
  const earliest = new Map<string, string>();
  const note = (id: string, t: string): void => {
    const e = earliest.get(id);
    if (e === undefined || t < e) earliest.set(id, t);
  };
  for (const o of observations) note(o.traceId, o.startTime);
  for (const t of traces ?? []) note(t.id, t.timestamp);
  const waits = (id: string): boolean => earliest.get(id)! >= cutIso;
  const ready = { observations: [] as ObservationRecord[], traces: traces ? ([] as TraceRecord[]) : undefined };
  const held = { observations: [] as ObservationRecord[], traces: traces ? ([] as TraceRecord[]) : undefined };
  for (const o of observations) (waits(o.traceId) ? held : ready).observations.push(o);
  for (const t of traces ?? []) (waits(t.id) ? held : ready).traces!.push(t);
  return { ready, held };
}

export function sourcesFor(streams: readonly Stream[]): SourceName[] {
  const out: SourceName[] = [];
  if (streams.includes('traces') || streams.includes('generations')) out.push('observations');
  if (streams.includes('scores')) out.push('scores');
  if (streams.includes('prompts')) out.push('prompts');
  return out;
}

/**
 * How often the late-data sweep starts: every minute (or every poll, if polls are rarer), and at
 * least four times per lookback. Polls in between read only what is newer than the cursor.
 */
export function sweepIntervalMs(pollIntervalSeconds: number, lookbackSeconds: number): number {
  return Math.max(pollIntervalSeconds * 1000, Math.min((lookbackSeconds * 1000) / 4, 60_000));
}

/** Which streams a source feeds, for `status`. */
export const SOURCE_STREAMS: Record<SourceName, Stream[]> = {
  observations: ['traces', 'generations'],
  scores: ['scores'],
  prompts: ['prompts'],
};

export interface PollHooks {
  onEvents?(events: AnyBridgeEvent[], source: SourceName): void;
  onPoll?(source: SourceName, outcome: 'ok' | 'error', lagMs: number): void;
  onSkip?(what: string): void;
  /** The delivery backend's hand-off for one commit, if it takes one (see delivery/handoff.ts). */
  handoff?(): Handoff | null;
}

export interface CommitResult {
  events: number;
  inserted: number;
  requeued: number;
}

export interface BackfillProgress {
  source: SourceName;
  doneMs: number;
  totalMs: number;
  events: number;
  inserted: number;
  calls: number;
}

interface Batch {
  observations: ObservationRecord[];
  traces?: TraceRecord[];
  /** Observations read from a listed trace's own endpoint: they set its level, nothing else. */
  context?: ObservationRecord[];
  scores: ScoreRecord[];
}

export class Poller {
  private shape: ApiShape | null = null;
  projectId: string | null = null;
  private readonly streams: Set<Stream>;
  /** What this poller last wrote of each item's facts: a sweep over unchanged items writes none. */
  private readonly writtenFacts = new WrittenFacts();

  constructor(
    private readonly store: Store,
    private readonly client: LangfuseClient,
    private readonly config: BridgeConfig,
    private readonly sinks: Sink[],
    private readonly logger: Logger,
    private readonly hooks: PollHooks = {},
  ) {
    this.streams = new Set(config.streams);
  }

  /** Probes the API generation and the project once per process. */
  async connect(signal?: AbortSignal): Promise<ApiShape> {
    if (this.shape && this.projectId) return this.shape;
    this.shape = await probeApi(this.client, this.config.langfuse.api, signal);
    this.projectId = await this.resolveProject(signal);
    this.logger.info({ generation: this.shape.generation, scores: this.shape.scoresPath, server: this.shape.version, projectId: this.projectId }, 'connected to Langfuse');
    return this.shape;
  }

  private async resolveProject(signal?: AbortSignal): Promise<string> {
    try {
      const body = await this.client.get<{ data?: Array<{ id?: unknown }> }>('/api/public/projects', {}, signal);
      const id = body?.data?.[0]?.id;
      if (typeof id === 'string' && id) {
        this.store.meta.setProjectId(this.config.langfuse.publicKey, id);
        return id;
      }
    } catch (err) {
      if (!(err instanceof LangfuseError) || err.kind === 'auth' || err.kind === 'transient') throw err;
    }
    return this.store.meta.projectId(this.config.langfuse.publicKey) ?? this.config.langfuse.publicKey;
  }

  private ctx(signal: AbortSignal | undefined): ReadContext {
    return {
      client: this.client,
      shape: this.shape!,
      logger: this.logger,
      includeIo: this.config.includeIo,
      signal,
      allObservationTypes: this.streams.has('traces'),
      onSkip: this.hooks.onSkip,
    };
  }

  private detectOptions(fresh: boolean): DetectOptions {
    return { projectId: this.projectId!, streams: this.streams, includeIo: this.config.includeIo, fresh };
  }

  /** Detects events for a batch and writes them, their seen versions and (optionally) the cursor at once. */
  commit(
    source: SourceName,
    batch: Batch | { prompts: Parameters<typeof detectPrompts>[0] },
    opts: { fresh: boolean; sinks: Sink[]; enqueue?: EnqueueOptions; cursor?: CursorRow; /** The time range this commit completes (head reads, backfill passes). */ covered?: Window; /** Live polls read items again (head overlap, sweeps): skip facts written as they are. */ rereads?: boolean },
  ): CommitResult {
    const project = this.projectId!;
    const store = this.store;
    let events: AnyBridgeEvent[] = [];
    const handoff = this.hooks.handoff?.();
    let factsWritten: (() => void) | undefined;
    const res = store.write(() => {
      // The trace rows detection writes, kept for the facts below instead of being read back.
      const tracesSeen = new Map<string, SeenRow>();
      const seen: SeenAccess = {
        get: (kind, id) => store.getSeen(project, kind, id),
        put: (row) => {
          if (row.kind === 'trace') tracesSeen.set(row.id, row);
          store.putSeen(project, row);
        },
      };
      const d = this.detectOptions(opts.fresh);
      if ('prompts' in batch) events = detectPrompts(batch.prompts, seen, d);
      else if (source === 'observations') events = detectObservations({ observations: batch.observations, traces: batch.traces, context: batch.context }, seen, d);
      else events = detectScores(batch.scores, seen, d);
      const rows: NewEvent[] = [];
      for (const ev of events) {
        const routing = routeEvent(ev, opts.sinks, this.config.rules);
        if (routing.sinks.length) rows.push({ id: ev.id, type: ev.event, ts: ev.timestamp, body: JSON.stringify(ev), ...routing });
      }
      const r = store.enqueue(rows, opts.enqueue, Date.now(), handoff ?? undefined);
      // What monitors aggregate, with the slice (live or backfill): see src/monitors/.
      if (!('prompts' in batch)) {
        const horizon = Date.now() - factsHorizonMs(this.config.monitors);
        // Detection above recorded what this batch says of each trace; legacy observations need it.
        const all = factsOf(batch, horizon, (traceId) => seenTraceFields(tracesSeen.get(traceId) ?? store.getSeen(project, 'trace', traceId)));
        if (opts.rereads) {
          const facts = this.writtenFacts.changed(all);
          store.monitors.putFacts(project, facts.facts);
          factsWritten = facts.written;
        } else {
          store.monitors.putFacts(project, all);
        }
        if (opts.covered) store.monitors.noteFactsRead(project, source, Math.max(opts.covered.fromMs, horizon), opts.covered.toMs);
      }
      if (opts.cursor) store.putCursor(opts.cursor);
      return r;
    });
    factsWritten?.();
    handoff?.handOver();
    if (events.length) this.hooks.onEvents?.(events, source);
    return { events: events.length, inserted: res.inserted, requeued: res.requeued };
  }

  /**
   * Legacy traces listed without all their observations in the batch, and not reported yet, get
   * those read from the trace's own endpoint before their level is decided: on v2 the SDK's
   * `trace.update()` moves the trace's timestamp to the update time, so a trace can enter a window
   * apart from its older observations (an ERROR among them included).
   */
  private async withTraceContext(batch: Batch, signal?: AbortSignal): Promise<Batch> {
    if (!batch.traces?.length) return batch;
    const have = new Set<string>();
    const traced = new Set<string>();
    for (const o of batch.observations) {
      have.add(o.id);
      traced.add(o.traceId);
    }
    const context: ObservationRecord[] = [];
    let read = 0;
    for (const t of batch.traces) {
      const missing = t.observationIds ? t.observationIds.some((id) => !have.has(id)) : !traced.has(t.id);
      if (!missing || this.store.getSeen(this.projectId!, 'trace', t.id)?.created === 1) continue;
      const obs = await traceObservations(this.ctx(signal), t.id);
      read++;
      if (obs) context.push(...obs);
    }
    if (read) this.logger.debug({ traces: read }, 'read the observations of traces listed apart from them');
    return context.length ? { ...batch, context } : batch;
  }

  // --- live polling ---------------------------------------------------------------------------

  /** One poll of every source. Returns the number of events committed. */
  async pollOnce(signal?: AbortSignal): Promise<{ events: number; failed: SourceName[] }> {
    const sources = sourcesFor(this.config.streams);
    try {
      await this.connect(signal);
    } catch (err) {
      // One of several projects: a project that cannot connect (say, refused keys) still shows in
      // `status`, under its id when known from an earlier run, otherwise under its configured name.
      if (this.config.projectName !== undefined && !signal?.aborted) this.recordConnectFailure(sources, (err as Error).message);
      throw err;
    }
    if (this.config.projectName !== undefined && this.projectId !== this.config.projectName) {
      // Rows recorded under the name while the project could not connect; its id has them now.
      this.store.forgetUnreadCursors(this.config.projectName);
    }
    // What this project's head reads need of a ceiling shared with a backfill.
    this.client.limiter.setNeed((this.callsPerPoll() * 60) / this.effectiveIntervalSeconds());
    // The calls one poll may spend, so that polls every (effective) interval stay under the ceiling.
    const budget = Math.max(sources.length, Math.floor((this.ceiling() * this.effectiveIntervalSeconds()) / 60));
    const perSource = Math.max(1, Math.floor(budget / sources.length));
    let events = 0;
    const failed: SourceName[] = [];
    for (const source of sources) {
      signal?.throwIfAborted();
      const cursor = this.store.getCursor(this.projectId!, source);
      const startedCalls = this.client.stats.calls;
      try {
        events += await this.pollSource(source, cursor, perSource, signal);
        const c = this.store.getCursor(this.projectId!, source);
        this.store.putCursor({ ...c, lastPollAt: Date.now(), lastOkAt: Date.now(), lastOutcome: 'ok', lastError: null });
        this.hooks.onPoll?.(source, 'ok', c.sweepPosMs !== null && c.sweepStartedAt !== null ? Date.now() - c.sweepStartedAt : 0);
      } catch (err) {
        if (signal?.aborted) throw err;
        // The database failing is not a poll outcome to record in it: the caller decides.
        if (isSqliteError(err)) throw err;
        const c = this.store.getCursor(this.projectId!, source);
        const message = (err as Error).message;
        this.store.putCursor({ ...c, lastPollAt: Date.now(), lastOutcome: 'error', lastError: message });
        this.hooks.onPoll?.(source, 'error', 0);
        failed.push(source);
        this.logger.error({ source, err: message, calls: this.client.stats.calls - startedCalls }, 'poll failed; the cursor stays where it was and the next poll reads the window again');
        if (err instanceof LangfuseError && err.kind === 'auth') throw err;
      }
    }
    return { events, failed };
  }

  /** The request ceiling in force: with a shared ledger, the one every process on the database holds to. */
  ceiling(): number {
    const l = this.client.limiter;
    return l.shared ? l.ceiling : this.config.langfuse.maxRequestsPerMinute;
  }

  /** The calls an idle poll makes (one list per resource), once the API generation is known. */
  callsPerPoll(): number {
    let n = 0;
    for (const source of sourcesFor(this.config.streams)) {
      n++;
      if (source === 'observations' && this.shape?.generation === 'legacy' && this.streams.has('traces')) n++;
    }
    return Math.max(1, n);
  }

  /**
   * The interval polls can keep under the ceiling: the configured one, or longer when an idle poll's
   * calls at that interval would not fit (polls then run evenly at this pace instead of in bursts).
   */
  effectiveIntervalSeconds(): number {
    return Math.max(this.config.pollIntervalSeconds, Math.ceil((this.callsPerPoll() * 60) / this.ceiling()));
  }

  private recordConnectFailure(sources: SourceName[], message: string): void {
    const project = this.store.meta.projectId(this.config.langfuse.publicKey) ?? this.config.projectName!;
    for (const source of sources) {
      const c = this.store.getCursor(project, source);
      this.store.putCursor({ ...c, lastPollAt: Date.now(), lastOutcome: 'error', lastError: message });
      this.hooks.onPoll?.(source, 'error', 0);
    }
  }

  private startFloor(): number | null {
    return this.config.startFrom ? this.config.startFrom.getTime() : null;
  }

  private async pollSource(source: SourceName, c: CursorRow, budget: number, signal?: AbortSignal): Promise<number> {
    const now = Date.now();
    const lookback = this.config.lookbackSeconds * 1000;
    const floor = this.startFloor();
    // The very first poll starts at BRIDGE_START_FROM (default now − lookback); nothing older is read.
    const cursorMs = c.cursorMs ?? floor ?? now - lookback;
    const lookFloor = Math.max(cursorMs - lookback, floor ?? (c.cursorMs === null ? cursorMs : -Infinity));
    const callsAtStart = this.client.stats.calls;
    const spent = (): number => this.client.stats.calls - callsAtStart;
    const live = { fresh: false, sinks: this.sinks, rereads: true };

    if (source === 'prompts') {
      // lastUpdatedAt is the server's own clock, so prompts need no lookback beyond a little skew.
      const since = c.cursorMs === null ? lookFloor : Math.max(lookFloor, cursorMs - 60_000);
      const { versions } = await promptVersions(this.ctx(signal), { fromMs: since, toMs: now });
      const r = this.commit('prompts', { prompts: versions }, { ...live, cursor: { ...c, cursorMs: now, lastSweepDoneAt: now } });
      return r.events;
    }

    const pagesOf = (w: Window): AsyncGenerator<Page<ObservationRecord | ScoreRecord>> =>
      source === 'observations' ? observationPages(this.ctx(signal), w) : scorePages(this.ctx(signal), w);
    const legacyTraces = source === 'observations' && this.shape!.generation === 'legacy' && this.streams.has('traces');
    const readTraces = async (w: Window): Promise<TraceRecord[]> => {
      const all: TraceRecord[] = [];
      for await (const p of tracePages(this.ctx(signal), w)) all.push(...p.rows);
      return all;
    };
    const batchOf = (rows: Array<ObservationRecord | ScoreRecord>, traces?: TraceRecord[]): Batch =>
      source === 'observations' ? { observations: rows as ObservationRecord[], traces: legacyTraces ? (traces ?? []) : undefined, scores: [] } : { observations: [], scores: rows as ScoreRecord[] };

    let events = 0;
    // Phase 1, the head: everything newer than the cursor and the last minute again (Langfuse makes
    // most rows queryable 15–30 s after their timestamp), committed together with the new cursor.
    // With monitors, the longest `delay` again: a window is evaluated once the cursor passed its end
    // plus the delay, so what became visible within the delay must be committed by then, not left to
    // a sweep that may come later.
    const interval = this.config.pollIntervalSeconds * 1000;
    const monitorDelay = this.config.monitors.length ? Math.max(...this.config.monitors.map((m) => m.delayMs)) + interval : 0;
    const recent = Math.min(lookback, Math.max(60_000, 2 * interval, monitorDelay));
    const headWindow: Window = { fromMs: c.cursorMs === null ? lookFloor : Math.max(cursorMs - recent, floor ?? -Infinity), toMs: now };
    const traces = legacyTraces ? await readTraces(headWindow) : undefined;
    const rows: Array<ObservationRecord | ScoreRecord> = [];
    for await (const p of pagesOf(headWindow)) for (const r of p.rows) rows.push(r);

    // Phase 2, the late-data sweep: every `sweepEvery`, the lookback (plus one sweep interval, so
    // nothing that lands within the lookback falls between two sweeps) is read again, newest first,
    // with the calls the budget leaves; a sweep the budget cuts short resumes next poll.
    const sweepEvery = sweepIntervalMs(this.config.pollIntervalSeconds, this.config.lookbackSeconds);
    let sweep = { floorMs: c.sweepFloorMs, posMs: c.sweepPosMs, startedAt: c.sweepStartedAt };
    let lastSweepDoneAt = c.cursorMs === null ? now : c.lastSweepDoneAt; // the first head covered the lookback
    if (sweep.posMs === null && lookback > 0 && c.cursorMs !== null && now - (lastSweepDoneAt ?? 0) >= sweepEvery) {
      sweep = { floorMs: Math.max(now - lookback - sweepEvery, floor ?? -Infinity), posMs: cursorMs, startedAt: now };
    }
    const head = legacyTraces ? await this.withTraceContext(batchOf(rows, traces), signal) : batchOf(rows, traces);
    events += this.commit(source, head, {
      ...live,
      covered: headWindow,
      cursor: { ...c, cursorMs: now, sweepFloorMs: sweep.floorMs, sweepPosMs: sweep.posMs, sweepStartedAt: sweep.startedAt, lastSweepDoneAt },
    }).events;
    if (sweep.posMs === null || sweep.floorMs === null) return events;

    let exhausted = sweep.posMs <= sweep.floorMs;
    let oldestRead: number | null = null;
    if (!exhausted) {
      const w = { fromMs: sweep.floorMs, toMs: sweep.posMs };
      // Legacy: traces listed late in the swept part, so their trace.created is not missed.
      if (legacyTraces) {
        const late = await readTraces(w);
        if (late.length) events += this.commit(source, batchOf([], late), live).events;
      }
      const pages = pagesOf(w);
      while (spent() < budget) {
        const n = await pages.next();
        if (n.done) {
          exhausted = true;
          break;
        }
        if (n.value.oldestMs !== null) oldestRead = n.value.oldestMs;
        if (n.value.rows.length) events += this.commit(source, batchOf(n.value.rows, []), live).events;
      }
    }
    const latest = this.store.getCursor(this.projectId!, source);
    if (exhausted) {
      this.store.putCursor({ ...latest, sweepPosMs: null, sweepFloorMs: null, sweepStartedAt: null, lastSweepDoneAt: Date.now() });
    } else {
      // Resume below the oldest row read; rows at exactly that time are read again, harmlessly.
      const pos = oldestRead !== null ? oldestRead + 1 : sweep.posMs;
      this.store.putCursor({ ...latest, sweepPosMs: pos });
      this.logger.info({ source, behindSeconds: Math.round((Date.now() - (sweep.startedAt ?? now)) / 1000) }, 'late-data sweep paused by the request ceiling; it resumes next poll');
    }
    return events;
  }

  // --- backfill ---------------------------------------------------------------------------------

  /**
   * One bounded pass over [from, to) in time slices, oldest first, each committed on its own.
   * Returns totals. Never touches the live cursor.
   */
  async backfill(
    fromMs: number,
    toMs: number,
    opts: {
      sinks: Sink[];
      enqueue: EnqueueOptions;
      onProgress?: (p: BackfillProgress) => void;
      signal?: AbortSignal;
      /** Where this pass records the slices it finished, so a rerun after a crash resumes there. */
      resumeKey?: string;
      /** Rows a slice aims at (held in memory until it commits). */
      sliceTargetRows?: number;
    },
  ): Promise<{ events: number; inserted: number; requeued: number }> {
    await this.connect(opts.signal);
    const totals = { events: 0, inserted: 0, requeued: 0 };
    const callsAtStart = this.client.stats.calls;
    // The sources are read side by side: while one waits for Langfuse, the other commits. The first
    // to fail stops the others.
    const stop = new AbortController();
    const onAbort = (): void => stop.abort(opts.signal?.reason);
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const settled = await Promise.allSettled(
        sourcesFor(this.config.streams).map((source) =>
          this.backfillSource(source, fromMs, toMs, { ...opts, signal: stop.signal }, totals, callsAtStart).catch((err: unknown) => {
            stop.abort(err);
            throw err;
          }),
        ),
      );
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw opts.signal?.aborted ? opts.signal.reason : failed.reason;
      return totals;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  private async backfillSource(
    source: SourceName,
    fromMs: number,
    toMs: number,
    opts: Parameters<Poller['backfill']>[2],
    totals: { events: number; inserted: number; requeued: number },
    callsAtStart: number,
  ): Promise<void> {
    const commitOpts = { fresh: true, sinks: opts.sinks, enqueue: opts.enqueue };
    if (source === 'prompts') {
      const { versions } = await promptVersions(this.ctx(opts.signal), { fromMs, toMs });
      const r = this.commit('prompts', { prompts: versions }, commitOpts);
      add(totals, r);
      opts.onProgress?.({ source, doneMs: toMs - fromMs, totalMs: toMs - fromMs, events: totals.events, inserted: totals.inserted, calls: this.client.stats.calls - callsAtStart });
      return;
    }
    // Adaptive slices: keep each slice's rows (held in memory until it commits) near a target.
    let slice = FIRST_SLICE_MS;
    const target = opts.sliceTargetRows ?? SLICE_TARGET_ROWS;
    const resumeKey = opts.resumeKey ?? null;
    const resumed = resumeKey ? (this.store.meta.resumePoint(resumeKey, source) ?? fromMs) : fromMs;
    if (resumed > fromMs) this.logger.info({ source, from: new Date(resumed).toISOString() }, 'resuming an interrupted backfill');
    // Traces that started near a slice's end, held back for the next slice (see holdRecentTraces).
    let held: { observations: ObservationRecord[]; traces?: TraceRecord[] } = { observations: [] };
    const legacyTraces = source === 'observations' && this.shape!.generation === 'legacy' && this.streams.has('traces');
    // A slice far denser than the last one (its first, or a burst) is not read to its end: past twice
    // the target it is dropped and read again shorter, so memory stays bounded whatever the data.
    const readSlice = async (w: Window): Promise<{ rows: Array<ObservationRecord | ScoreRecord>; traces?: TraceRecord[]; overflow?: boolean }> => {
      const rows: Array<ObservationRecord | ScoreRecord> = [];
      const pages = source === 'observations' ? observationPages(this.ctx(opts.signal), w) : scorePages(this.ctx(opts.signal), w);
      for await (const p of pages) {
        for (const r of p.rows) rows.push(r);
        if (rows.length > 2 * target && w.toMs - w.fromMs > MIN_SLICE_MS) return { rows, overflow: true };
      }
      if (!legacyTraces) return { rows };
      const traces: TraceRecord[] = [];
      for await (const p of tracePages(this.ctx(opts.signal), w)) traces.push(...p.rows);
      return { rows, traces };
    };
    // Slices sit on a fixed grid (whole hours, halves, …), so the same data is cut the same way
    // whatever --from says, and a fresh database produces the same bodies.
    const windowAt = (start: number): Window => ({ fromMs: start, toMs: Math.min(toMs, Math.floor(start / slice) * slice + slice) });
    let w = windowAt(Math.max(fromMs, resumed));
    let reading = w.fromMs < toMs ? readSlice(w) : null;
    while (reading) {
      opts.signal?.throwIfAborted();
      const { rows, traces, overflow } = await reading;
      if (overflow) {
        slice = nextSliceMs(slice, rows.length, w.toMs - w.fromMs, target);
        this.logger.debug({ source, rows: rows.length, sliceMs: slice }, 'slice too dense: reading it again, shorter');
        w = windowAt(w.fromMs);
        reading = readSlice(w);
        reading.catch(() => undefined); // awaited next round
        continue;
      }
      const end = w.toMs;
      // The next slice is read while this one is committed and delivered.
      slice = nextSliceMs(slice, rows.length, end - w.fromMs, target);
      const next = end < toMs ? windowAt(end) : null;
      reading = next ? readSlice(next) : null;
      reading?.catch(() => undefined); // awaited next round; an abort meanwhile must not go unhandled
      let batch: Batch;
      let resumeAt = end;
      if (source === 'observations') {
        const observations = held.observations.length ? held.observations.concat(rows as ObservationRecord[]) : (rows as ObservationRecord[]);
        const listed = traces && held.traces?.length ? held.traces.concat(traces) : traces;
        // The last slice, or more than a slice's worth held already (slices shorter than a trace's span,
        // in dense data, would otherwise hold everything): process everything as it is.
        const last = end >= toMs || observations.length > target;
        const split = last ? { ready: { observations, traces: listed }, held: { observations: [] } } : holdRecentTraces(observations, listed, new Date(end - TRACE_SPAN_MS).toISOString());
        held = split.held;
        batch = { observations: split.ready.observations, traces: split.ready.traces, scores: [] };
        if (legacyTraces) batch = await this.withTraceContext(batch, opts.signal);
        // A rerun after a crash must read the held rows again: it resumes at the oldest of them.
        for (const o of held.observations) resumeAt = Math.min(resumeAt, Date.parse(o.startTime));
        for (const t of held.traces ?? []) resumeAt = Math.min(resumeAt, Date.parse(t.timestamp));
      } else {
        batch = { observations: [], scores: rows as ScoreRecord[] };
      }
      // The pass has read everything from its start up to here (earlier slices, or a resumed run's).
      add(totals, this.commit(source, batch, { ...commitOpts, covered: { fromMs, toMs: resumeAt } }));
      if (resumeKey) this.store.meta.setResumePoint(resumeKey, source, resumeAt);
      opts.onProgress?.({ source, doneMs: end - fromMs, totalMs: toMs - fromMs, events: totals.events, inserted: totals.inserted, calls: this.client.stats.calls - callsAtStart });
      if (next) w = next;
    }
  }
}

function add(t: { events: number; inserted: number; requeued: number }, r: CommitResult): void {
  t.events += r.events;
  t.inserted += r.inserted;
  t.requeued += r.requeued;
}
