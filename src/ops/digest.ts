/**
 * The scheduled digest (`BRIDGE_DIGEST_CRON`): the last day's token usage and cost per model, error
 * traces and low scores, read from the events the bridge stored, posted to each Slack sink through
 * the outbox.
 */
import { createHash } from 'node:crypto';
import cron from 'node-cron';
import type { Logger } from 'pino';
import type { DeliveryBackend } from '../delivery/backend.js';
import { DIGEST_EVENT, type SlackDigest, type SlackMessage } from '../sinks/slack/format.js';
import { oneLine } from '../errors.js';
import type { Store } from '../store/index.js';

export interface Digest {
  since: string;
  until: string;
  models: Array<{ model: string; generations: number; tokens: number; cost: number }>;
  errorTraces: number;
  lowScores: Array<{ name: string; count: number }>;
}

/** Sums what happened in [sinceMs, untilMs) by the events' own timestamps. */
export function buildDigest(store: Store, sinceMs: number, untilMs: number): Digest {
  const since = new Date(sinceMs).toISOString();
  const until = new Date(untilMs).toISOString();
  return { since, until, models: store.usageByModel(since, until), errorTraces: store.errorTraces(since, until), lowScores: store.lowScores(since, until) };
}

export function digestMessage(d: Digest): SlackMessage {
  const totalCost = d.models.reduce((s, m) => s + m.cost, 0);
  const totalTokens = d.models.reduce((s, m) => s + m.tokens, 0);
  const lines = d.models.slice(0, 10).map((m) => `• *${m.model}*: ${m.generations} generations, ${m.tokens.toLocaleString('en-US')} tokens, $${m.cost.toFixed(4)}`);
  const low = d.lowScores.map((s) => `${s.name} ×${s.count}`).join(', ') || 'none';
  const text = `Langfuse digest ${d.since.slice(0, 16)}–${d.until.slice(0, 16)} UTC: ${totalTokens.toLocaleString('en-US')} tokens, $${totalCost.toFixed(4)}, ${d.errorTraces} error traces, low scores: ${low}`;
  return {
    text,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: '📊 Langfuse daily digest', emoji: true } },
      {
        type: 'section',
        fields: [
          { type: 'mrkdwn', text: `*Tokens*\n${totalTokens.toLocaleString('en-US')}` },
          { type: 'mrkdwn', text: `*Cost*\n$${totalCost.toFixed(4)}` },
          { type: 'mrkdwn', text: `*Error traces*\n${d.errorTraces}` },
          { type: 'mrkdwn', text: `*Low scores (< 0.5)*\n${low}` },
        ],
      },
      ...(lines.length ? [{ type: 'section', text: { type: 'mrkdwn', text: lines.join('\n') } }] : []),
      { type: 'context', elements: [{ type: 'mrkdwn', text: `${d.since} – ${d.until}` }] },
    ],
  };
}

/**
 * The digest's id: one per scheduled run (the minute its period ends, the cron's finest step), so that
 * a run queued twice posts once, while a schedule firing several times a day posts each time.
 */
export function digestId(d: Digest): string {
  return `dig_${createHash('sha256').update(d.until.slice(0, 16)).digest('hex').slice(0, 24)}`;
}

/**
 * Puts the digest in the outbox for these Slack sinks only (no other sink gets it): it is posted,
 * retried and dead-lettered like every Slack message, and shows in the attempt log.
 */
export function enqueueDigest(store: Store, slackSinks: string[], d: Digest): string {
  const id = digestId(d);
  const body: SlackDigest = { id, event: DIGEST_EVENT, timestamp: d.until, data: { since: d.since, until: d.until }, message: digestMessage(d) };
  store.write(() => store.enqueue([{ id, type: DIGEST_EVENT, ts: d.until, body: JSON.stringify(body), sinks: slackSinks }]));
  return id;
}

/** On the schedule: the last day's digest into the outbox for every Slack sink, and the backend woken. */
export function scheduleDigest(expr: string, store: Store, slackSinks: string[], logger: Logger, delivery: Pick<DeliveryBackend, 'wake'>): { stop(): void } {
  const task = cron.schedule(
    expr,
    () => {
      const now = Date.now();
      try {
        enqueueDigest(store, slackSinks, buildDigest(store, now - 86_400_000, now));
        delivery.wake();
      } catch (err) {
        logger.warn({ sinks: slackSinks, err: oneLine(err) }, 'could not queue the digest');
      }
    },
    { timezone: 'UTC' },
  );
  return { stop: () => void task.stop() };
}
