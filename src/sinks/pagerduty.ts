/**
 * PagerDuty Events API v2 sink for alerts. Rules decide which events page, when the event is routed
 * (src/rules/route.ts); the decision comes with the delivery, and each alert in it becomes a
 * `trigger` (or, for rules with `resolveWhen`, a `resolve`) whose `dedup_key` is stable per project
 * and trace or score, so a repeat updates the open incident instead of paging again.
 * The routing key is a secret: it goes in the body and nowhere else (no reasons, no logs).
 */
import { z } from 'zod';
import { parseUrl } from '../config/fields.js';
import type { AnyBridgeEvent } from '../events/types.js';
import type { AlertAction, Severity } from '../rules/index.js';
import { decodeRoute, type AlertDecision } from '../rules/route.js';
import { createDispatcher, parseRetryAfter, proxiedFetch, withAttemptSignal, type AttemptSignal } from '../http.js';
import { isMonitorEvent } from '../monitors/events.js';
import { buildMonitorPagerDutyEvent, monitorLine } from '../monitors/notify.js';
import { baseUrl, capitalize, formatCost, formatNumber, langfuseUrlFor, truncate } from './text.js';
import { ConfigError, firstLine, oneLine } from '../errors.js';
import { defineSinkKind, sinkFields, type AlertSinkOptions } from './kind.js';
import type { Delivery, DeliveryResult, Sink } from './types.js';

export interface PagerDutySinkConfig {
  type: 'pagerduty';
  name: string;
  routingKey: string;
  eventsUrl: string;
  events: string[];
  timeoutSeconds: number;
}

const defaults = { eventsUrl: 'https://events.pagerduty.com/v2/enqueue', timeoutSeconds: 10 };

export const pagerDutySink = defineSinkKind({
  kind: 'pagerduty',
  alerting: true,
  defaults,
  schema: z
    .object({
      type: z.literal('pagerduty'),
      name: sinkFields.name.optional(),
      routingKey: z.string().describe("the integration's Events API v2 routing key (PAGERDUTY_ROUTING_KEY)"),
      eventsUrl: z.string().describe(`the Events API v2 endpoint (PAGERDUTY_EVENTS_URL); default ${defaults.eventsUrl}`).optional(),
      events: sinkFields.events.optional(),
      timeoutSeconds: sinkFields.timeoutSeconds(defaults.timeoutSeconds).optional(),
    })
    .strict()
    .describe('alerts to PagerDuty (Events API v2)'),
  env: { by: 'PAGERDUTY_ROUTING_KEY', key: 'routingKey', more: [['PAGERDUTY_EVENTS_URL', 'eventsUrl', 'text']] },
  read(s, place): Omit<PagerDutySinkConfig, 'name'> {
    if (!s.routingKey) throw new ConfigError(`${place.at('routingKey')} is required for a pagerduty sink (the integration's Events API v2 routing key)`);
    return {
      type: 'pagerduty',
      routingKey: s.routingKey,
      eventsUrl: s.eventsUrl === undefined ? defaults.eventsUrl : parseUrl(place.at('eventsUrl'), s.eventsUrl),
      events: s.events,
      timeoutSeconds: s.timeoutSeconds ?? defaults.timeoutSeconds,
    };
  },
  create: (config: PagerDutySinkConfig, deps) => createPagerDutySink(config, deps),
});

export type PagerDutySinkOptions = AlertSinkOptions;

export interface PagerDutyEvent {
  routing_key: string;
  event_action: AlertAction;
  dedup_key: string;
  payload?: {
    summary: string;
    source: string;
    severity: Severity;
    timestamp: string;
    component?: string;
    group?: string;
    class: string;
    custom_details: unknown;
  };
  links?: Array<{ href: string; text: string }>;
  client?: string;
  client_url?: string;
}

const MAX_DETAILS_CHARS = 400_000;

