/**
 * Alert rules: which events page whom. A rule names the events it looks at, the conditions an event
 * must meet, and the alert sinks (Slack, PagerDuty) it goes to. Matching is a pure function of the
 * event: event ids are deterministic and `trace.updated` at ERROR fires once per trace, so "once" is
 * expressed as a dedup key that stays the same for every event about the same trace, score or
 * generation (PagerDuty folds repeats into the open incident; Slack skips repeats it has seen).
 *
 * Without a `rules` array in the config file the contract's defaults apply: every Slack sink gets
 * ERROR traces and NUMERIC scores below 0.5; every PagerDuty sink gets ERROR traces only.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { matchesEventPatterns } from '../events/patterns.js';
import { EVENT_TYPES } from '../events/types.js';
import { ALERT_KINDS, isAlertKind } from '../sinks/kinds.js';
import type { AnyBridgeEvent, GenerationData, Level, ScoreData, TraceData } from '../events/types.js';

export type Severity = 'critical' | 'error' | 'warning' | 'info';
export type AlertAction = 'trigger' | 'resolve';
export type RuleMode = 'once' | 'every';

/** One routing decision: this rule sends this event to this sink. */
export interface AlertMatch {
  rule: string;
  sink: string;
  action: AlertAction;
  /** Stable per project and trace / score / generation (with mode `every`, per event). */
  dedupKey: string;
  severity: Severity;
  mode: RuleMode;
  /** What the alert is about, singular, e.g. "error trace", "low score"; used in headlines and summaries. */
  label: string;
}

export interface RuleConditions {
  /** Langfuse project ids (`event.data.projectId`); for a bridge that polls several projects. */
  project?: string[];
  level?: 'WARNING' | 'ERROR';
  traceName?: string[];
  scoreName?: string[];
  scoreBelow?: number;
  scoreAbove?: number;
  dataType?: string;
  environment?: string[];
  tags?: string[];
  model?: string[];
  costAbove?: number;
  tokensAbove?: number;
}

export interface CompiledRule {
  name: string;
  /** Event type patterns (`trace.*`, `score.created`, ...). */
  events: string[];
  when: RuleConditions;
  sinks: string[];
  mode: RuleMode;
  /** Explicit severity; when absent it follows the event (error for ERROR, warning otherwise). */
  severity: Severity | null;
  resolveWhen: { scoreAtLeast: number } | null;
  label: string;
}

export interface CompiledRules {
  /** True when no rules were configured and the contract's defaults are in force. */
  readonly isDefault: boolean;
  readonly rules: readonly CompiledRule[];
  /** Alert sinks (Slack, PagerDuty) that no rule sends anything to; worth a warning at start-up. */
  readonly unroutedSinks: readonly string[];
  /** Every (rule, sink) this event goes to, in rule order. */
  match(event: AnyBridgeEvent): AlertMatch[];
  /** The matches for one sink. */
  forSink(event: AnyBridgeEvent, sink: string): AlertMatch[];
}

/** A sink as the rules see it; `SinkConfig` objects fit. A bare name is a sink of unknown kind. */
export type RuleSinkRef = string | { name: string; type: string };

const LEVEL_RANK: Record<Level, number> = { DEBUG: 0, DEFAULT: 1, WARNING: 2, ERROR: 3 };
const SCORE_EVENTS = ['score.created', 'score.updated'];
const GENERATION_EVENTS = ['generation.created', 'generation.updated'];

// ---------------------------------------------------------------------------------------------
// Validation

const stringOrList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

export const ruleSchema = z
  .object({
    name: z.string().trim().min(1),
    events: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    when: z
      .object({
        project: stringOrList.optional(),
        level: z.enum(['WARNING', 'ERROR']).optional(),
        traceName: stringOrList.optional(),
        scoreName: stringOrList.optional(),
        scoreBelow: z.number().optional(),
        scoreAbove: z.number().optional(),
        dataType: z.string().min(1).optional(),
        environment: stringOrList.optional(),
        tags: z.array(z.string().min(1)).min(1).optional(),
        model: stringOrList.optional(),
        costAbove: z.number().min(0).optional(),
        tokensAbove: z.number().min(0).optional(),
      })
      .strict()
      .optional(),
    sinks: z.array(z.string().min(1)).min(1),
    mode: z.enum(['once', 'every']).optional(),
    severity: z.enum(['critical', 'error', 'warning', 'info']).optional(),
    resolveWhen: z.object({ scoreAtLeast: z.number() }).strict().optional(),
  })
  .strict();
