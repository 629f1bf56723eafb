/**
 * What Slack and PagerDuty get for a monitor event, as pure functions of the event: a readable Slack
 * message (value against threshold, the trend of the last windows, a link into Langfuse) and a
 * PagerDuty trigger (alert: critical, warning: warning) or resolve, one dedup key per project and
 * monitor so the incident opened by an alert is the one a warning updates and a recovery resolves.
 */
import type { MonitorData } from '../events/types.js';
import { slackEscape } from '../sinks/text.js';
import { monitorDedupKey, type MonitorEvent } from './events.js';

const MEASURE_WORDS: Record<string, string> = { latency: 'latency', cost: 'cost', totalTokens: 'total tokens', value: 'score' };

/** `error rate`, `p95 latency`, `mean score`, `count`. */
export function metricWords(d: Pick<MonitorData, 'metric' | 'of'>): string {
  const of = d.of ? MEASURE_WORDS[d.of] ?? d.of : '';
  switch (d.metric) {
    case 'count':
      return 'count';
    case 'errorRate':
      return 'error rate';
    case 'avg':
      return `mean ${of}`;
    default:
      return `${d.metric} ${of}`.trim();
  }
}

/** A value in the unit of its measure: 5.2 %, 8.31 s, $20.40, 1,024. */
export function formatMonitorValue(d: Pick<MonitorData, 'metric' | 'of'>, v: number | null): string {
  if (v === null) return 'no data';
  if (d.metric === 'errorRate') return `${(v * 100).toFixed(v * 100 >= 10 ? 1 : 2).replace(/\.?0+$/, '')} %`;
  if (d.metric === 'count') return Math.round(v).toLocaleString('en-US');
  if (d.of === 'latency') return `${v >= 10 ? v.toFixed(1) : v.toFixed(2)} s`;
  if (d.of === 'cost') return `$${v >= 1 ? v.toFixed(2) : v.toPrecision(3)}`;
  if (d.of === 'totalTokens') return Math.round(v).toLocaleString('en-US');
  return Number.isInteger(v) ? String(v) : v.toPrecision(3).replace(/\.?0+$/, '');
}

const SPARK = '▁▂▃▄▅▆▇█';

/** The last windows' values as a sparkline, oldest first; gaps (no data) as a dot. */
export function trendLine(values: ReadonlyArray<number | null>): string {
  const nums = values.filter((v): v is number => v !== null);
  if (!nums.length) return '';
  const lo = Math.min(...nums);
  const hi = Math.max(...nums);
  return values.map((v) => (v === null ? '·' : SPARK[hi === lo ? 3 : Math.round(((v - lo) / (hi - lo)) * (SPARK.length - 1))])).join('');
}

function headline(e: MonitorEvent): string {
  const d = e.data;
  if (e.event === 'monitor.resolved') return d.removed ? `✅ Resolved: monitor ${d.monitor} was removed from the config` : `✅ Resolved: ${d.monitor}`;
  return `${e.event === 'monitor.alert' ? '🚨 Alert' : '⚠️ Warning'}: ${d.monitor}`;
}

/** One line: `error rate 7.5 % > 5 % over 15m (214 items)`. */
export function monitorLine(e: MonitorEvent): string {
  const d = e.data;
  const value = formatMonitorValue(d, d.value);
  const samples = `${d.samples} item${d.samples === 1 ? '' : 's'}`;
  if (e.event === 'monitor.resolved') return `${metricWords(d)} ${value} over ${d.window} (${samples}); alert at ${d.op} ${formatMonitorValue(d, d.threshold)}`;
  return `${metricWords(d)} ${value} ${d.op} ${formatMonitorValue(d, d.threshold)} over ${d.window} (${samples})`;
}

const esc = slackEscape;

export interface MonitorSlackMessage {
  text: string;
  blocks: Array<Record<string, unknown>>;
}

export function buildMonitorSlackMessage(e: MonitorEvent): MonitorSlackMessage {
  const d = e.data;
  const trend = trendLine(d.recent);
  const fields = [
    { type: 'mrkdwn', text: `*Value*\n${esc(formatMonitorValue(d, d.value))}` },
    { type: 'mrkdwn', text: `*Threshold*\n${esc(`${d.op} ${formatMonitorValue(d, d.threshold)}`)}` },
    { type: 'mrkdwn', text: `*Window*\n${esc(`${d.window} to ${d.windowEnd.slice(11, 16)} UTC`)}` },
    { type: 'mrkdwn', text: `*Items*\n${d.samples}` },
  ];
  if (trend) fields.push({ type: 'mrkdwn', text: `*Last windows*\n${trend} (${esc(d.recent.map((v) => formatMonitorValue(d, v)).slice(-3).join(' → '))})` });
  fields.push({ type: 'mrkdwn', text: `*Project*\n${esc(d.projectId)}` });
  const title = headline(e);
  return {
    text: `${title} — ${monitorLine(e)}`,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: title.slice(0, 150), emoji: true } },
      { type: 'section', text: { type: 'mrkdwn', text: esc(monitorLine(e)) } },
      { type: 'section', fields: fields.slice(0, 10) },
      { type: 'actions', elements: [{ type: 'button', text: { type: 'plain_text', text: 'View in Langfuse' }, url: d.url }] },
    ],
  };
}

export interface MonitorPagerDutyEvent {
  routing_key: string;
  event_action: 'trigger' | 'resolve';
  dedup_key: string;
  payload?: {
    summary: string;
    source: string;
    severity: 'critical' | 'warning';
    timestamp: string;
    component: string;
    class: string;
    custom_details: MonitorData;
  };
  links?: Array<{ href: string; text: string }>;
  client?: string;
  client_url?: string;
}

export function buildMonitorPagerDutyEvent(e: MonitorEvent, routingKey: string, langfuseBaseUrl: string): MonitorPagerDutyEvent {
  const d = e.data;
  const dedupKey = monitorDedupKey(d.projectId, d.monitor);
  if (e.event === 'monitor.resolved') return { routing_key: routingKey, event_action: 'resolve', dedup_key: dedupKey };
  const base = langfuseBaseUrl.replace(/\/+$/, '');
  let host = base;
  try {
    host = new URL(base).host;
  } catch {
    /* the base as written */
  }
  return {
    routing_key: routingKey,
    event_action: 'trigger',
    dedup_key: dedupKey,
    payload: {
      summary: `Langfuse monitor ${d.monitor}: ${monitorLine(e)}`.slice(0, 1024),
      source: `${host}/project/${d.projectId}`,
      severity: e.event === 'monitor.alert' ? 'critical' : 'warning',
      timestamp: e.timestamp,
      component: d.monitor,
      class: e.event,
      custom_details: d,
    },
    links: [{ href: d.url, text: 'View in Langfuse' }],
    client: 'langfuse-bridge',
    client_url: `${base}/project/${encodeURIComponent(d.projectId)}`,
  };
}
