/**
 * A monitor as the config file writes it, and as the bridge runs it: one zod schema (embedded in the
 * config file's JSON Schema) and `compileMonitors`, which checks what a schema cannot (which
 * conditions and measures a source's items carry, that its stream is polled, that the sinks exist)
 * and turns each entry into a MonitorSpec, defaults filled in. Every problem is one line naming the
 * monitor and the field.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import type { FactConditions } from '../store/monitors.js';

export const SOURCES = ['traces', 'generations', 'observations', 'scores'] as const;
export type MonitorSource = (typeof SOURCES)[number];
export const METRICS = ['count', 'errorRate', 'avg', 'min', 'max', 'sum', 'p50', 'p90', 'p95', 'p99'] as const;
export type MonitorMetric = (typeof METRICS)[number];
export const MEASURES = ['latency', 'cost', 'totalTokens', 'value'] as const;
export type MonitorMeasure = (typeof MEASURES)[number];
export const OPS = ['>', '>=', '<', '<=', '==', '!='] as const;
export type MonitorOp = (typeof OPS)[number];
export const NO_DATA = ['ok', 'keep', 'alert'] as const;
export type NoDataMode = (typeof NO_DATA)[number];
/** `ok` is healthy; the others fire. */
export type MonitorSeverity = 'ok' | 'warning' | 'alert';
/** A severity as a number, for /metrics: 0 ok, 1 warning, 2 alert. */
export const SEVERITY_NUMBER: Record<MonitorSeverity, number> = { ok: 0, warning: 1, alert: 2 };

/** The rule conditions a monitor's `where` may use, by the sources whose items carry them. */
export interface MonitorWhere extends FactConditions {
  project?: string[];
}

export interface MonitorSpec {
  name: string;
  source: MonitorSource;
  where: MonitorWhere;
  metric: MonitorMetric;
  of: MonitorMeasure | null;
  /** The durations as written (`15m`), for messages, and in milliseconds. */
  windowText: string;
  windowMs: number;
  everyMs: number;
  delayMs: number;
  op: MonitorOp;
  alert: number;
  warning: number | null;
  minSamples: number;
  noData: NoDataMode;
  renotifyMinutes: number | null;
  sinks: string[];
}