type RawRule = z.infer<typeof ruleSchema>;

/** What each field must be, in the words of the error message. */
export const EXPECT: Record<string, string> = {
  '': 'an object like {"name": "error-traces", "when": {"level": "ERROR"}, "sinks": ["slack"]}',
  name: 'a non-empty string',
  events: 'a list of event types or globs such as ["trace.updated", "score.*"]',
  when: 'an object of conditions such as {"level": "ERROR"}',
  'when.level': 'one of "WARNING", "ERROR"',
  'when.traceName': 'a trace name or a list of them',
  'when.scoreName': 'a score name or a list of them',
  'when.scoreBelow': 'a number',
  'when.scoreAbove': 'a number',
  'when.dataType': 'a score data type such as "NUMERIC"',
  'when.environment': 'an environment name or a list of them',
  'when.tags': 'a non-empty list of tags (all must be present)',
  'when.model': 'a model name or a list of them',
  'when.costAbove': 'a number of USD, 0 or more',
  'when.tokensAbove': 'a number of tokens, 0 or more',
  'when.project': 'a Langfuse project id or a list of them',
  sinks: 'a non-empty list of sink names such as ["slack"]',
  mode: 'one of "once", "every"',
  severity: 'one of "critical", "error", "warning", "info"',
  resolveWhen: 'an object like {"scoreAtLeast": 0.5}',
  'resolveWhen.scoreAtLeast': 'a number',
};

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  try {
    const s = JSON.stringify(v);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return String(v);
  }
}

