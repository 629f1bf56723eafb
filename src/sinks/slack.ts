/**
 * Slack incoming-webhook sink for alerts. Rules decide which events reach it; each becomes one
 * Block Kit message linking to the trace in the configured Langfuse host. Slack allows about one
 * message a second per webhook: the dispatcher starts at most one delivery a second here, and the
 * few posts this sink makes on its own (burst summaries) keep the same spacing.
 *
 * Burst folding: past `alertBurst` messages from one rule within a minute, further alerts from that
 * rule are not posted one by one; they are counted into a summary posted once the minute is over.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { matchesEventPatterns } from '../config.js';
import type { SlackSinkConfig } from '../config.js';
import type { AnyBridgeEvent } from '../events/types.js';
import type { AlertMatch, CompiledRules } from '../rules/index.js';
import { createDispatcher, parseRetryAfter, proxiedFetch, withAttemptSignal, type AttemptSignal } from '../http.js';
import type { Delivery, DeliveryResult, Sink } from './types.js';

export type SlackBlock = Record<string, unknown>;
export interface SlackMessage {
  text: string;
  blocks: SlackBlock[];
}

export interface SlackSinkOptions {
  rules: CompiledRules;
  langfuseBaseUrl: string;
  alertBurst: number;
  userAgent: string;
  /** Clock for the per-rule minute windows (tests pass a fake one). */
  now?: () => number;
  /** Least time between two posts when this sink posts a summary next to a message. Default 1000. */
  minPostGapMs?: number;
  /** How often and how patiently a summary is retried. Default 5 attempts, 2 s base (x3 each time). */
  summaryRetry?: { attempts: number; baseMs: number };
  /** Where problems with summaries are reported (they have no delivery of their own). */
  warn?: (message: string) => void;
}

export interface SlackSink extends Sink {
  /** Closes minute windows that have ended and posts every summary that is due, now. */
  flushSummaries(): Promise<void>;
}

/** What a burst summary reports; built from the alerts folded in one rule's minute window. */
export interface SlackSummary {
  rule: string;
  /** Singular, e.g. "error trace". */
  label: string;
  count: number;
  /** Window bounds, ms since the epoch. */
  startedAt: number;
  endedAt: number;
  /** Trace / score / model names with how many folded alerts carried them. */
  names: Map<string, number>;
  first: { eventId: string; entity: string };
  last: { eventId: string; entity: string };
  projectIds: string[];
}

const WINDOW_MS = 60_000;
const MAX_NAMES = 500;
const OTHER_NAMES = '(other names)';

// ---------------------------------------------------------------------------------------------
// Links and formatting

function base(url: string): string {
  return url.replace(/\/+$/, '');
}

