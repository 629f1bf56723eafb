/**
 * The monitors' tables: compact facts about every item the bridge reads (one row per trace,
 * observation and score: when, the fields conditions filter on, level, latency, cost, tokens,
 * value — never a body) and each monitor's state per project (severity, last value, last
 * notification). Windows are aggregated here in SQL, so evaluating a day of 100,000 items holds
 * none of them in memory. Facts are clustered by time: a window is one range scan.
 */
import type { Meta } from './meta.js';
import type { Sql } from './sql.js';

export type FactKind = 'trace' | 'observation' | 'score';

export interface Fact {
  kind: FactKind;
  id: string;
  tsMs: number;
  /** Traces: the latest end seen among their observations. */
  endMs: number | null;
  /** Observations: GENERATION, SPAN, ... */
  type: string | null;
  /** Traces and observations: the trace's name; scores: the score's name. */
  name: string | null;
  environment: string | null;
  tags: string[] | null;
  model: string | null;
  dataType: string | null;
  /** 0 DEBUG, 1 DEFAULT, 2 WARNING, 3 ERROR; a trace's is its highest observation's. */
  level: number;
  latency: number | null;
  cost: number | null;
  tokens: number | null;
  value: number | null;
}

/** The rule conditions a fact can be filtered on (a monitor's `where`, but for its project). */
export interface FactConditions {
  traceName?: string[];
  environment?: string[];
  tags?: string[];
  level?: 'WARNING' | 'ERROR';
  model?: string[];
  scoreName?: string[];
  dataType?: string;
  costAbove?: number;
  tokensAbove?: number;
  scoreBelow?: number;
  scoreAbove?: number;
}

/** Which facts a window counts. */
export interface FactFilter extends FactConditions {
  kind: FactKind;
  /** Observations of this type only (generations). */
  type?: string;
}

export type Aggregate = 'count' | 'errorRate' | 'avg' | 'min' | 'max' | 'sum' | 'p50' | 'p90' | 'p95' | 'p99';
export type FactMeasure = 'latency' | 'cost' | 'totalTokens' | 'value';

export interface WindowAggregate {
  /** null: no item with the measure in the window. */
  value: number | null;
  samples: number;
}

export interface MonitorStateRow {
  project: string;
  monitor: string;
  severity: 'ok' | 'warning' | 'alert';
  value: number | null;
  samples: number;
  windowEndMs: number | null;
  evaluatedAt: number | null;
  /** Window end of the last notification (for re-notify). */
  notifiedAtMs: number | null;
  /** The last windows' values, oldest first. */
  recent: Array<number | null>;
  /** The monitor as last evaluated (JSON), so that one removed from the config can still be resolved. */
  spec: string;
}

const MEASURE_COLUMN: Record<FactMeasure, string> = { latency: 'latency', cost: 'cost', totalTokens: 'tokens', value: 'value' };
const LEVEL_RANK = { WARNING: 2, ERROR: 3 } as const;

/** A `*` pattern as a case-sensitive GLOB; other GLOB characters taken literally. */
function globOf(pattern: string): string {
  return pattern.replace(/[[?]/g, (c) => `[${c}]`);
}

function nameCondition(column: string, patterns: string[], params: unknown[]): string {
  const parts = patterns.map((p) => {
    params.push(p.includes('*') ? globOf(p) : p);
    return p.includes('*') ? `${column} GLOB ?` : `${column} = ?`;
  });
  return `(${parts.join(' OR ')})`;
}

/** The WHERE clause (after project, kind and the time range) and its parameters. */
function filterSql(f: FactFilter): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const parts: string[] = [];
  if (f.type) {
    parts.push('type = ?');
    params.push(f.type);
  }
  if (f.traceName) parts.push(nameCondition('name', f.traceName, params));
  if (f.scoreName) parts.push(nameCondition('name', f.scoreName, params));
  if (f.environment) parts.push(nameCondition('environment', f.environment, params));
  if (f.model) parts.push(nameCondition('model', f.model, params));
  for (const tag of f.tags ?? []) {
    parts.push('EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?)');
    params.push(tag);
  }
  if (f.level) {
    parts.push('level >= ?');
    params.push(LEVEL_RANK[f.level]);
  }
  if (f.dataType) {
    parts.push('data_type = ?');
    params.push(f.dataType);
  }
  const bound = (sql: string, v: number | undefined): void => {
    if (v === undefined) return;
    parts.push(sql);
    params.push(v);
  };
  bound('cost > ?', f.costAbove);
  bound('tokens > ?', f.tokensAbove);
  bound('value < ?', f.scoreBelow);
  bound('value > ?', f.scoreAbove);
  return { sql: parts.length ? ` AND ${parts.join(' AND ')}` : '', params };
}