const DURATION = /^(\d+)(s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `30s`, `15m`, `1h`, `1d` in milliseconds; null when it is none of those. */
export function parseDuration(text: string): number | null {
  const m = DURATION.exec(text.trim());
  if (!m) return null;
  const ms = Number(m[1]) * UNIT_MS[m[2]!]!;
  return ms > 0 ? ms : null;
}

const duration = z.string().regex(/^\s*[1-9]\d*(s|m|h|d)\s*$/);
/** `0`, `0s`, `0m`, ...: no delay. */
const ZERO = /^\s*0+(s|m|h|d)?\s*$/;
const stringOrList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

export const monitorSchema = z
  .object({
    name: z.string().trim().min(1),
    source: z.enum(SOURCES),
    where: z
      .object({
        project: stringOrList.optional(),
        traceName: stringOrList.optional(),
        environment: stringOrList.optional(),
        tags: z.array(z.string().min(1)).min(1).optional(),
        level: z.enum(['WARNING', 'ERROR']).optional(),
        model: stringOrList.optional(),
        scoreName: stringOrList.optional(),
        dataType: z.string().min(1).optional(),
        costAbove: z.number().min(0).optional(),
        tokensAbove: z.number().min(0).optional(),
        scoreBelow: z.number().optional(),
        scoreAbove: z.number().optional(),
      })
      .strict()
      .optional(),
    metric: z.enum(METRICS),
    of: z.enum(MEASURES).optional(),
    window: duration,
    every: duration.optional(),
    delay: z.union([duration, z.string().regex(ZERO)]).optional(),
    op: z.enum(OPS),
    alert: z.number(),
    warning: z.number().optional(),
    minSamples: z.number().int().min(1).optional(),
    noData: z.enum(NO_DATA).optional(),
    renotifyMinutes: z.number().int().min(1).optional(),
    sinks: z.array(z.string().min(1)).min(1),
  })
  .strict();
type RawMonitor = z.infer<typeof monitorSchema>;

/** What each field must be, in the words of the error message (and the JSON Schema's descriptions). */
export const MONITOR_FIELDS: Record<string, string> = {
  '': 'an object like {"name": "rag-errors", "source": "traces", "metric": "errorRate", "window": "15m", "op": ">", "alert": 0.05, "sinks": ["slack"]}',
  name: 'a non-empty string, unique among monitors',
  source: `one of ${SOURCES.join(', ')}`,
  where: 'an object of rule conditions such as {"traceName": "rag-*", "environment": "production"}',
  'where.project': 'a project\'s configured name (projects[].name) or Langfuse project id, or a list of them (* wildcards)',
  'where.traceName': 'a trace name or a list of them (* wildcards)',
  'where.environment': 'an environment name or a list of them',
  'where.tags': 'a non-empty list of tags (all must be present)',
  'where.level': 'one of "WARNING", "ERROR" (that level or higher)',
  'where.model': 'a model name or a list of them (* wildcards)',
  'where.scoreName': 'a score name or a list of them (* wildcards)',
  'where.dataType': 'a score data type such as "NUMERIC"',
  'where.costAbove': 'a number of USD, 0 or more',
  'where.tokensAbove': 'a number of tokens, 0 or more',
  'where.scoreBelow': 'a number',
  'where.scoreAbove': 'a number',
  metric: `one of ${METRICS.join(', ')}`,
  of: `one of ${MEASURES.join(', ')} (latency in seconds)`,
  window: 'a duration such as "30s", "15m", "1h", "1d"',
  every: 'a duration such as "1m" (default 1m): windows end on a grid of it',
  delay: 'a duration such as "2m", or 0 (default 2m): how long after its end a window waits for late data',
  op: `one of ${OPS.join(', ')}`,
  alert: 'a number: the threshold that fires an alert',
  warning: 'a number: the threshold that fires a warning',
  minSamples: 'a whole number from 1 up (default 1): fewer items in a window is no data',
  noData: `one of ${NO_DATA.join(', ')} (default ok)`,
  renotifyMinutes: 'a whole number of minutes from 1 up: notify again while still firing',
  sinks: 'a non-empty list of sink names such as ["slack"]',
};

/** Which `where` conditions each source's items carry. */
const WHERE_BY_SOURCE: Record<MonitorSource, Array<keyof MonitorWhere>> = {
  traces: ['project', 'traceName', 'environment', 'tags', 'level'],
  generations: ['project', 'traceName', 'environment', 'tags', 'level', 'model', 'costAbove', 'tokensAbove'],
  observations: ['project', 'traceName', 'environment', 'tags', 'level', 'model', 'costAbove', 'tokensAbove'],
  scores: ['project', 'scoreName', 'dataType', 'scoreBelow', 'scoreAbove'],
};
/** Which measures each source's items carry. */
const MEASURES_BY_SOURCE: Record<MonitorSource, MonitorMeasure[]> = {
  traces: ['latency'],
  generations: ['latency', 'cost', 'totalTokens'],
  observations: ['latency', 'cost', 'totalTokens'],
  scores: ['value'],
};
/** The stream that must be polled for a source's items to be read (observations of every type come with traces). */
export const SOURCE_STREAM: Record<MonitorSource, string> = { traces: 'traces', generations: 'generations', observations: 'traces', scores: 'scores' };

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function labelOf(raw: unknown, i: number): string {
  const name = raw && typeof raw === 'object' ? (raw as Record<string, unknown>).name : undefined;
  return typeof name === 'string' && name.trim() ? `monitors[${i}] (${JSON.stringify(name.trim())})` : `monitors[${i}]`;
}

function issueMessage(raw: unknown, label: string, issue: z.core.$ZodIssue): string {
  const path: string[] = [];
  for (const p of issue.path) {
    if (typeof p !== 'string') break;
    path.push(p);
  }
  const where = path.length ? `${label}.${path.join('.')}` : label;
  if (issue.code === 'unrecognized_keys') {
    const prefix = path.length ? `${path.join('.')}.` : '';
    const known = Object.keys(MONITOR_FIELDS)
      .filter((k) => k && k.startsWith(prefix) && !k.slice(prefix.length).includes('.'))
      .map((k) => k.slice(prefix.length));
    return `${where} has unknown key ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}; known keys: ${known.join(', ')}`;
  }
  let value: unknown = raw;
  for (const p of path) value = value && typeof value === 'object' ? (value as Record<string, unknown>)[p] : undefined;
  const expect = MONITOR_FIELDS[path.join('.')] ?? 'valid';
  return value === undefined ? `${where} is required: ${expect}` : `${where} must be ${expect}, got ${show(value)}`;
}

function list(v: string | string[] | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  return (Array.isArray(v) ? v : [v]).map((s) => s.trim()).filter(Boolean);
}

export interface MonitorContext {
  /** The configured sinks' names. */
  sinks: readonly string[];
  /** BRIDGE_STREAMS; null with several projects, whose own streams checkMonitorStreams checks. */
  streams: readonly string[] | null;
}

function compileOne(raw: unknown, i: number, ctx: MonitorContext): MonitorSpec {
  const label = labelOf(raw, i);
  const parsed = monitorSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(issue ? issueMessage(raw, label, issue) : `${label} is invalid`);
  }
  const m: RawMonitor = parsed.data;
  const stream = SOURCE_STREAM[m.source];
  if (ctx.streams && !ctx.streams.includes(stream)) {
    throw new ConfigError(`${label}.source is ${JSON.stringify(m.source)}, whose items come with the ${stream} stream, which BRIDGE_STREAMS (${ctx.streams.join(',')}) does not poll; add ${stream} to BRIDGE_STREAMS or change the source`);
  }
  const w = m.where ?? {};
  for (const key of Object.keys(w) as Array<keyof MonitorWhere>) {
    if (!WHERE_BY_SOURCE[m.source].includes(key)) {
      throw new ConfigError(`${label}.where.${key} is not carried by ${m.source}; conditions for ${m.source}: ${WHERE_BY_SOURCE[m.source].join(', ')}`);
    }
  }
  const needsMeasure = m.metric !== 'count' && m.metric !== 'errorRate';
  if (needsMeasure && m.of === undefined) throw new ConfigError(`${label}.of is required with metric ${JSON.stringify(m.metric)}: one of ${MEASURES_BY_SOURCE[m.source].join(', ')}`);
  if (!needsMeasure && m.of !== undefined) throw new ConfigError(`${label}.of must be left out with metric ${JSON.stringify(m.metric)}, got ${show(m.of)}`);
  if (m.of !== undefined && !MEASURES_BY_SOURCE[m.source].includes(m.of)) {
    throw new ConfigError(`${label}.of must be one of ${MEASURES_BY_SOURCE[m.source].join(', ')} for ${m.source}, got ${show(m.of)}`);
  }
  if (m.metric === 'errorRate' && m.source === 'scores') throw new ConfigError(`${label}.metric errorRate needs items with a level; scores have none: use traces, generations or observations`);
  for (const sink of m.sinks) {
    if (!ctx.sinks.includes(sink)) throw new ConfigError(`${label}.sinks names ${JSON.stringify(sink)}, which is no configured sink; configured: ${ctx.sinks.join(', ') || 'none'}`);
  }
  if (m.warning !== undefined) {
    const below = m.op === '>' || m.op === '>=';
    const above = m.op === '<' || m.op === '<=';
    if ((below && m.warning >= m.alert) || (above && m.warning <= m.alert)) {
      throw new ConfigError(`${label}.warning must be ${below ? 'below' : 'above'} alert (${m.alert}) with op ${JSON.stringify(m.op)}, got ${m.warning}`);
    }
    if (m.op === '==' || m.op === '!=') throw new ConfigError(`${label}.warning needs op >, >=, < or <=, got op ${JSON.stringify(m.op)}`);
  }
  const where: MonitorWhere = {};
  if (w.project !== undefined) where.project = list(w.project);
  if (w.traceName !== undefined) where.traceName = list(w.traceName);
  if (w.environment !== undefined) where.environment = list(w.environment);
  if (w.tags !== undefined) where.tags = w.tags;
  if (w.level !== undefined) where.level = w.level;
  if (w.model !== undefined) where.model = list(w.model);
  if (w.scoreName !== undefined) where.scoreName = list(w.scoreName);
  if (w.dataType !== undefined) where.dataType = w.dataType.trim().toUpperCase();
  if (w.costAbove !== undefined) where.costAbove = w.costAbove;
  if (w.tokensAbove !== undefined) where.tokensAbove = w.tokensAbove;
  if (w.scoreBelow !== undefined) where.scoreBelow = w.scoreBelow;
  if (w.scoreAbove !== undefined) where.scoreAbove = w.scoreAbove;
  const delay = m.delay === undefined ? '2m' : m.delay;
  return {
    name: m.name,
    source: m.source,
    where,
    metric: m.metric,
    of: m.of ?? null,
    windowText: m.window.trim(),
    windowMs: parseDuration(m.window)!,
    everyMs: parseDuration(m.every ?? '1m')!,
    delayMs: ZERO.test(delay) ? 0 : parseDuration(delay)!,
    op: m.op,
    alert: m.alert,
    warning: m.warning ?? null,
    minSamples: m.minSamples ?? 1,
    noData: m.noData ?? 'ok',
    renotifyMinutes: m.renotifyMinutes ?? null,
    sinks: m.sinks,
  };
}

