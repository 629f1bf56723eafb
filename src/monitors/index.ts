/**
 * Monitors: thresholds on aggregates over windows of what the bridge reads (error rate, score mean,
 * p95 latency, cost, count), notified through the sinks like any event.
 *
 * The poller records compact facts of every item it commits (src/monitors/facts.ts, in the slice's
 * own transaction). Here a timer evaluates each monitor per project once its latest window is due:
 * when every stream it reads has been polled past the window's end plus `delay`. The aggregate is
 * computed in SQL; the new severity and the notification it causes are written in one transaction
 * (state row + outbox rows), so a crash can neither lose nor repeat a notification. After downtime
 * only the latest window is evaluated. `backfill` records facts but never evaluates.
 */
import type { Logger } from 'pino';
import type { Store } from '../store/index.js';
import type { FactFilter, WindowAggregate } from '../store/monitors.js';
import { dueWindowEnd, notifies, reportedValue, severityOf } from './evaluate.js';
import { buildMonitorEvent, type MonitorEvent } from './events.js';
import { factsHorizonMs, globMatch, type MonitorSeverity, type MonitorSource, type MonitorSpec } from './spec.js';
import { oneLine } from '../errors.js';

export { compileMonitors, factsHorizonMs, monitorSchema, MONITOR_FIELDS, type MonitorSpec } from './spec.js';
export { factsOf, WrittenFacts } from './facts.js';
export { isMonitorEvent } from './events.js';
export { formatMonitorStatus, monitorStatuses, type MonitorStatus } from './status.js';

/** The poll cursor ("source" in the cursors table) that holds each monitor source's items. */
const CURSOR_SOURCE: Record<MonitorSource, string> = { traces: 'observations', generations: 'observations', observations: 'observations', scores: 'scores' };
/** How many windows' values a state keeps for the trend in messages. */
const RECENT = 6;

export function filterOf(spec: MonitorSpec): FactFilter {
  const { project: _project, ...where } = spec.where;
  if (spec.source === 'scores') return { kind: 'score', ...where };
  if (spec.source === 'traces') return { kind: 'trace', ...where };
  return { kind: 'observation', ...(spec.source === 'generations' ? { type: 'GENERATION' } : {}), ...where };
}

export function cursorSource(spec: Pick<MonitorSpec, 'source'>): string {
  return CURSOR_SOURCE[spec.source];
}

/** Whether a monitor applies to a project: `where.project` names its id or its configured name (null: none). */
export function matchesProject(spec: MonitorSpec, projectId: string, projectName: string | null): boolean {
  const patterns = spec.where.project;
  return !patterns || patterns.some((p) => globMatch(p, projectId) || (projectName !== null && globMatch(p, projectName)));
}

/** The window a monitor would be evaluated on now in a project, or null when none is due yet. */
export function dueWindow(store: Store, projectId: string, spec: MonitorSpec): number | null {
  return dueWindowEnd(spec, store.getCursor(projectId, CURSOR_SOURCE[spec.source]).cursorMs);
}

/**
 * Whether the facts kept cover the whole window: not before the first read of this project (a new
 * database, an upgrade, a new project, BRIDGE_START_FROM), unless a backfill read back that far. A
 * partial window is not due: evaluated, a `count <` or `sum` monitor would fire on it.
 */
export function factsCover(store: Store, projectId: string, spec: MonitorSpec, windowEndMs: number): boolean {
  const since = store.monitors.factsSince(projectId, cursorSource(spec));
  return since !== null && since <= windowEndMs - spec.windowMs;
}

export interface Evaluation {
  projectId: string;
  monitor: string;
  windowEndMs: number;
  aggregate: WindowAggregate;
  /** What the window reports: null is no data. */
  value: number | null;
  severity: MonitorSeverity;
  previousSeverity: MonitorSeverity;
  event: MonitorEvent | null;
}

/** Reads one window of a monitor (no writes): for `check` and for the evaluation below. */
export function measureWindow(store: Store, projectId: string, spec: MonitorSpec, windowEndMs: number): { aggregate: WindowAggregate; value: number | null } {
  const aggregate = store.monitors.aggregate(projectId, filterOf(spec), spec.metric, spec.of, windowEndMs - spec.windowMs, windowEndMs);
  return { aggregate, value: reportedValue(spec, aggregate.value, aggregate.samples) };
}