const PERCENTILES: Partial<Record<Aggregate, number>> = { p50: 0.5, p90: 0.9, p95: 0.95, p99: 0.99 };

const PUT_TRACE = `INSERT INTO monitor_facts (project, kind, id, ts_ms, end_ms, type, name, environment, tags, model, data_type, level, latency, cost, tokens, value)
  VALUES (@project, 'trace', @id, @tsMs, @endMs, NULL, @name, @environment, @tags, NULL, NULL, @level, @latency, NULL, NULL, NULL)
  ON CONFLICT (project, kind, id) DO UPDATE SET
    ts_ms = MIN(ts_ms, excluded.ts_ms),
    end_ms = MAX(COALESCE(end_ms, excluded.end_ms), COALESCE(excluded.end_ms, end_ms)),
    name = COALESCE(excluded.name, name), environment = COALESCE(excluded.environment, environment), tags = COALESCE(excluded.tags, tags),
    level = MAX(level, excluded.level),
    latency = (MAX(COALESCE(end_ms, excluded.end_ms), COALESCE(excluded.end_ms, end_ms)) - MIN(ts_ms, excluded.ts_ms)) / 1000.0
  WHERE excluded.ts_ms < ts_ms OR (excluded.end_ms IS NOT NULL AND (end_ms IS NULL OR excluded.end_ms > end_ms))
    OR (excluded.name IS NOT NULL AND excluded.name IS NOT name) OR (excluded.environment IS NOT NULL AND excluded.environment IS NOT environment)
    OR (excluded.tags IS NOT NULL AND excluded.tags IS NOT tags) OR excluded.level > level`;
/**
 * An item read again (a late-data sweep, an update) replaces its row. Either upsert leaves a row
 * that would not change alone (the WHERE), so a sweep re-reading unchanged items writes nothing.
 */
const PUT_ITEM = `INSERT INTO monitor_facts (project, kind, id, ts_ms, end_ms, type, name, environment, tags, model, data_type, level, latency, cost, tokens, value)
  VALUES (@project, @kind, @id, @tsMs, @endMs, @type, @name, @environment, @tags, @model, @dataType, @level, @latency, @cost, @tokens, @value)
  ON CONFLICT (project, kind, id) DO UPDATE SET ts_ms = excluded.ts_ms, end_ms = excluded.end_ms, type = excluded.type, name = excluded.name,
    environment = excluded.environment, tags = excluded.tags, model = excluded.model, data_type = excluded.data_type, level = excluded.level,
    latency = excluded.latency, cost = excluded.cost, tokens = excluded.tokens, value = excluded.value
  WHERE (ts_ms, end_ms, type, name, environment, tags, model, data_type, level, latency, cost, tokens, value)
    IS NOT (excluded.ts_ms, excluded.end_ms, excluded.type, excluded.name, excluded.environment, excluded.tags, excluded.model,
            excluded.data_type, excluded.level, excluded.latency, excluded.cost, excluded.tokens, excluded.value)`;
const PRUNE = 'DELETE FROM monitor_facts WHERE project = ? AND kind = ? AND ts_ms < ?';
const FACT_PROJECTS = `WITH RECURSIVE p(project) AS (SELECT MIN(project) FROM monitor_facts
    UNION ALL SELECT (SELECT MIN(project) FROM monitor_facts WHERE project > p.project) FROM p WHERE p.project IS NOT NULL)
  SELECT project FROM p WHERE project IS NOT NULL`;
const STATE_GET = 'SELECT * FROM monitor_state WHERE project = ? AND monitor = ?';
const STATE_ALL = 'SELECT * FROM monitor_state ORDER BY project, monitor';
const STATE_PUT = `INSERT INTO monitor_state (project, monitor, severity, value, samples, window_end_ms, evaluated_at, notified_at_ms, recent, spec)
  VALUES (@project, @monitor, @severity, @value, @samples, @windowEndMs, @evaluatedAt, @notifiedAtMs, @recent, @spec)
  ON CONFLICT (project, monitor) DO UPDATE SET severity = excluded.severity, value = excluded.value, samples = excluded.samples,
    window_end_ms = excluded.window_end_ms, evaluated_at = excluded.evaluated_at, notified_at_ms = excluded.notified_at_ms,
    recent = excluded.recent, spec = excluded.spec`;
const STATE_DELETE = 'DELETE FROM monitor_state WHERE project = ? AND monitor = ?';
/**
 * A sink's notifications of one monitor in one project not yet taken for sending, through the due
 * index by sink. A backlog of other events may wait there: the CASE makes sure only a monitor
 * event's body is read and parsed (SQLite does not promise an order for the terms of an AND).
 */