function ruleLabel(raw: unknown, i: number): string {
  const name = raw && typeof raw === 'object' ? (raw as Record<string, unknown>).name : undefined;
  return typeof name === 'string' && name.trim() ? `rules[${i}] (${JSON.stringify(name.trim())})` : `rules[${i}]`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

function issueMessage(raw: unknown, label: string, issue: z.core.$ZodIssue): string {
  // Report at the field, not at a list element inside it: `.sinks must be a list ..., got ["a", 2]`.
  const fieldPath: string[] = [];
  for (const p of issue.path) {
    if (typeof p !== 'string') break;
    fieldPath.push(p);
  }
  const where = fieldPath.length ? `${label}.${fieldPath.join('.')}` : label;
  if (issue.code === 'unrecognized_keys') {
    const known = Object.keys(EXPECT)
      .filter((k) => k && (fieldPath.length ? k.startsWith(`${fieldPath.join('.')}.`) : !k.includes('.')))
      .map((k) => k.split('.').pop());
    return `${where} has unknown key ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}; known keys: ${known.join(', ')}`;
  }
  const value = valueAt(raw, fieldPath);
  const expect = EXPECT[fieldPath.join('.')] ?? 'valid';
  if (value === undefined) return `${where} is required: ${expect}`;
  return `${where} must be ${expect}, got ${show(value)}`;
}

function list(v: string | string[] | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  return (Array.isArray(v) ? v : [v]).map((s) => s.trim()).filter(Boolean);
}

type Entity = 'trace' | 'generation' | 'score';
const FIELD_ENTITIES: Record<keyof RuleConditions, Entity[]> = {
  project: ['trace', 'generation', 'score'],
  level: ['trace', 'generation'],
  traceName: ['trace'],
  environment: ['trace'],
  tags: ['trace'],
  scoreName: ['score'],
  scoreBelow: ['score'],
  scoreAbove: ['score'],
  dataType: ['score'],
  model: ['generation'],
  costAbove: ['generation'],
  tokensAbove: ['generation'],
};

function entityOf(type: string): Entity | null {
  if (type.startsWith('trace.')) return 'trace';
  if (type.startsWith('generation.')) return 'generation';
  if (type.startsWith('score.')) return 'score';
  return null;
}

function defaultEvents(when: RuleConditions): string[] | null {
  const fields = Object.keys(when) as Array<keyof RuleConditions>;
  if (fields.length === 0) return null;
  if (fields.some((f) => FIELD_ENTITIES[f].length === 1 && FIELD_ENTITIES[f][0] === 'score')) return [...SCORE_EVENTS];
  if (fields.some((f) => FIELD_ENTITIES[f].length === 1 && FIELD_ENTITIES[f][0] === 'generation')) return [...GENERATION_EVENTS];
  // A level is reached by `trace.updated` (exactly once per level and trace); names, tags and
  // environments are known from the start.
  return when.level ? ['trace.updated'] : ['trace.created'];
}

function labelFor(when: RuleConditions, events: string[]): string {
  if (when.scoreBelow !== undefined) return 'low score';
  if (when.scoreAbove !== undefined) return 'high score';
  if (when.costAbove !== undefined) return 'costly generation';
  if (when.tokensAbove !== undefined) return 'large generation';
  const entities = new Set(EVENT_TYPES.filter((t) => matchesEventPatterns(events, t)).map(entityOf));
  const only = entities.size === 1 ? [...entities][0] : null;
  const noun = only ?? 'event';
  if (when.level === 'ERROR') return `error ${noun}`;
  if (when.level === 'WARNING') return `warning ${noun}`;
  return `${noun} alert`;
}

function compileOne(raw: unknown, i: number, sinks: Map<string, string | null>): CompiledRule {
  const label = ruleLabel(raw, i);
  const parsed = ruleSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(issue ? issueMessage(raw, label, issue) : `${label} is invalid`);
  }
  const r: RawRule = parsed.data;
  const w = r.when ?? {};
  const when: RuleConditions = {};
  if (w.project !== undefined) when.project = list(w.project);
  if (w.level !== undefined) when.level = w.level;
  if (w.traceName !== undefined) when.traceName = list(w.traceName);
  if (w.scoreName !== undefined) when.scoreName = list(w.scoreName);
  if (w.scoreBelow !== undefined) when.scoreBelow = w.scoreBelow;
  if (w.scoreAbove !== undefined) when.scoreAbove = w.scoreAbove;
  if (w.dataType !== undefined) when.dataType = w.dataType.trim().toUpperCase();
  if (w.environment !== undefined) when.environment = list(w.environment);
  if (w.tags !== undefined) when.tags = w.tags;
  if (w.model !== undefined) when.model = list(w.model);
  if (w.costAbove !== undefined) when.costAbove = w.costAbove;
  if (w.tokensAbove !== undefined) when.tokensAbove = w.tokensAbove;

  // events: explicit, or derived from the conditions.
  let events: string[];
  if (r.events !== undefined) {
    events = (Array.isArray(r.events) ? r.events : r.events.split(',')).map((s) => s.trim()).filter(Boolean);
    for (const p of events) {
      if (!EVENT_TYPES.some((t) => matchesEventPatterns([p], t))) {
        throw new ConfigError(`${label}.events has ${JSON.stringify(p)}, which matches no event type; use types such as trace.updated, score.created or globs such as score.*`);
      }
      // Monitor events go to the sinks their monitor names and never through rules.
      if (EVENT_TYPES.filter((t) => matchesEventPatterns([p], t)).every((t) => t.startsWith('monitor.'))) {
        throw new ConfigError(`${label}.events has ${JSON.stringify(p)}: monitor events are not routed by rules; name the sink in the monitor's "sinks" (see "monitors")`);
      }
    }
  } else {
    const derived = defaultEvents(when);
    if (!derived) {
      throw new ConfigError(`${label} needs "when" conditions or "events"; e.g. "when": {"level": "ERROR"} for error traces`);
    }
    events = derived;
  }

  // Conditions must be able to match something among the events.
  const fields = Object.keys(when) as Array<keyof RuleConditions>;
  const entities = new Set(EVENT_TYPES.filter((t) => matchesEventPatterns(events, t)).map(entityOf));
  const exclusive = [...new Set(fields.flatMap((f) => (FIELD_ENTITIES[f].length === 1 ? FIELD_ENTITIES[f] : [])))];
  if (exclusive.length > 1) {
    throw new ConfigError(
      `${label}.when mixes conditions on ${exclusive.join(' and ')} events, which no single event meets; split it into one rule per kind of event`,
    );
  }
  for (const f of fields) {
    if (!FIELD_ENTITIES[f].some((e) => entities.has(e))) {
      const kinds = FIELD_ENTITIES[f].map((e) => `${e}.*`).join(' or ');
      throw new ConfigError(`${label}.when.${f} applies to ${kinds} events, but events is ${show(events)}; add ${kinds} to events or drop "events"`);
    }
  }
  if (when.scoreBelow !== undefined && when.scoreAbove !== undefined && when.scoreAbove >= when.scoreBelow) {
    throw new ConfigError(`${label}.when: scoreAbove (${when.scoreAbove}) must be less than scoreBelow (${when.scoreBelow}), or the rule never matches`);
  }
  if (r.resolveWhen) {
    if (when.scoreBelow === undefined) {
      throw new ConfigError(`${label}.resolveWhen needs when.scoreBelow: a rule resolves when a later score on the same trace is back at or above scoreAtLeast`);
    }
    if (r.resolveWhen.scoreAtLeast < when.scoreBelow) {
      throw new ConfigError(
        `${label}.resolveWhen.scoreAtLeast must be at least when.scoreBelow (${when.scoreBelow}), got ${r.resolveWhen.scoreAtLeast}`,
      );
    }
  }

  // sinks: configured, and alert sinks when we know their kind.
  const ruleSinks = [...new Set(r.sinks.map((s) => s.trim()))];
  for (const s of ruleSinks) {
    if (!sinks.has(s)) {
      const known = [...sinks.keys()];
      throw new ConfigError(
        `${label}.sinks names ${JSON.stringify(s)}, which is not a configured sink; ${known.length ? `configured sinks: ${known.join(', ')}` : `configure a ${ALERT_KINDS.join(' or ')} sink first`}`,
      );
    }
    const kind = sinks.get(s);
    if (kind && !isAlertKind(kind)) {
      throw new ConfigError(
        `${label}.sinks names ${JSON.stringify(s)}, a ${kind} sink; rules send alerts to ${ALERT_KINDS.join(' and ')} sinks only (other sinks choose events with their own "events")`,
      );
    }
  }

  return {
    name: r.name.trim(),
    events,
    when,
    sinks: ruleSinks,
    mode: r.mode ?? 'once',
    severity: r.severity ?? null,
    resolveWhen: r.resolveWhen ?? null,
    label: labelFor(when, events),
  };
}