/**
 * Must run inside write(). On alert sinks (one incident per monitor: PagerDuty, Slack) the monitor's
 * older notifications still waiting are superseded: a trigger still retrying must not be sent after
 * the resolve that follows it, which would leave the incident open.
 */
function queueNotification(store: Store, event: MonitorEvent, sinks: readonly string[], alertSinks: readonly string[], now: number): void {
  for (const sink of sinks) if (alertSinks.includes(sink)) store.monitors.supersedeNotifications(event.data.projectId, event.data.monitor, sink, event.id, now);
  store.enqueue([{ id: event.id, type: event.event, ts: event.timestamp, body: JSON.stringify(event), sinks: [...sinks] }], {}, now);
}

/** How many missed windows one evaluation catches up on while running; beyond that, the latest only. */
const CATCH_UP = 60;

/**
 * Evaluates a monitor's latest due window in one project, if it has not been evaluated yet, and
 * writes the state and any notification in one transaction. Returns null when nothing was due.
 */
export function evaluateMonitor(store: Store, projectId: string, spec: MonitorSpec, langfuseBaseUrl: string, now = Date.now(), alertSinks: readonly string[] = []): Evaluation | null {
  return evaluateDue(store, projectId, spec, langfuseBaseUrl, { now, alertSinks }).at(-1) ?? null;
}

/**
 * Evaluates the due windows not evaluated yet, oldest first: with `catchUp` (a running daemon, whose
 * `every` may be shorter than a poll) each window after the last one evaluated, so none is skipped;
 * without it (the first evaluation after a start: downtime) only the latest.
 */
export function evaluateDue(
  store: Store,
  projectId: string,
  spec: MonitorSpec,
  langfuseBaseUrl: string,
  o: { now?: number; alertSinks?: readonly string[]; catchUp?: boolean; projectName?: string | null } = {},
): Evaluation[] {
  if (!matchesProject(spec, projectId, o.projectName ?? null)) return [];
  const end = dueWindow(store, projectId, spec);
  const last = store.monitors.getState(projectId, spec.name)?.windowEndMs ?? null;
  if (end === null || (last !== null && last >= end)) return [];
  const ends: number[] = [];
  if (o.catchUp && last !== null && end - last <= CATCH_UP * spec.everyMs) for (let e = last + spec.everyMs; e < end; e += spec.everyMs) ends.push(e);
  ends.push(end);
  const out: Evaluation[] = [];
  for (const e of ends) {
    if (!factsCover(store, projectId, spec, e)) continue;
    const done = evaluateWindow(store, projectId, spec, e, langfuseBaseUrl, o.now ?? Date.now(), o.alertSinks ?? []);
    if (done) out.push(done);
  }
  return out;
}

function evaluateWindow(store: Store, projectId: string, spec: MonitorSpec, end: number, langfuseBaseUrl: string, now: number, alertSinks: readonly string[]): Evaluation | null {
  // The aggregate is read outside the write transaction: the window is closed, nothing changes it.
  const { aggregate, value } = measureWindow(store, projectId, spec, end);
  return store.write(() => {
    const state = store.monitors.getState(projectId, spec.name);
    if (state?.windowEndMs != null && state.windowEndMs >= end) return null;
    const previous = state?.severity ?? 'ok';
    const severity = severityOf(spec, value, previous);
    const recent = [...(state?.recent ?? []), value].slice(-RECENT);
    const notify = notifies(spec, previous, severity, state?.notifiedAtMs ?? null, end);
    let event: MonitorEvent | null = null;
    if (notify) {
      event = buildMonitorEvent({ projectId, spec, severity, previousSeverity: previous, value, samples: aggregate.samples, windowEndMs: end, recent, langfuseBaseUrl });
      queueNotification(store, event, spec.sinks, alertSinks, now);
    }
    store.monitors.putState({
      project: projectId,
      monitor: spec.name,
      severity,
      value,
      samples: aggregate.samples,
      windowEndMs: end,
      evaluatedAt: now,
      notifiedAtMs: notify ? end : (state?.notifiedAtMs ?? null),
      recent,
      spec: JSON.stringify(spec),
    });
    return { projectId, monitor: spec.name, windowEndMs: end, aggregate, value, severity, previousSeverity: previous, event };
  });
}

