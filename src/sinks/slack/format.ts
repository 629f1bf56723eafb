/**
 * Slack messages: one alert as Block Kit (a header, the facts as section fields, a button into
 * Langfuse, a plain-text fallback), and the summary that stands for alerts folded in a burst.
 */
import type { AnyBridgeEvent } from '../../events/types.js';
import { monitorLine } from '../../monitors/notify.js';
import { firstLine } from '../../errors.js';
import { baseUrl, capitalize, formatCost, formatNumber, langfuseUrlFor, slackEscape, truncate } from '../text.js';

export type SlackBlock = Record<string, unknown>;
export interface SlackMessage {
  text: string;
  blocks: SlackBlock[];
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

/** The type of the outbox rows that carry the scheduled digest (src/ops/digest.ts) to Slack sinks only. */
export const DIGEST_EVENT = 'digest';

/** A digest row's body: the day it covers and the message, posted as it is. */
export interface SlackDigest {
  id: string;
  event: typeof DIGEST_EVENT;
  /** The end of the day it covers. */
  timestamp: string;
  data: { since: string; until: string };
  message: SlackMessage;
}

const esc = slackEscape;

function formatScoreValue(v: unknown): string {
  if (typeof v === 'number') return formatNumber(v);
  if (v === null || v === undefined) return '(none)';
  return String(v);
}

function field(title: string, value: string | null | undefined): SlackBlock | null {
  if (value === null || value === undefined || value === '') return null;
  return { type: 'mrkdwn', text: truncate(`*${title}*\n${value}`, 2000) };
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
      const status = d.statusMessage ? truncate(firstLine(d.statusMessage), 300) : null;
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
      const status = d.statusMessage ? truncate(firstLine(d.statusMessage), 300) : null;
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
      const comment = d.comment ? truncate(d.comment, 500) : null;
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
    case 'monitor.alert':
    case 'monitor.warning':
    case 'monitor.resolved':
      return { headline: `Monitor ${event.data.monitor}`, fields: [], line: monitorLine(event), buttonText: 'View in Langfuse' };
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
  const blocks: SlackBlock[] = [{ type: 'header', text: { type: 'plain_text', text: truncate(d.headline, 150), emoji: true } }];
  if (fields.length) blocks.push({ type: 'section', fields });
  const context = [`${esc(event.event)} · ${esc(event.timestamp)}`, ctx.rule ? `rule *${esc(ctx.rule)}*` : null, `\`${esc(event.id)}\``].filter(Boolean).join(' · ');
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: truncate(context, 2000) }] });
  if (url) {
    blocks.push({
      type: 'actions',
      elements: [{ type: 'button', text: { type: 'plain_text', text: d.buttonText, emoji: true }, url: truncate(url, 3000), action_id: 'langfuse_open' }],
    });
  }
  const text = truncate(`${d.headline.split(' ')[0]} ${esc(d.line)}${url ? ` <${url}|${d.buttonText}>` : ''}`, 3000);
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
  const projectUrl = s.projectIds[0] ? `${baseUrl(langfuseBaseUrl)}/project/${encodeURIComponent(s.projectIds[0])}/traces` : null;
  const blocks: SlackBlock[] = [
    { type: 'header', text: { type: 'plain_text', text: truncate(`📦 … and ${what}`, 150), emoji: true } },
    {
      type: 'section',
      text: { type: 'mrkdwn', text: truncate(`*${s.count}* more ${esc(plural(s.label, s.count))} in ${span} from rule *${esc(s.rule)}*:\n${esc(shown.join(', '))}`, 3000) },
    },
    {
      type: 'context',
      elements: [
        {
          type: 'mrkdwn',
          text: truncate(
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
  return { text: truncate(`📦 ${esc(line)}`, 3000), blocks };
}