/** One line, at most 1024 characters, that names what happened and where. */
export function pagerDutySummary(event: AnyBridgeEvent, label?: string): string {
  let s: string;
  switch (event.event) {
    case 'trace.created':
    case 'trace.updated': {
      const d = event.data;
      const l = label ?? (d.level === 'ERROR' ? 'error trace' : d.level === 'WARNING' ? 'warning trace' : 'trace');
      s = `${capitalize(l)} "${d.name ?? d.traceId}"${d.environment ? ` in ${d.environment}` : ''}${d.statusMessage ? `: ${firstLine(d.statusMessage)}` : ''} (trace ${d.traceId})`;
      break;
    }
    case 'generation.created':
    case 'generation.updated': {
      const d = event.data;
      const l = label ?? (d.level === 'ERROR' ? 'error generation' : 'generation');
      const tokens = d.usage?.totalTokens;
      s =
        `${capitalize(l)} "${d.name ?? d.observationId}"${d.model ? ` on ${d.model}` : ''}` +
        `${typeof d.totalCost === 'number' ? `, cost ${formatCost(d.totalCost)}` : ''}${typeof tokens === 'number' ? `, ${tokens} tokens` : ''}` +
        `${d.statusMessage ? `: ${firstLine(d.statusMessage)}` : ''} (trace ${d.traceId})`;
      break;
    }
    case 'score.created':
    case 'score.updated': {
      const d = event.data;
      const l = label ?? 'score';
      const v = typeof d.value === 'number' ? formatNumber(d.value) : String(d.value);
      s = `${capitalize(l)}: ${d.name} = ${v}${d.traceId ? ` on trace ${d.traceId}` : d.sessionId ? ` on session ${d.sessionId}` : ''}${d.comment ? ` (${firstLine(d.comment)})` : ''}`;
      break;
    }
    case 'prompt.created':
    case 'prompt.updated': {
      const p = event.data.prompt;
      s = `${event.event === 'prompt.created' ? 'Prompt version created' : 'Prompt updated'}: ${String(p.name ?? '')}${p.version !== undefined ? ` v${String(p.version)}` : ''}`;
      break;
    }
    case 'test':
      s = `Test event from langfuse-bridge: ${event.data.message}`;
      break;
    case 'monitor.alert':
    case 'monitor.warning':
    case 'monitor.resolved':
      s = `monitor ${event.data.monitor}: ${monitorLine(event)}`;
      break;
  }
  return truncate(`Langfuse: ${s}`, 1024);
}

function component(event: AnyBridgeEvent): string | undefined {
  switch (event.event) {
    case 'trace.created':
    case 'trace.updated':
      return event.data.name ?? undefined;
    case 'generation.created':
    case 'generation.updated':
      return event.data.name ?? event.data.model ?? undefined;
    case 'score.created':
    case 'score.updated':
      return event.data.name;
    case 'prompt.created':
    case 'prompt.updated':
      return typeof event.data.prompt.name === 'string' ? event.data.prompt.name : undefined;
    case 'test':
      return 'langfuse-bridge';
  }
}

function group(event: AnyBridgeEvent): string | undefined {
  if (event.event === 'trace.created' || event.event === 'trace.updated') return event.data.environment ?? undefined;
  if (event.event === 'generation.created' || event.event === 'generation.updated') return event.data.model ?? undefined;
  return undefined;
}

function details(event: AnyBridgeEvent): unknown {
  const data = event.data as unknown as Record<string, unknown>;
  if (JSON.stringify(data).length <= MAX_DETAILS_CHARS) return data;
  // PagerDuty takes at most 512 KB per event; prompts and completions are what make it big.
  const { input: _input, output: _output, ...rest } = data;
  return { ...rest, note: 'input and output left out: too large for PagerDuty' };
}

/** The Events API v2 body for one match. A resolve carries no payload. */
export function buildPagerDutyEvent(
  event: AnyBridgeEvent,
  match: Pick<AlertDecision, 'action' | 'dedupKey' | 'severity' | 'label'>,
  routingKey: string,
  langfuseBaseUrl: string,
): PagerDutyEvent {
  if (match.action === 'resolve') return { routing_key: routingKey, event_action: 'resolve', dedup_key: match.dedupKey };
  const base = baseUrl(langfuseBaseUrl);
  let host: string;
  try {
    host = new URL(base).host;
  } catch {
    host = base;
  }
  const url = langfuseUrlFor(event, base);
  const isTrace = url !== null && url.includes('/traces/');
  const comp = component(event);
  const grp = group(event);
  return {
    routing_key: routingKey,
    event_action: 'trigger',
    dedup_key: match.dedupKey,
    payload: {
      summary: pagerDutySummary(event, match.label),
      source: `${host}/project/${event.data.projectId}`,
      severity: match.severity,
      timestamp: event.timestamp,
      ...(comp ? { component: truncate(comp, 255) } : {}),
      ...(grp ? { group: truncate(grp, 255) } : {}),
      class: event.event,
      custom_details: details(event),
    },
    links: url ? [{ href: url, text: isTrace ? 'View trace in Langfuse' : 'View in Langfuse' }] : [],
    client: 'langfuse-bridge',
    client_url: `${base}/project/${encodeURIComponent(event.data.projectId)}`,
  };
}