/**
 * Incidents the config no longer leads to: a monitor removed while firing is resolved once (to the
 * sinks it notified that still exist) and its state forgotten; one edited while firing so that it no
 * longer applies to the project likewise; one edited to other sinks is resolved on the sinks it
 * dropped (the state keeps the monitor as last evaluated, its sinks included). Returns the resolve
 * events queued.
 */
export function resolveRemoved(
  store: Store,
  monitors: readonly MonitorSpec[],
  sinkNames: readonly string[],
  langfuseBaseUrlOf: (projectId: string) => string,
  now = Date.now(),
  alertSinks: readonly string[] = [],
  projectName: (projectId: string) => string | null = () => null,
): MonitorEvent[] {
  const byName = new Map(monitors.map((m) => [m.name, m]));
  const applies = (spec: MonitorSpec, projectId: string): boolean => matchesProject(spec, projectId, projectName(projectId));
  const stale = store.monitors.states().filter((s) => {
    const spec = byName.get(s.monitor);
    return !spec || (s.severity !== 'ok' && (!applies(spec, s.project) || droppedSinks(s, spec).length > 0));
  });
  if (!stale.length) return [];
  return store.write(() => {
    const events: MonitorEvent[] = [];
    for (const s of stale) {
      const current = store.monitors.getState(s.project, s.monitor);
      if (!current) continue;
      const spec = byName.get(s.monitor);
      const gone = !spec || !applies(spec, s.project);
      const old = JSON.parse(current.spec) as MonitorSpec;
      const sinks = (gone ? old.sinks : droppedSinks(current, spec)).filter((n) => sinkNames.includes(n));
      if (current.severity !== 'ok') {
        const event = buildMonitorEvent({
          projectId: s.project,
          spec: old,
          severity: 'ok',
          previousSeverity: current.severity,
          value: current.value,
          samples: current.samples,
          windowEndMs: current.windowEndMs ?? Math.floor(now / old.everyMs) * old.everyMs,
          recent: current.recent,
          langfuseBaseUrl: langfuseBaseUrlOf(s.project),
          removed: !spec,
        });
        if (sinks.length) queueNotification(store, event, sinks, alertSinks, now);
        events.push(event);
      }
      if (gone) store.monitors.deleteState(s.project, s.monitor);
      else store.monitors.putState({ ...current, spec: JSON.stringify(spec) });
    }
    return events;
  });
}

/** The sinks a firing monitor notified that its edited version no longer names. */
function droppedSinks(state: { spec: string }, spec: MonitorSpec): string[] {
  const old = JSON.parse(state.spec) as Pick<MonitorSpec, 'sinks'>;
  return old.sinks.filter((n) => !spec.sinks.includes(n));
}

export interface MonitorRunnerOptions {
  store: Store;
  monitors: readonly MonitorSpec[];
  sinkNames: readonly string[];
  /** The sinks that keep one incident per monitor (PagerDuty, Slack): see queueNotification. */
  alertSinks?: readonly string[];
  /** The projects being polled, with their Langfuse host; a project whose id is not known yet is left out. */
  projects(): Array<{ projectId: string; langfuseBaseUrl: string }>;
  /** A project id's configured name (`projects[].name`), also before it connects, or null: `where.project` may name either. */
  projectName?(projectId: string): string | null;
  /** For links of monitors resolved before their project is connected. */
  defaultLangfuseBaseUrl: string;
  logger: Logger;
  /** Told after notifications were queued (wake the dispatcher). */
  onQueued?(events: MonitorEvent[]): void;
  /** Told of every evaluation (metrics). */
  onEvaluated?(e: Evaluation): void;
  /** Real timers by default; tests pass a shorter tick. */
  tickMs?: number;
}

const PRUNE_EVERY_MS = 3_600_000;