/** The config file's `monitors`, checked and with defaults; the first problem throws a one-line ConfigError. */
export function compileMonitors(raw: readonly unknown[] | undefined, ctx: MonitorContext): MonitorSpec[] {
  const out: MonitorSpec[] = [];
  (raw ?? []).forEach((entry, i) => {
    const spec = compileOne(entry, i, ctx);
    if (out.some((o) => o.name === spec.name)) throw new ConfigError(`${labelOf(entry, i)}.name is used by an earlier monitor; monitor names must be unique`);
    out.push(spec);
  });
  return out;
}

/**
 * With several projects, each polls its own streams: a monitor's stream must be polled by every
 * project it applies to: all of them, or those whose config name `where.project` matches (it may
 * name project ids too, which are not known before connecting: such a pattern is not checked here).
 */
export function checkMonitorStreams(monitors: readonly MonitorSpec[], projects: ReadonlyArray<{ name: string; streams: readonly string[] }>): void {
  monitors.forEach((m, i) => {
    const stream = SOURCE_STREAM[m.source];
    const patterns = m.where.project;
    const applies = (name: string): boolean => !patterns || patterns.some((p) => globMatch(p, name));
    projects.forEach((p, j) => {
      if (!applies(p.name) || p.streams.includes(stream)) return;
      throw new ConfigError(
        `monitors[${i}] (${JSON.stringify(m.name)}).source is ${JSON.stringify(m.source)}, whose items come with the ${stream} stream, which project ${JSON.stringify(p.name)} does not poll (projects[${j}].streams: ${p.streams.join(',')}); add ${stream} there or limit the monitor with where.project`,
      );
    });
  });
}