export function createPagerDutySink(cfg: PagerDutySinkConfig, opts: PagerDutySinkOptions): Sink {
  const timeoutMs = cfg.timeoutSeconds * 1000;
  const scrub = (s: string): string => (cfg.routingKey ? s.split(cfg.routingKey).join('<routing key>') : s);

  // Its own small pool, proxy-aware like every outbound call.
  const httpPost = proxiedFetch(createDispatcher({ connections: 2 }));

  const send = (body: PagerDutyEvent, signal: AbortSignal): Promise<DeliveryResult> => withAttemptSignal(signal, timeoutMs, (attempt) => sendOnce(body, signal, attempt));

  async function sendOnce(body: PagerDutyEvent, signal: AbortSignal, attempt: AttemptSignal): Promise<DeliveryResult> {
    let res: Awaited<ReturnType<typeof httpPost>>;
    try {
      res = await httpPost(cfg.eventsUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', 'user-agent': opts.userAgent },
        body: JSON.stringify(body),
        signal: attempt.signal,
      });
    } catch (err) {
      if (signal.aborted) return { ok: false, retry: true, reason: 'PagerDuty call aborted before an answer (shutting down)' };
      if (attempt.timedOut()) return { ok: false, retry: true, reason: `PagerDuty did not answer within ${cfg.timeoutSeconds}s` };
      return { ok: false, retry: true, reason: scrub(`PagerDuty unreachable: ${oneLine(err)}`) };
    }
    let text = '';
    try {
      text = await res.text();
    } catch {
      // The status is what counts.
    }
    const status = res.status;
    if (status >= 200 && status < 300) return { ok: true, status };
    let said = '';
    try {
      const j = JSON.parse(text) as { message?: unknown; errors?: unknown };
      const errors = Array.isArray(j.errors) ? j.errors.map(String).join('; ') : '';
      said = [typeof j.message === 'string' ? j.message : '', errors].filter(Boolean).join(': ');
    } catch {
      said = firstLine(text.trim());
    }
    const reason = scrub(truncate(`PagerDuty answered ${status}${said ? `: ${said}` : ''}`, 500));
    // A 503 that says when to come back pauses the sink as a 429 does.
    if (status === 429 || (status === 503 && res.headers.get('retry-after') !== null)) {
      const after = parseRetryAfter(res.headers.get('retry-after'));
      return after === null ? { ok: false, retry: true, reason, status } : { ok: false, retry: true, retryAfterMs: after, reason, status };
    }
    if (status === 408 || status >= 500) return { ok: false, retry: true, reason, status };
    return { ok: false, retry: false, reason, status };
  }

  return {
    name: cfg.name,
    kind: pagerDutySink.kind,
    alerting: pagerDutySink.alerting,
    concurrency: 1,
    minIntervalMs: 0,

    events: cfg.events,

    async deliver(delivery: Delivery, signal: AbortSignal): Promise<DeliveryResult> {
      const event = delivery.event;
      // Monitor events come to the sinks their monitor names; a monitor's incident, not a rule's.
      if (isMonitorEvent(event)) return send(buildMonitorPagerDutyEvent(event, cfg.routingKey, opts.langfuseBaseUrl) as PagerDutyEvent, signal);
      let last: DeliveryResult = { ok: true };
      for (const m of decodeRoute(delivery.route) ?? opts.decideNow(event)) {
        last = await send(buildPagerDutyEvent(event, m, cfg.routingKey, opts.langfuseBaseUrl), signal);
        if (!last.ok) return last;
      }
      return last;
    },

    validate() {
      const problems: string[] = [];
      if (!/^[A-Za-z0-9]{32}$/.test(cfg.routingKey)) {
        problems.push(`${cfg.name}: the PagerDuty routing key does not look like an Events API v2 integration key (32 letters and digits)`);
      }
      if (opts.unrouted) problems.push(`${cfg.name}: no rule sends alerts to this sink; name it in a rule's "sinks"`);
      return problems;
    },
  };
}
