/**
 * Slack incoming-webhook sink for alerts. Rules decide which events reach it, and for which rule,
 * when the event is routed (src/rules/route.ts); the decision comes with the delivery, and each
 * becomes one Block Kit message (format.ts) linking to the trace in the configured Langfuse host.
 * Slack allows about one message a second per webhook: the dispatcher starts at most one delivery a
 * second here, and the few posts this sink makes on its own (burst summaries, bursts.ts) keep the
 * same spacing (post.ts).
 */
import { z } from 'zod';
import { parseUrl } from '../../config/fields.js';
import { isMonitorEvent } from '../../monitors/events.js';
import { buildMonitorSlackMessage } from '../../monitors/notify.js';
import { decodeRoute } from '../../rules/route.js';
import { defineSinkKind, sinkFields, type AlertSinkOptions } from '../kind.js';
import type { Delivery, DeliveryResult, Sink } from '../types.js';
import { Bursts } from './bursts.js';
import { DIGEST_EVENT, buildSlackMessage, buildSlackSummary, type SlackDigest } from './format.js';
import { createSlackPost } from './post.js';

export interface SlackSinkConfig {
  type: 'slack';
  name: string;
  url: string;
  events: string[];
  timeoutSeconds: number;
}

const defaults = { timeoutSeconds: 10 };

export const slackSink = defineSinkKind({
  kind: 'slack',
  alerting: true,
  defaults,
  schema: z
    .object({
      type: z.literal('slack'),
      name: sinkFields.name.optional(),
      url: z.string().describe('the Slack incoming-webhook URL (SLACK_WEBHOOK_URL)'),
      events: sinkFields.events.optional(),
      timeoutSeconds: sinkFields.timeoutSeconds(defaults.timeoutSeconds).optional(),
    })
    .strict()
    .describe('alerts to a Slack incoming webhook'),
  env: { by: 'SLACK_WEBHOOK_URL', key: 'url', more: [] },
  read: (s, place): Omit<SlackSinkConfig, 'name'> => ({
    type: 'slack',
    url: parseUrl(place.at('url'), s.url),
    events: s.events,
    timeoutSeconds: s.timeoutSeconds ?? defaults.timeoutSeconds,
  }),
  create: (config: SlackSinkConfig, deps) => createSlackSink(config, deps),
});

export interface SlackSinkOptions extends AlertSinkOptions {
  alertBurst: number;
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

export function createSlackSink(cfg: SlackSinkConfig, opts: SlackSinkOptions): SlackSink {
  const now = opts.now ?? Date.now;
  const timeoutMs = cfg.timeoutSeconds * 1000;
  // A little over a second: Slack counts arrivals, and the network can bunch two posts together.
  const post = createSlackPost(cfg, { userAgent: opts.userAgent, gapMs: opts.minPostGapMs ?? 1100 });
  const bursts = new Bursts({
    sink: cfg.name,
    limit: opts.alertBurst,
    now,
    retry: opts.summaryRetry ?? { attempts: 5, baseMs: 2000 },
    warn: opts.warn ?? (() => {}),
    post: (summary, signal) => post(buildSlackSummary(summary, opts.langfuseBaseUrl), signal),
  });

  /** "once" rules: (rule, dedup key) → the event that alerted; repeats about the same thing are skipped. */
  const alerted = new Map<string, string>();
  const ALERTED_MAX = 20_000;

  function remember(key: string, eventId: string): void {
    alerted.delete(key);
    alerted.set(key, eventId);
    if (alerted.size > ALERTED_MAX) {
      const oldest = alerted.keys().next().value;
      if (oldest !== undefined) alerted.delete(oldest);
    }
  }

  return {
    name: cfg.name,
    kind: slackSink.kind,
    alerting: slackSink.alerting,
    concurrency: 1,
    minIntervalMs: 1000,

    events: cfg.events,

    async deliver(delivery: Delivery, signal: AbortSignal): Promise<DeliveryResult> {
      // The digest comes with its message made, and no rule decides about it.
      if (delivery.eventType === DIGEST_EVENT) return post((JSON.parse(delivery.body) as SlackDigest).message, signal);
      const event = delivery.event;
      // Monitor events come to the sinks their monitor names: one message each, never folded.
      if (isMonitorEvent(event)) return post(buildMonitorSlackMessage(event), signal);
      const t = now();
      await bursts.catchUp(t);

      const m = (decodeRoute(delivery.route) ?? opts.decideNow(event))[0];
      if (!m) return { ok: true };
      const onceKey = `${m.rule}\u0000${m.dedupKey}`;
      if (m.mode === 'once') {
        const prev = alerted.get(onceKey);
        if (prev !== undefined && prev !== event.id) return { ok: true };
      }
      if (event.event !== 'test') {
        if (bursts.full(m.rule, t)) {
          bursts.fold(m.rule, m.label, event);
          if (m.mode === 'once') remember(onceKey, event.id);
          return { ok: true };
        }
        const res = await post(buildSlackMessage(event, opts.langfuseBaseUrl, { label: m.label, rule: m.rule }), signal);
        if (res.ok) {
          bursts.posted(m.rule);
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
      if (opts.unrouted) problems.push(`${cfg.name}: no rule sends alerts to this sink; name it in a rule's "sinks"`);
      return problems;
    },

    flushSummaries() {
      return bursts.flush();
    },

    async close() {
      // One last try for folded alerts, bounded so shutdown stays quick.
      await bursts.close(Math.min(5000, timeoutMs));
    },
  };
}