/** The page in Langfuse an event is about (trace, session or prompt), or null. */
export function langfuseUrlFor(event: AnyBridgeEvent, langfuseBaseUrl: string): string | null {
  const project = `${base(langfuseBaseUrl)}/project/${encodeURIComponent(event.data.projectId)}`;
  switch (event.event) {
    case 'trace.created':
    case 'trace.updated':
      return `${project}/traces/${encodeURIComponent(event.data.traceId)}`;
    case 'generation.created':
    case 'generation.updated':
      return `${project}/traces/${encodeURIComponent(event.data.traceId)}?observation=${encodeURIComponent(event.data.observationId)}`;
    case 'score.created':
    case 'score.updated':
      if (event.data.traceId) {
        const obs = event.data.observationId ? `?observation=${encodeURIComponent(event.data.observationId)}` : '';
        return `${project}/traces/${encodeURIComponent(event.data.traceId)}${obs}`;
      }
      if (event.data.sessionId) return `${project}/sessions/${encodeURIComponent(event.data.sessionId)}`;
      return project;
    case 'prompt.created':
    case 'prompt.updated': {
      const name = event.data.prompt.name;
      return typeof name === 'string' ? `${project}/prompts/${encodeURIComponent(name)}` : `${project}/prompts`;
    }
    case 'test':
      return project;
  }
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function cut(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

function firstLine(s: string): string {
  return s.split(/\r?\n/, 1)[0] ?? '';
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return String(Math.round(v * 10_000) / 10_000);
}

export function formatCost(v: number): string {
  if (v !== 0 && Math.abs(v) < 0.01) return `$${v.toPrecision(2)}`;
  return `$${v.toFixed(v >= 100 ? 2 : 4)}`;
}

function formatScoreValue(v: unknown): string {
  if (typeof v === 'number') return formatNumber(v);
  if (v === null || v === undefined) return '(none)';
  return String(v);
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function field(title: string, value: string | null | undefined): SlackBlock | null {
  if (value === null || value === undefined || value === '') return null;
  return { type: 'mrkdwn', text: cut(`*${title}*\n${value}`, 2000) };
}

function emojiFor(label: string, level: string | null): string {
  if (label.startsWith('low score')) return '📉';
  if (label.startsWith('high score')) return '📈';
  if (label.startsWith('costly')) return '💸';
  if (label.startsWith('large')) return '🧮';
  if (label.startsWith('test')) return '🧪';
  if (level === 'ERROR' || label.startsWith('error')) return '🔴';
  if (level === 'WARNING' || label.startsWith('warning')) return '🟠';
  return '🔔';
}

interface Described {
  headline: string;
  fields: Array<SlackBlock | null>;
  /** One line for the plain-text fallback. */
  line: string;
  buttonText: string;
}

function describe(event: AnyBridgeEvent, label: string | undefined): Described {
  switch (event.event) {
    case 'trace.created':
    case 'trace.updated': {
      const d = event.data;
      const l = label ?? (d.level === 'ERROR' ? 'error trace' : d.level === 'WARNING' ? 'warning trace' : 'trace');
      const name = d.name ?? d.traceId;
      const status = d.statusMessage ? cut(firstLine(d.statusMessage), 300) : null;
      return {
        headline: `${emojiFor(l, d.level)} ${capitalize(l)}: ${name}`,
        fields: [
          field('Trace', esc(name)),
          field('Environment', d.environment ? esc(d.environment) : null),
          field('Level', d.level),
          field(d.level === 'ERROR' ? 'Error' : 'Status message', status ? esc(status) : null),
          field('User', d.userId ? esc(d.userId) : null),
          field('Session', d.sessionId ? esc(d.sessionId) : null),
          field('Tags', d.tags?.length ? esc(d.tags.join(', ')) : null),
        ],
        line: `${capitalize(l)} "${name}"${d.environment ? ` in ${d.environment}` : ''}${status ? `: ${status}` : ''}`,
        buttonText: 'View trace',
      };
    }
    case 'generation.created':
    case 'generation.updated': {
      const d = event.data;
      const l = label ?? (d.level === 'ERROR' ? 'error generation' : 'generation');
      const name = d.name ?? d.observationId;
      const u = d.usage;
      const total = u?.totalTokens ?? (u && (u.promptTokens !== null || u.completionTokens !== null) ? (u.promptTokens ?? 0) + (u.completionTokens ?? 0) : null);
      const tokens =
        total === null
          ? null
          : `${total.toLocaleString('en-US')}${u?.promptTokens !== null && u?.completionTokens !== null && u ? ` (${u.promptTokens?.toLocaleString('en-US')} in / ${u.completionTokens?.toLocaleString('en-US')} out)` : ''}`;
      const status = d.statusMessage ? cut(firstLine(d.statusMessage), 300) : null;
      return {
        headline: `${emojiFor(l, d.level)} ${capitalize(l)}: ${name}${d.model ? ` (${d.model})` : ''}`,
        fields: [
          field('Generation', esc(name)),
          field('Model', d.model ? esc(d.model) : null),
          field('Cost', typeof d.totalCost === 'number' ? formatCost(d.totalCost) : null),
          field('Tokens', tokens),
          field('Level', d.level),
          field(d.level === 'ERROR' ? 'Error' : 'Status message', status ? esc(status) : null),
        ],
        line: `${capitalize(l)} "${name}"${d.model ? ` on ${d.model}` : ''}${typeof d.totalCost === 'number' ? `, cost ${formatCost(d.totalCost)}` : ''}${total !== null ? `, ${total} tokens` : ''}${status ? `: ${status}` : ''}`,
        buttonText: 'View trace',
      };
    }
    case 'score.created':
    case 'score.updated': {
      const d = event.data;
      const l = label ?? (typeof d.value === 'number' && d.value < 0.5 ? 'low score' : 'score');
      const value = formatScoreValue(d.value);
      const comment = d.comment ? cut(d.comment, 500) : null;
      return {
        headline: `${emojiFor(l, null)} ${capitalize(l)}: ${d.name} = ${value}`,
        fields: [
          field('Score', esc(d.name)),
          field('Value', esc(value)),
          field('Data type', d.dataType),
          field('Source', d.source ? esc(d.source) : null),
          field('Comment', comment ? esc(comment) : null),
          field('Trace', d.traceId ? esc(d.traceId) : null),
          field('Session', !d.traceId && d.sessionId ? esc(d.sessionId) : null),
        ],
        line: `${capitalize(l)}: ${d.name} = ${value}${d.traceId ? ` on trace ${d.traceId}` : ''}${comment ? ` (${firstLine(comment)})` : ''}`,
        buttonText: d.traceId ? 'View trace' : d.sessionId ? 'View session' : 'Open project',
      };
    }
    case 'prompt.created':
    case 'prompt.updated': {
      const p = event.data.prompt;
      const name = typeof p.name === 'string' ? p.name : '(prompt)';
      const version = p.version !== undefined ? ` v${String(p.version)}` : '';
      const verb = event.event === 'prompt.created' ? 'Prompt version created' : 'Prompt updated';
      const labels = Array.isArray(p.labels) ? p.labels.map(String).join(', ') : null;
      const tags = Array.isArray(p.tags) ? p.tags.map(String).join(', ') : null;
      return {
        headline: `📝 ${verb}: ${name}${version}`,
        fields: [field('Prompt', esc(name)), field('Version', version.trim() || null), field('Labels', labels ? esc(labels) : null), field('Tags', tags ? esc(tags) : null)],
        line: `${verb}: ${name}${version}`,
        buttonText: 'View prompt',
      };
    }
    case 'test':
      return {
        headline: '🧪 Test event from langfuse-bridge',
        fields: [field('Message', esc(event.data.message)), field('Project', esc(event.data.projectId))],
        line: `Test event from langfuse-bridge: ${event.data.message}`,
        buttonText: 'Open project',
      };
  }
}

/**
 * The Slack message for one alert: a header, the facts as section fields, a button into Langfuse,
 * and a plain `text` fallback for notifications. `ctx.label` ("error trace", "low score") comes
 * from the rule that matched; without it the event decides.
 */
export function buildSlackMessage(event: AnyBridgeEvent, langfuseBaseUrl: string, ctx: { label?: string; rule?: string } = {}): SlackMessage {
  const d = describe(event, ctx.label);
  const url = langfuseUrlFor(event, langfuseBaseUrl);
  const fields = d.fields.filter((f): f is SlackBlock => f !== null).slice(0, 10);
  const blocks: SlackBlock[] = [{ type: 'header', text: { type: 'plain_text', text: cut(d.headline, 150), emoji: true } }];
  if (fields.length) blocks.push({ type: 'section', fields });
  const context = [`${esc(event.event)} · ${esc(event.timestamp)}`, ctx.rule ? `rule *${esc(ctx.rule)}*` : null, `\`${esc(event.id)}\``].filter(Boolean).join(' · ');
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: cut(context, 2000) }] });
  if (url) {
    blocks.push({
      type: 'actions',
      elements: [{ type: 'button', text: { type: 'plain_text', text: d.buttonText, emoji: true }, url: cut(url, 3000), action_id: 'langfuse_open' }],
    });
  }
  const text = cut(`${d.headline.split(' ')[0]} ${esc(d.line)}${url ? ` <${url}|${d.buttonText}>` : ''}`, 3000);
  return { text, blocks };
}

