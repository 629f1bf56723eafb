/**
 * Sending to a Slack incoming webhook. Every post of a sink goes through one chain, so that an alert
 * and a burst summary are never closer than the gap Slack asks for (about one message a second), and
 * a 429 (or a 503 with Retry-After) holds every post until then, the summaries included.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { SlackSinkConfig } from './index.js';
import { MAX_RETRY_AFTER_MS, createDispatcher, parseRetryAfter, proxiedFetch, withAttemptSignal, type AttemptSignal } from '../../http.js';
import { truncate } from '../text.js';
import { firstLine, oneLine } from '../../errors.js';
import type { DeliveryResult } from '../types.js';
import type { SlackMessage } from './format.js';

export type SlackPost = (message: SlackMessage, signal: AbortSignal) => Promise<DeliveryResult>;

async function readBody(res: { text(): Promise<string> }): Promise<string> {
  try {
    return (await res.text()).trim();
  } catch {
    return '';
  }
}

/** One attempt per call, queued behind the sink's earlier posts; `gapMs` the least time between two. */
export function createSlackPost(cfg: Pick<SlackSinkConfig, 'url' | 'timeoutSeconds'>, o: { userAgent: string; gapMs: number }): SlackPost {
  const timeoutMs = cfg.timeoutSeconds * 1000;
  const scrub = (s: string): string => s.split(cfg.url).join('<slack webhook url>');
  // Its own small pool, proxy-aware like every outbound call.
  const httpPost = proxiedFetch(createDispatcher({ connections: 2 }));

  let chain: Promise<unknown> = Promise.resolve();
  let lastPostAt = -Infinity;
  let pausedUntil = -Infinity;

  async function sendOnce(message: SlackMessage, signal: AbortSignal, attempt: AttemptSignal): Promise<DeliveryResult> {
    let res: Awaited<ReturnType<typeof httpPost>>;
    try {
      res = await httpPost(cfg.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': o.userAgent },
        body: JSON.stringify(message),
        signal: attempt.signal,
      });
    } catch (err) {
      if (signal.aborted) return { ok: false, retry: true, reason: 'Slack post aborted before an answer (shutting down)' };
      if (attempt.timedOut()) return { ok: false, retry: true, reason: `Slack did not answer within ${cfg.timeoutSeconds}s` };
      return { ok: false, retry: true, reason: scrub(`Slack unreachable: ${oneLine(err)}`) };
    }
    const body = truncate(firstLine(await readBody(res)), 200);
    const status = res.status;
    if (status >= 200 && status < 300) return { ok: true, status };
    const reason = scrub(`Slack answered ${status}${body ? `: ${body}` : ''}`);
    // A 503 that says when to come back pauses the sink as a 429 does.
    if (status === 429 || (status === 503 && res.headers.get('retry-after') !== null)) {
      const after = parseRetryAfter(res.headers.get('retry-after'));
      if (after !== null) pausedUntil = Math.max(pausedUntil, performance.now() + Math.min(after, MAX_RETRY_AFTER_MS));
      return after === null ? { ok: false, retry: true, reason, status } : { ok: false, retry: true, retryAfterMs: after, reason, status };
    }
    if (status === 408) return { ok: false, retry: true, reason, status };
    if (status >= 400 && status < 500) return { ok: false, retry: false, reason, status };
    return { ok: false, retry: true, reason, status };
  }

  return (message, signal) => {
    const run = async (): Promise<DeliveryResult> => {
      const wait = Math.max(lastPostAt + o.gapMs, pausedUntil) - performance.now();
      if (wait > 0) {
        try {
          await sleep(wait, undefined, { signal });
        } catch {
          return { ok: false, retry: true, reason: 'Slack post aborted before it was sent (shutting down)' };
        }
      }
      lastPostAt = performance.now();
      return withAttemptSignal(signal, timeoutMs, (attempt) => sendOnce(message, signal, attempt));
    };
    const p = chain.then(run, run);
    chain = p.catch(() => undefined);
    return p;
  };
}