/** The daemon's evaluation timer. */
export class MonitorRunner {
  private timer: NodeJS.Timeout | null = null;
  private lastPrune = 0;
  private failing = false;
  /** Project and monitor pairs evaluated by this process: later evaluations catch up on missed windows. */
  private readonly running = new Set<string>();
  /** A cursor moved by an earlier process may be stale: a project is evaluated once polled by this one. */
  private readonly startedAt = Date.now();

  constructor(private readonly o: MonitorRunnerOptions) {}

  start(): void {
    const urls = new Map(this.o.projects().map((p) => [p.projectId, p.langfuseBaseUrl]));
    const resolved = resolveRemoved(this.o.store, this.o.monitors, this.o.sinkNames, (id) => urls.get(id) ?? this.o.defaultLangfuseBaseUrl, Date.now(), this.o.alertSinks, (id) => this.nameOf(id));
    for (const e of resolved) this.o.logger.info({ monitor: e.data.monitor, projectId: e.data.projectId }, e.data.removed ? 'monitor removed from the config while firing: resolved' : 'monitor edited while firing: resolved where it no longer notifies');
    if (resolved.length) this.o.onQueued?.(resolved);
    const smallest = Math.min(...this.o.monitors.map((m) => m.everyMs), 60_000);
    const tick = this.o.tickMs ?? Math.max(1000, Math.min(5000, smallest / 10));
    this.timer = setInterval(() => this.tick(), tick);
    this.timer.unref();
  }

  /** Evaluates every due window now; what `run` does on each tick. */
  tick(now = Date.now()): Evaluation[] {
    const done: Evaluation[] = [];
    const queued: MonitorEvent[] = [];
    try {
      for (const p of this.o.projects()) {
        for (const spec of this.o.monitors) {
          if ((this.o.store.getCursor(p.projectId, cursorSource(spec)).lastOkAt ?? 0) < this.startedAt) continue;
          const key = `${p.projectId}\u0000${spec.name}`;
          const evaluated = evaluateDue(this.o.store, p.projectId, spec, p.langfuseBaseUrl, { now, alertSinks: this.o.alertSinks, catchUp: this.running.has(key), projectName: this.nameOf(p.projectId) });
          if (evaluated.length) this.running.add(key);
          for (const e of evaluated) {
            done.push(e);
            this.o.onEvaluated?.(e);
            if (e.event) {
              queued.push(e.event);
              this.o.logger.info({ monitor: spec.name, projectId: p.projectId, severity: e.severity, value: e.value, windowEnd: new Date(e.windowEndMs).toISOString() }, `monitor ${e.event.event}`);
            }
          }
        }
      }
      if (now - this.lastPrune > PRUNE_EVERY_MS) {
        this.lastPrune = now;
        const pruned = this.prune(now);
        if (pruned) this.o.logger.debug({ facts: pruned }, 'pruned monitor facts older than the longest window');
      }
      if (this.failing) this.o.logger.info('monitor evaluation works again');
      this.failing = false;
    } catch (err) {
      // Said once per outage; the next tick tries again (the state says which windows are done).
      if (!this.failing) this.o.logger.warn({ err: oneLine(err) }, 'monitor evaluation failed; trying again');
      this.failing = true;
    }
    if (queued.length) this.o.onQueued?.(queued);
    return done;
  }

  /**
   * Forgets facts older than the longest window needs, for every project facts are kept for (one
   * not connected now included), counted back from where its polls are (a lagging poller's windows
   * still need theirs), or from now for a project only backfilled.
   */
  private prune(now: number): number {
    const store = this.o.store;
    const polledTo = new Map<string, number>();
    for (const c of store.allCursors()) if (c.cursorMs !== null) polledTo.set(c.project, Math.min(polledTo.get(c.project) ?? now, c.cursorMs));
    const keep = factsHorizonMs(this.o.monitors);
    return store.write(() => store.monitors.factProjects().reduce((n, project) => n + store.monitors.pruneFacts(project, Math.min(now, polledTo.get(project) ?? now) - keep), 0));
  }

  private nameOf(projectId: string): string | null {
    return this.o.projectName?.(projectId) ?? null;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