const OPEN_NOTIFICATIONS = `SELECT o.seq FROM outbox o JOIN events e ON e.seq = o.event_seq
  WHERE o.sink = ? AND o.status IN ('queued', 'retrying')
    AND CASE WHEN e.type IN ('monitor.alert', 'monitor.warning', 'monitor.resolved')
      THEN json_extract(e.body, '$.data.projectId') = ? AND json_extract(e.body, '$.data.monitor') = ? ELSE 0 END`;
/**
 * A superseded notification is closed as delivered with this note (last_error) and was never sent:
 * it is not sent again either (Resend), which could reopen an incident resolved since.
 */
export const SUPERSEDED_NOTE = 'superseded by ';
export function isSuperseded(d: { status: string; lastError: string | null }): boolean {
  return d.status === 'delivered' && d.lastError?.startsWith(SUPERSEDED_NOTE) === true;
}
const SUPERSEDE = `UPDATE outbox SET status = 'delivered', delivered_at = @now, updated_at = @now, owner = NULL, lease_until = NULL, last_error = @note
  WHERE seq = @seq AND status IN ('queued', 'retrying')`;
/** The newest notification written after this row for the same sink, project and monitor: its event id. */
const NEWER_NOTIFICATION = `SELECT e2.id FROM outbox o JOIN events e ON e.seq = o.event_seq
  JOIN outbox o2 ON o2.sink = o.sink AND o2.seq > o.seq JOIN events e2 ON e2.seq = o2.event_seq
  WHERE o.seq = ? AND o.status = 'retrying' AND e.type IN ('monitor.alert', 'monitor.warning', 'monitor.resolved')
    AND CASE WHEN e2.type IN ('monitor.alert', 'monitor.warning', 'monitor.resolved')
      THEN json_extract(e2.body, '$.data.projectId') = json_extract(e.body, '$.data.projectId')
        AND json_extract(e2.body, '$.data.monitor') = json_extract(e.body, '$.data.monitor') ELSE 0 END
  ORDER BY o2.seq DESC LIMIT 1`;
const SUPERSEDE_ATTEMPT = `INSERT INTO attempts (outbox_seq, at, duration_ms, outcome, status_code, error, response) VALUES (?, ?, 0, 'delivered', NULL, ?, NULL)`;

export class MonitorTables {
  constructor(
    private readonly sql: Sql,
    private readonly meta: Meta,
  ) {}

  /**
   * Must run inside write(), with the facts of [fromMs, toMs): keeps the one range of time facts are
   * complete for. A range touching it extends it (the head reads, a backfill reaching it); one past
   * it with a gap starts it again; one wholly before it says nothing about what lies between.
   */
  noteFactsRead(project: string, source: string, fromMs: number, toMs: number): void {
    const r = this.meta.factsRead(project, source);
    if (r && fromMs <= r.until && toMs >= r.since) this.meta.setFactsRead(project, source, { since: Math.min(r.since, fromMs), until: Math.max(r.until, toMs) });
    else if (!r || fromMs > r.until) this.meta.setFactsRead(project, source, { since: fromMs, until: toMs });
  }

  /** From when this project's facts of this poll source are complete; null: none kept yet. */
  factsSince(project: string, source: string): number | null {
    return this.meta.factsRead(project, source)?.since ?? null;
  }

  /** Must run inside the store's write(): the facts of one committed slice, in its transaction. */
  putFacts(project: string, facts: readonly Fact[]): void {
    for (const f of facts) {
      const row = {
        project,
        kind: f.kind,
        id: f.id,
        tsMs: f.tsMs,
        endMs: f.endMs,
        type: f.type,
        name: f.name,
        environment: f.environment,
        tags: f.tags && f.tags.length ? JSON.stringify(f.tags) : null,
        model: f.model,
        dataType: f.dataType,
        level: f.level,
        latency: f.latency,
        cost: f.cost,
        tokens: f.tokens,
        value: f.value,
      };
      this.sql.prepare(f.kind === 'trace' ? PUT_TRACE : PUT_ITEM).run(row);
    }
  }