// ---------------------------------------------------------------------------------------------
// Matching

/** Exact match, or `*` as a wildcard for any run of characters. */
function matchesName(patterns: readonly string[], value: string | null | undefined): boolean {
  if (value === null || value === undefined) return false;
  for (const p of patterns) {
    if (!p.includes('*')) {
      if (p === value) return true;
      continue;
    }
    const re = new RegExp(`^${p.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
    if (re.test(value)) return true;
  }
  return false;
}

function levelAtLeast(level: Level | null | undefined, min: 'WARNING' | 'ERROR'): boolean {
  return level !== null && level !== undefined && (LEVEL_RANK[level] ?? 0) >= LEVEL_RANK[min];
}

/** A generation's total tokens: as reported, else prompt + completion, else usageDetails.total (rules and monitors alike). */
export function totalTokens(g: Pick<GenerationData, 'usage' | 'usageDetails'>): number | null {
  const u = g.usage;
  if (u && typeof u.totalTokens === 'number') return u.totalTokens;
  if (u && (typeof u.promptTokens === 'number' || typeof u.completionTokens === 'number')) return (u.promptTokens ?? 0) + (u.completionTokens ?? 0);
  if (g.usageDetails && typeof g.usageDetails.total === 'number') return g.usageDetails.total;
  return null;
}

function traceMatches(w: RuleConditions, d: TraceData): boolean {
  if (w.level && !levelAtLeast(d.level, w.level)) return false;
  if (w.traceName && !matchesName(w.traceName, d.name)) return false;
  if (w.environment && !matchesName(w.environment, d.environment)) return false;
  if (w.tags && !w.tags.every((t) => (d.tags ?? []).includes(t))) return false;
  return true;
}

function generationMatches(w: RuleConditions, d: GenerationData): boolean {
  if (w.level && !levelAtLeast(d.level, w.level)) return false;
  if (w.model && !matchesName(w.model, d.model)) return false;
  if (w.costAbove !== undefined && !(typeof d.totalCost === 'number' && d.totalCost > w.costAbove)) return false;
  if (w.tokensAbove !== undefined) {
    const t = totalTokens(d);
    if (!(t !== null && t > w.tokensAbove)) return false;
  }
  return true;
}

/** The score's identity conditions (name, type) without the thresholds. */
function scoreIdentityMatches(w: RuleConditions, d: ScoreData): boolean {
  if (w.scoreName && !matchesName(w.scoreName, d.name)) return false;
  if (w.dataType && String(d.dataType ?? '').toUpperCase() !== w.dataType) return false;
  if ((w.scoreBelow !== undefined || w.scoreAbove !== undefined) && typeof d.value !== 'number') return false;
  return true;
}

function scoreThresholdsMatch(w: RuleConditions, d: ScoreData): boolean {
  const v = d.value;
  if (w.scoreBelow !== undefined && !(typeof v === 'number' && v < w.scoreBelow)) return false;
  if (w.scoreAbove !== undefined && !(typeof v === 'number' && v > w.scoreAbove)) return false;
  return true;
}

const KEY_PREFIX = 'langfuse-bridge';

function entityKey(rule: CompiledRule, event: AnyBridgeEvent): string {
  const pid = event.data.projectId;
  switch (event.event) {
    case 'trace.created':
    case 'trace.updated':
      return `${KEY_PREFIX}:${pid}:trace:${event.data.traceId}`;
    case 'generation.created':
    case 'generation.updated':
      return `${KEY_PREFIX}:${pid}:generation:${event.data.observationId}`;
    case 'score.created':
    case 'score.updated': {
      const d = event.data;
      // Rules about a named score (and rules that resolve) track that score per trace, so a
      // later score of the same name on the same trace updates or resolves the same incident.
      if (rule.resolveWhen || rule.when.scoreName) {
        if (d.traceId) return `${KEY_PREFIX}:${pid}:trace:${d.traceId}:score:${d.name}`;
        if (d.sessionId) return `${KEY_PREFIX}:${pid}:session:${d.sessionId}:score:${d.name}`;
      }
      return `${KEY_PREFIX}:${pid}:score:${d.scoreId}`;
    }
    case 'prompt.created':
    case 'prompt.updated': {
      const p = event.data.prompt;
      return `${KEY_PREFIX}:${pid}:prompt:${String(p.name ?? '')}:${String(p.version ?? '')}`;
    }
    case 'test':
      return `${KEY_PREFIX}:${pid}:test`;
    case 'monitor.alert':
    case 'monitor.warning':
    case 'monitor.resolved':
      return `${KEY_PREFIX}:${pid}:monitor:${event.data.monitor}`;
  }
}

function eventLevel(event: AnyBridgeEvent): Level | null {
  switch (event.event) {
    case 'trace.created':
    case 'trace.updated':
    case 'generation.created':
    case 'generation.updated':
      return event.data.level;
    default:
      return null;
  }
}

/** `null`: no match; otherwise trigger or resolve. */
function decide(rule: CompiledRule, event: AnyBridgeEvent): AlertAction | null {
  if (event.event === 'test') return null;
  if (!matchesEventPatterns(rule.events, event.event)) return null;
  const w = rule.when;
  const fields = Object.keys(w) as Array<keyof RuleConditions>;
  const entity = entityOf(event.event);
  // A condition that cannot apply to this kind of event means no match.
  if (fields.some((f) => entity === null || !FIELD_ENTITIES[f].includes(entity))) return null;
  if (w.project && !matchesName(w.project, event.data.projectId)) return null;
  switch (event.event) {
    case 'trace.created':
    case 'trace.updated':
      return traceMatches(w, event.data) ? 'trigger' : null;
    case 'generation.created':
    case 'generation.updated':
      return generationMatches(w, event.data) ? 'trigger' : null;
    case 'score.created':
    case 'score.updated': {
      const d = event.data;
      if (!scoreIdentityMatches(w, d)) return null;
      if (scoreThresholdsMatch(w, d)) return 'trigger';
      if (rule.resolveWhen && typeof d.value === 'number' && d.value >= rule.resolveWhen.scoreAtLeast) return 'resolve';
      return null;
    }
    default:
      return 'trigger';
  }
}

function buildRules(rules: CompiledRule[], isDefault: boolean, sinks: Map<string, string | null>): CompiledRules {
  const routed = new Set(rules.flatMap((r) => r.sinks));
  const alertSinks = [...sinks.entries()].filter(([, kind]) => isAlertKind(kind)).map(([n]) => n);
  const unroutedSinks = alertSinks.filter((s) => !routed.has(s));
  // A test event ("Send test event") reaches every alert sink a rule sends to.
  const testSinks = [...new Set([...rules.flatMap((r) => r.sinks), ...alertSinks])];

  function match(event: AnyBridgeEvent): AlertMatch[] {
    if (event.event === 'test') {
      const dedupKey = `${KEY_PREFIX}:${event.data.projectId}:test`;
      return testSinks.map((sink) => ({ rule: 'test', sink, action: 'trigger', dedupKey, severity: 'info', mode: 'every', label: 'test event' }));
    }
    const out: AlertMatch[] = [];
    for (const rule of rules) {
      const action = decide(rule, event);
      if (!action) continue;
      let dedupKey = entityKey(rule, event);
      if (rule.mode === 'every' && action === 'trigger') dedupKey = `${dedupKey}:event:${event.id}`;
      const severity: Severity = rule.severity ?? (eventLevel(event) === 'ERROR' ? 'error' : 'warning');
      for (const sink of rule.sinks) out.push({ rule: rule.name, sink, action, dedupKey, severity, mode: rule.mode, label: rule.label });
    }
    return out;
  }

  return {
    isDefault,
    rules,
    unroutedSinks,
    match,
    forSink: (event, sink) => match(event).filter((m) => m.sink === sink),
  };
}

function sinkMap(sinks: readonly RuleSinkRef[]): Map<string, string | null> {
  const m = new Map<string, string | null>();
  for (const s of sinks) {
    if (typeof s === 'string') {
      // A bare name: its kind is unknown, unless it is an alert kind's (SLACK_WEBHOOK_URL makes "slack").
      const named = /^([a-z]+)(-\d+)?$/.exec(s)?.[1];
      m.set(s, named !== undefined && isAlertKind(named) ? named : null);
    } else {
      m.set(s.name, s.type);
    }
  }
  return m;
}

/** The contract's defaults, for the alert sinks configured. */
export function defaultRules(sinks: readonly RuleSinkRef[]): CompiledRule[] {
  const m = sinkMap(sinks);
  const slack = [...m].filter(([, k]) => k === 'slack').map(([n]) => n);
  const pagerduty = [...m].filter(([, k]) => k === 'pagerduty').map(([n]) => n);
  const out: CompiledRule[] = [];
  if (slack.length || pagerduty.length) {
    out.push({
      name: 'error-traces',
      events: ['trace.updated'],
      when: { level: 'ERROR' },
      sinks: [...slack, ...pagerduty],
      mode: 'once',
      severity: null,
      resolveWhen: null,
      label: 'error trace',
    });
  }
  if (slack.length) {
    out.push({
      name: 'low-scores',
      events: [...SCORE_EVENTS],
      when: { dataType: 'NUMERIC', scoreBelow: 0.5 },
      sinks: slack,
      mode: 'once',
      severity: null,
      resolveWhen: null,
      label: 'low score',
    });
  }
  return out;
}

/**
 * Validates the config file's `rules` (null: the defaults) against the configured sinks. Pass the
 * sinks as `config.sinks` (name and type) so defaults know which sinks are Slack and PagerDuty and
 * rules naming a non-alert sink are caught; bare names work too. Throws ConfigError.
 */
export function compileRules(raw: unknown[] | null, sinks: readonly RuleSinkRef[]): CompiledRules {
  const m = sinkMap(sinks);
  if (raw === null) return buildRules(defaultRules(sinks), true, m);
  if (!Array.isArray(raw)) throw new ConfigError(`rules must be a list of rule objects, got ${show(raw)}`);
  const compiled: CompiledRule[] = [];
  const seen = new Map<string, number>();
  raw.forEach((r, i) => {
    const rule = compileOne(r, i, m);
    const prev = seen.get(rule.name);
    if (prev !== undefined) throw new ConfigError(`${ruleLabel(r, i)}.name repeats the name of rules[${prev}]; give each rule its own name`);
    seen.set(rule.name, i);
    compiled.push(rule);
  });
  return buildRules(compiled, false, m);
}