function plural(label: string, n: number): string {
  return n === 1 ? label : `${label}s`;
}

function spanWords(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  return minutes <= 1 ? 'the last minute' : `the last ${minutes} minutes`;
}

/** The message that stands for alerts folded during a burst. */
export function buildSlackSummary(s: SlackSummary, langfuseBaseUrl: string): SlackMessage {
  const top = [...s.names.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const shown = top.slice(0, 5).map(([name, n]) => `${name} ×${n}`);
  const rest = top.slice(5);
  if (rest.length) shown.push(`${rest.length} other name${rest.length === 1 ? '' : 's'} ×${rest.reduce((a, [, n]) => a + n, 0)}`);
  const what = `${s.count} more ${plural(s.label, s.count)}`;
  const span = spanWords(s.endedAt - s.startedAt);
  const firstLast =
    s.count === 1 ? `Only: ${s.first.entity} (${s.first.eventId})` : `First: ${s.first.entity} (${s.first.eventId}), last: ${s.last.entity} (${s.last.eventId})`;
  const line = `… and ${what} in ${span} (rule "${s.rule}", folded to respect the alert burst limit): ${shown.join(', ')}. ${firstLast}.`;
  const projectUrl = s.projectIds[0] ? `${base(langfuseBaseUrl)}/project/${encodeURIComponent(s.projectIds[0])}/traces` : null;
  const blocks: SlackBlock[] = [
    { type: 'header', text: { type: 'plain_text', text: cut(`📦 … and ${what}`, 150), emoji: true } },
    {
      type: 'section',
      text: { type: 'mrkdwn', text: cut(`*${s.count}* more ${esc(plural(s.label, s.count))} in ${span} from rule *${esc(s.rule)}*:\n${esc(shown.join(', '))}`, 3000) },
    },
    {
      type: 'context',
      elements: [
        {
          type: 'mrkdwn',
          text: cut(
            `${esc(firstLast)} · ${new Date(s.startedAt).toISOString()} – ${new Date(s.endedAt).toISOString()}${s.projectIds.length > 1 ? ` · projects ${esc(s.projectIds.join(', '))}` : ''}`,
            2000,
          ),
        },
      ],
    },
  ];
  if (projectUrl) {
    blocks.push({
      type: 'actions',
      elements: [{ type: 'button', text: { type: 'plain_text', text: 'Open traces', emoji: true }, url: projectUrl, action_id: 'langfuse_open' }],
    });
  }
  return { text: cut(`📦 ${esc(line)}`, 3000), blocks };
}

// ---------------------------------------------------------------------------------------------
// HTTP

function networkReason(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  const cause = e?.cause;
  const detail = cause?.code ?? cause?.message ?? e?.message ?? String(err);
  return firstLine(String(detail));
}

async function readBody(res: { text(): Promise<string> }): Promise<string> {
  try {
    return (await res.text()).trim();
  } catch {
    return '';
  }
}

function entityOf(event: AnyBridgeEvent): { entity: string; name: string } {
  switch (event.event) {
    case 'trace.created':
    case 'trace.updated':
      return { entity: `trace ${event.data.traceId}`, name: event.data.name ?? '(unnamed trace)' };
    case 'generation.created':
    case 'generation.updated':
      return { entity: `generation ${event.data.observationId}`, name: event.data.model ?? event.data.name ?? '(unnamed generation)' };
    case 'score.created':
    case 'score.updated':
      return { entity: `score ${event.data.scoreId}`, name: event.data.name };
    case 'prompt.created':
    case 'prompt.updated':
      return { entity: `prompt ${String(event.data.prompt.name ?? '')}`, name: String(event.data.prompt.name ?? '(prompt)') };
    case 'test':
      return { entity: 'test', name: 'test' };
  }
}

interface RuleWindow {
  start: number;
  end: number;
  posted: number;
  pending: SlackSummary | null;
  timer: NodeJS.Timeout | null;
}

interface DueSummary {
  summary: SlackSummary;
  attempts: number;
  /** Real time (Date.now) before which it is not tried again. */
  notBefore: number;
}

export function createSlackSink(cfg: SlackSinkConfig, opts: SlackSinkOptions): SlackSink {
  const now = opts.now ?? Date.now;
  const burst = Math.max(1, Math.floor(opts.alertBurst));
  // A little over a second: Slack counts arrivals, and the network can bunch two posts together.
  const gap = opts.minPostGapMs ?? 1100;
  const retry = opts.summaryRetry ?? { attempts: 5, baseMs: 2000 };
  const warn = opts.warn ?? (() => {});
  const timeoutMs = cfg.timeoutSeconds * 1000;
  const scrub = (s: string): string => s.split(cfg.url).join('<slack webhook url>');

  const windows = new Map<string, RuleWindow>();
  const due: DueSummary[] = [];
  /** "once" rules: (rule, dedup key) → the event that alerted; repeats about the same thing are skipped. */
  const alerted = new Map<string, string>();
  const ALERTED_MAX = 20_000;
  let retryTimer: NodeJS.Timeout | null = null;
  let draining: Promise<void> | null = null;
  let closed = false;
  const life = new AbortController();

  // Every post goes through one queue so a summary and a message are never closer than `gap`.
  let chain: Promise<unknown> = Promise.resolve();
  let lastPostAt = -Infinity;
  /**
   * A 429 (or a 503 with Retry-After) holds every post until then, the summaries this sink posts on its
   * own included (the dispatcher holds the deliveries; an hour at most, as there).
   */
  let pausedUntil = -Infinity;

  // Its own small pool, proxy-aware like every outbound call.
  const httpPost = proxiedFetch(createDispatcher({ connections: 2 }));

  const send = (message: SlackMessage, signal: AbortSignal): Promise<DeliveryResult> => withAttemptSignal(signal, timeoutMs, (attempt) => sendOnce(message, signal, attempt));

  async function sendOnce(message: SlackMessage, signal: AbortSignal, attempt: AttemptSignal): Promise<DeliveryResult> {
    let res: Awaited<ReturnType<typeof httpPost>>;
    try {
      res = await httpPost(cfg.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': opts.userAgent },
        body: JSON.stringify(message),
        signal: attempt.signal,
      });
    } catch (err) {
      if (signal.aborted) return { ok: false, retry: true, reason: 'Slack post aborted before an answer (shutting down)' };
      if (attempt.timedOut()) return { ok: false, retry: true, reason: `Slack did not answer within ${cfg.timeoutSeconds}s` };
      return { ok: false, retry: true, reason: scrub(`Slack unreachable: ${networkReason(err)}`) };
    }
    const body = cut(firstLine(await readBody(res)), 200);
    const status = res.status;
    if (status >= 200 && status < 300) return { ok: true, status };
    const reason = scrub(`Slack answered ${status}${body ? `: ${body}` : ''}`);
    // A 503 that says when to come back pauses the sink as a 429 does.
    if (status === 429 || (status === 503 && res.headers.get('retry-after') !== null)) {
      const after = parseRetryAfter(res.headers.get('retry-after'));
      if (after !== null) pausedUntil = Math.max(pausedUntil, performance.now() + Math.min(after, 3_600_000));
      return after === null ? { ok: false, retry: true, reason, status } : { ok: false, retry: true, retryAfterMs: after, reason, status };
    }
    if (status === 408) return { ok: false, retry: true, reason, status };
    if (status >= 400 && status < 500) return { ok: false, retry: false, reason, status };
    return { ok: false, retry: true, reason, status };
  }

  function post(message: SlackMessage, signal: AbortSignal): Promise<DeliveryResult> {
    const run = async (): Promise<DeliveryResult> => {
      const wait = Math.max(lastPostAt + gap, pausedUntil) - performance.now();
      if (wait > 0) {
        try {
          await sleep(wait, undefined, { signal });
        } catch {
          return { ok: false, retry: true, reason: 'Slack post aborted before it was sent (shutting down)' };
        }
      }
      lastPostAt = performance.now();
      return send(message, signal);
    };
    const p = chain.then(run, run);
    chain = p.catch(() => undefined);
    return p;
  }

  function closeWindow(rule: string, w: RuleWindow): void {
    if (w.timer) clearTimeout(w.timer);
    w.timer = null;
    if (windows.get(rule) === w) windows.delete(rule);
    if (w.pending) {
      due.push({ summary: w.pending, attempts: 0, notBefore: 0 });
      w.pending = null;
    }
  }

  function closeEndedWindows(t: number): void {
    for (const [rule, w] of [...windows]) if (t >= w.end) closeWindow(rule, w);
  }

  function scheduleRetry(): void {
    if (closed || retryTimer || due.length === 0) return;
    const next = Math.min(...due.map((d) => d.notBefore));
    retryTimer = setTimeout(() => {
      retryTimer = null;
      void drain(false);
    }, Math.max(0, next - Date.now()));
    retryTimer.unref();
  }

  async function drainOnce(force: boolean): Promise<void> {
    for (const item of [...due]) {
      if (!force && item.notBefore > Date.now()) continue;
      const res = await post(buildSlackSummary(item.summary, opts.langfuseBaseUrl), life.signal);
      if (res.ok) {
        due.splice(due.indexOf(item), 1);
        continue;
      }
      item.attempts++;
      if (item.attempts >= retry.attempts || !res.retry) {
        due.splice(due.indexOf(item), 1);
        warn(`slack sink ${cfg.name}: dropped the summary of ${item.summary.count} folded alert(s) from rule "${item.summary.rule}" after ${item.attempts} attempt(s): ${res.reason}`);
        continue;
      }
      item.notBefore = Date.now() + Math.max(res.retryAfterMs ?? 0, retry.baseMs * 3 ** (item.attempts - 1));
    }
  }

  /** Posts due summaries (all of them with `force`, else those whose retry time has come), one pass at a time. */
  function drain(force: boolean): Promise<void> {
    if (draining) return draining.then(() => (force && due.some((d) => d.attempts === 0) ? drain(force) : undefined));
    const p: Promise<void> = drainOnce(force).finally(() => {
      if (draining === p) draining = null;
      scheduleRetry();
    });
    draining = p;
    return p;
  }

  function fold(rule: string, w: RuleWindow, m: AlertMatch, event: AnyBridgeEvent): void {
    const { entity, name } = entityOf(event);
    const ref = { eventId: event.id, entity };
    const p: SlackSummary = (w.pending ??= {
      rule,
      label: m.label,
      count: 0,
      startedAt: w.start,
      endedAt: w.end,
      names: new Map<string, number>(),
      first: ref,
      last: ref,
      projectIds: [] as string[],
    });
    p.count++;
    p.last = ref;
    const key = p.names.has(name) || p.names.size < MAX_NAMES ? name : OTHER_NAMES;
    p.names.set(key, (p.names.get(key) ?? 0) + 1);
    if (!p.projectIds.includes(event.data.projectId)) p.projectIds.push(event.data.projectId);
    if (!w.timer && !closed) {
      w.timer = setTimeout(() => {
        w.timer = null;
        closeWindow(rule, w);
        void drain(false);
      }, Math.max(0, w.end - now()) + 50);
      w.timer.unref();
    }
  }

  function remember(key: string, eventId: string): void {
    alerted.delete(key);
    alerted.set(key, eventId);
    if (alerted.size > ALERTED_MAX) {
      const oldest = alerted.keys().next().value;
      if (oldest !== undefined) alerted.delete(oldest);
    }
  }

  function triggers(event: AnyBridgeEvent): AlertMatch[] {
    return opts.rules.forSink(event, cfg.name).filter((m) => m.action === 'trigger');
  }

  return {
    name: cfg.name,
    kind: 'slack',
    alerting: true,
    concurrency: 1,
    minIntervalMs: 1000,

    accepts(event) {
      return matchesEventPatterns(cfg.events, event.event) && triggers(event).length > 0;
    },

    async deliver(delivery: Delivery, signal: AbortSignal): Promise<DeliveryResult> {
      const event = delivery.event;
      const t = now();
      // Summaries of minutes that are over go first, so they read in order.
      closeEndedWindows(t);
      if (due.length) await drain(false);

      const m = triggers(event)[0];
      if (!m) return { ok: true };
      const onceKey = `${m.rule}\u0000${m.dedupKey}`;
      if (m.mode === 'once') {
        const prev = alerted.get(onceKey);
        if (prev !== undefined && prev !== event.id) return { ok: true };
      }
      if (event.event !== 'test') {
        let w = windows.get(m.rule);
        if (!w || t >= w.end) {
          if (w) closeWindow(m.rule, w);
          w = { start: t, end: t + WINDOW_MS, posted: 0, pending: null, timer: null };
          windows.set(m.rule, w);
        }
        if (w.posted >= burst) {
          fold(m.rule, w, m, event);
          if (m.mode === 'once') remember(onceKey, event.id);
          return { ok: true };
        }
        const res = await post(buildSlackMessage(event, opts.langfuseBaseUrl, { label: m.label, rule: m.rule }), signal);
        if (res.ok) {
          w.posted++;
          if (m.mode === 'once') remember(onceKey, event.id);
        }
        return res;
      }
      return post(buildSlackMessage(event, opts.langfuseBaseUrl, { label: m.label }), signal);
    },

    validate() {
      const problems: string[] = [];
      try {
        const u = new URL(cfg.url);
        if (u.protocol !== 'https:' && !['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) problems.push(`${cfg.name}: the Slack webhook URL should use https`);
      } catch {
        problems.push(`${cfg.name}: the Slack webhook URL is not a URL`);
      }
      if (opts.rules.unroutedSinks.includes(cfg.name)) problems.push(`${cfg.name}: no rule sends alerts to this sink; name it in a rule's "sinks"`);
      return problems;
    },

    flushSummaries() {
      closeEndedWindows(now());
      return drain(true);
    },

    async close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      retryTimer = null;
      for (const [rule, w] of [...windows]) closeWindow(rule, w);
      if (due.length) {
        // One last try for folded alerts, bounded so shutdown stays quick.
        const giveUp = setTimeout(() => life.abort(), Math.min(5000, timeoutMs)).unref();
        try {
          await drain(true);
        } finally {
          clearTimeout(giveUp);
        }
        if (due.length) warn(`slack sink ${cfg.name}: ${due.reduce((a, d) => a + d.summary.count, 0)} folded alert(s) were not summarized before shutdown`);
      }
    },
  };
}