  /** One window's aggregate over the facts that pass the filter. */
  aggregate(project: string, filter: FactFilter, metric: Aggregate, measure: FactMeasure | null, fromMs: number, toMs: number): WindowAggregate {
    const f = filterSql(filter);
    const base = `FROM monitor_facts WHERE project = ? AND kind = ? AND ts_ms >= ? AND ts_ms < ?${f.sql}`;
    const params = [project, filter.kind, fromMs, toMs, ...f.params];
    if (metric === 'count') {
      const n = this.sql.pluck(`SELECT COUNT(*) ${base}`).get(...params) as number;
      return { value: n, samples: n };
    }
    if (metric === 'errorRate') {
      const r = this.sql.prepare(`SELECT COUNT(*) AS n, SUM(level >= 3) AS errors ${base}`).get(...params) as { n: number; errors: number | null };
      return { value: r.n ? (r.errors ?? 0) / r.n : null, samples: r.n };
    }
    const col = MEASURE_COLUMN[measure ?? 'value'];
    const withMeasure = `${base} AND ${col} IS NOT NULL`;
    const p = PERCENTILES[metric];
    if (p !== undefined) {
      const n = this.sql.pluck(`SELECT COUNT(*) ${withMeasure}`).get(...params) as number;
      if (!n) return { value: null, samples: 0 };
      // Nearest rank: the smallest value with at least p of the items at or below it.
      const k = Math.max(0, Math.ceil(p * n) - 1);
      const v = this.sql.pluck(`SELECT ${col} ${withMeasure} ORDER BY ${col} LIMIT 1 OFFSET ?`).get(...params, k) as number;
      return { value: v, samples: n };
    }
    const fn = { avg: 'AVG', min: 'MIN', max: 'MAX', sum: 'SUM' }[metric as 'avg' | 'min' | 'max' | 'sum'];
    const r = this.sql.prepare(`SELECT COUNT(*) AS n, ${fn}(${col}) AS v ${withMeasure}`).get(...params) as { n: number; v: number | null };
    return { value: r.n ? r.v : null, samples: r.n };
  }

  /** Forgets a project's facts older than the longest window needs (a range of the time-ordered key). */
  pruneFacts(project: string, beforeMs: number): number {
    let n = 0;
    for (const kind of ['trace', 'observation', 'score'] as const) n += this.sql.prepare(PRUNE).run(project, kind, beforeMs).changes;
    return n;
  }

  /** The projects facts are kept for, one index probe each (a skip scan of the key). */
  factProjects(): string[] {
    return this.sql.pluck(FACT_PROJECTS).all() as string[];
  }

  getState(project: string, monitor: string): MonitorStateRow | null {
    const r = this.sql.prepare(STATE_GET).get(project, monitor) as Record<string, unknown> | undefined;
    return r ? stateOf(r) : null;
  }

  states(): MonitorStateRow[] {
    return (this.sql.prepare(STATE_ALL).all() as Array<Record<string, unknown>>).map(stateOf);
  }

  /** Must run inside write(), with the notification it decides, if any: see MonitorRunner. */
  putState(s: MonitorStateRow): void {
    this.sql.prepare(STATE_PUT).run({ ...s, recent: JSON.stringify(s.recent) });
  }

  /**
   * Must run inside write(), with the newer notification queued: closes this sink's older
   * notifications of the monitor that are still waiting (a trigger retrying while the monitor already
   * recovered), so the newer one cannot be overtaken by them. They are closed unsent, and say so in
   * their last error and their attempt log. Returns how many.
   */
  supersedeNotifications(project: string, monitor: string, sink: string, byEventId: string, now = Date.now()): number {
    const seqs = this.sql.pluck(OPEN_NOTIFICATIONS).all(sink, project, monitor) as number[];
    const note = `${SUPERSEDED_NOTE}${byEventId} before it was sent: not sent`;
    let n = 0;
    for (const seq of seqs) {
      if (!this.sql.prepare(SUPERSEDE).run({ seq, now, note }).changes) continue;
      this.sql.prepare(SUPERSEDE_ATTEMPT).run(seq, now, note);
      n++;
    }
    return n;
  }

  /**
   * A notification that failed while a newer one for its monitor was queued (or already sent) is
   * closed unsent instead of retried, so it cannot overtake that one: an attempt in flight when the
   * newer one was written escapes supersedeNotifications. Returns whether it was closed.
   */
  supersedeIfNewer(seq: number, now = Date.now()): boolean {
    const newer = this.sql.pluck(NEWER_NOTIFICATION).get(seq) as string | undefined;
    if (newer === undefined) return false;
    const note = `${SUPERSEDED_NOTE}${newer} before it was sent: not sent`;
    if (!this.sql.prepare(SUPERSEDE).run({ seq, now, note }).changes) return false;
    this.sql.prepare(SUPERSEDE_ATTEMPT).run(seq, now, note);
    return true;
  }

  deleteState(project: string, monitor: string): void {
    this.sql.prepare(STATE_DELETE).run(project, monitor);
  }
}

function stateOf(r: Record<string, unknown>): MonitorStateRow {
  return {
    project: r.project as string,
    monitor: r.monitor as string,
    severity: r.severity as MonitorStateRow['severity'],
    value: (r.value as number | null) ?? null,
    samples: (r.samples as number) ?? 0,
    windowEndMs: (r.window_end_ms as number | null) ?? null,
    evaluatedAt: (r.evaluated_at as number | null) ?? null,
    notifiedAtMs: (r.notified_at_ms as number | null) ?? null,
    recent: JSON.parse((r.recent as string) || '[]') as Array<number | null>,
    spec: r.spec as string,
  };
}
