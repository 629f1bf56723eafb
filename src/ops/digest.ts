/**
 * The scheduled digest (`BRIDGE_DIGEST_CRON`): the last day's token usage and cost per model, error
 * traces and low scores, read from the events the bridge stored, posted to each Slack sink.
 */
import cron from 'node-cron';
import type { Logger } from 'pino';
import type { SlackSinkConfig } from '../config.js';
import { createDispatcher, proxiedFetch } from '../http.js';
import { sleep } from '../langfuse/rate-limiter.js';
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
  const models = store.db
    .prepare(
      `SELECT COALESCE(json_extract(body, '$.data.model'), 'unknown') AS model, COUNT(*) AS generations,
              COALESCE(SUM(json_extract(body, '$.data.usage.totalTokens')), 0) AS tokens, COALESCE(SUM(json_extract(body, '$.data.totalCost')), 0) AS cost
       FROM events WHERE type = 'generation.created' AND ts >= ? AND ts < ? GROUP BY 1 ORDER BY cost DESC, generations DESC`,
    )
    .all(since, until) as Digest['models'];
  const errors = store.db
    .prepare(`SELECT COUNT(*) AS n FROM events WHERE type = 'trace.updated' AND json_extract(body, '$.data.level') = 'ERROR' AND ts >= ? AND ts < ?`)
    .get(since, until) as { n: number };
  const lowScores = store.db
    .prepare(
      `SELECT json_extract(body, '$.data.name') AS name, COUNT(*) AS count FROM events
       WHERE type = 'score.created' AND json_extract(body, '$.data.dataType') = 'NUMERIC' AND json_extract(body, '$.data.value') < 0.5 AND ts >= ? AND ts < ?
       GROUP BY 1 ORDER BY 2 DESC`,
    )
    .all(since, until) as Digest['lowScores'];
  return { since, until, models, errorTraces: errors.n, lowScores };
}

export function digestMessage(d: Digest): { text: string; blocks: unknown[] } {
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

/** Posts the digest to every Slack sink; a failing post is tried three times, then logged. */
export function scheduleDigest(expr: string, store: Store, slacks: SlackSinkConfig[], logger: Logger): { stop(): void } {
  const post = proxiedFetch(createDispatcher({ connections: 1 }));
  const task = cron.schedule(
    expr,
    async () => {
      const now = Date.now();
      const message = digestMessage(buildDigest(store, now - 86_400_000, now));
      for (const s of slacks) {
        for (let attempt = 1; attempt <= 3; attempt++) {
          try {
            const res = await post(s.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(message), signal: AbortSignal.timeout(s.timeoutSeconds * 1000) });
            await res.text();
            if (res.ok) break;
            throw new Error(`Slack answered ${res.status}`);
          } catch (err) {
            logger.warn({ sink: s.name, attempt, err: (err as Error).message }, 'digest post failed');
            if (attempt < 3) await sleep(5_000 * attempt);
          }
        }
      }
    },
    { timezone: 'UTC' },
  );
  return { stop: () => void task.stop() };
}