/** The events a monitor sends: alert and resolved always, warning when it has a warning threshold. */
export function monitorEventTypes(m: Pick<MonitorSpec, 'warning'>): string[] {
  return m.warning === null ? ['monitor.alert', 'monitor.resolved'] : ['monitor.alert', 'monitor.warning', 'monitor.resolved'];
}

/**
 * A monitor's sinks must take its events: a sink's `events` leaving them out (at config load), or a
 * handler module with no handler for them (once it is loaded), would drop or dead-letter every one.
 * `problem` says, for a sink and the event types it must take, why it does not, or null.
 */
export function checkMonitorSinks(monitors: readonly MonitorSpec[], problem: (sink: string, types: string[]) => string | null): void {
  monitors.forEach((m, i) => {
    for (const sink of m.sinks) {
      const why = problem(sink, monitorEventTypes(m));
      if (why) throw new ConfigError(`monitors[${i}] (${JSON.stringify(m.name)}).sinks names ${JSON.stringify(sink)}, ${why}`);
    }
  });
}

/** A `*` pattern (the monitors' where.project, traceName, ...) against a name. */
export function globMatch(pattern: string, name: string): boolean {
  if (!pattern.includes('*')) return pattern === name;
  return new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(name);
}

/** How long the facts are kept: the longest window plus its delay, and never less than a day. */
export function factsHorizonMs(monitors: readonly MonitorSpec[]): number {
  return Math.max(86_400_000, ...monitors.map((m) => m.windowMs + m.delayMs + m.everyMs));
}
