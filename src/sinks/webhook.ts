/**
 * The webhook sink: one signed POST per attempt, over a keep-alive connection pool of its own.
 *
 * Result mapping (the contract): 2xx delivered; 410 dead-letters at once; 408 and 429 wait their
 * `Retry-After` (and so does a 503 that sends one); any other status, a network error or a timeout is
 * retried on the schedule. A 429, or a 503 with Retry-After, pauses the whole sink (src/delivery/health.ts).
 */
import type { Dispatcher } from 'undici';
import { createDispatcher, parseRetryAfter } from '../http.js';
import type { WebhookSinkConfig } from '../config/index.js';
import { createSigner, standardSecretProblem, type Signer } from './signing.js';
import { oneLine } from '../errors.js';
import { excerpt } from './text.js';
import type { Delivery, DeliveryResult, Sink } from './types.js';

export interface WebhookSinkOptions {
  /** `langfuse-bridge/<version>` */
  userAgent: string;
}

interface Target {
  origin: string;
  path: string;
  /** Basic credentials given in the URL's userinfo, sent as a header instead. */
  authorization: string | null;
}

function parseTarget(url: string): Target | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
  const authorization =
    u.username || u.password
      ? `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`
      : null;
  return { origin: u.origin, path: `${u.pathname || '/'}${u.search}`, authorization };
}

function formatSeconds(s: number): string {
  return Number.isInteger(s) ? String(s) : String(Number(s.toFixed(3)));
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function createWebhookSink(cfg: WebhookSinkConfig, opts: WebhookSinkOptions): Sink {
  const target = parseTarget(cfg.url);
  const signer: Signer = createSigner(cfg.secret, cfg.signature);
  const timeoutMs = Math.max(1, Math.round(cfg.timeoutSeconds * 1000));
  const timeoutText = `timed out after ${formatSeconds(cfg.timeoutSeconds)} s`;
  const origin = target?.origin ?? '(invalid URL)';

  const agentOptions = {
    connections: cfg.concurrency,
    pipelining: 1,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connect: { timeout: Math.min(timeoutMs, 10_000) },
  };
  const dispatcher: Dispatcher = createDispatcher(agentOptions);

  const baseHeaders: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': opts.userAgent,
  };
  if (target?.authorization) baseHeaders.authorization = target.authorization;

  /** One line, without the secret, the path or the query string. */
  const clean = (text: string): string => {
    let line = text.replace(/\s+/g, ' ').trim();
    if (cfg.url) line = line.split(cfg.url).join(origin);
    if (cfg.secret && cfg.secret.length >= 4) line = line.split(cfg.secret).join('[secret]');
    return line.length > 240 ? `${line.slice(0, 237)}...` : line;
  };

  const failure = (reason: string, retry: boolean, extra: { status?: number; retryAfterMs?: number; response?: string | null } = {}): DeliveryResult => ({
    ok: false,
    retry,
    reason: clean(reason),
    ...(extra.status !== undefined ? { status: extra.status } : {}),
    ...(extra.retryAfterMs !== undefined ? { retryAfterMs: extra.retryAfterMs } : {}),
    ...(extra.response ? { response: extra.response } : {}),
  });

  async function deliver(delivery: Delivery, signal: AbortSignal): Promise<DeliveryResult> {
    if (!target) return failure(`webhook URL of sink ${cfg.name} is not a valid http(s) URL`, false);
    if (signal.aborted) return failure('aborted before sending', true);

    const ts = Math.floor(Date.now() / 1000);
    const headers = { ...baseHeaders, ...signer(delivery.eventId, delivery.body, ts) };

    try {
      const res = await dispatcher.request({
        origin: target.origin,
        path: target.path,
        method: 'POST',
        headers,
        body: delivery.body,
        // The attempt's timeout is the pool's headersTimeout/bodyTimeout: no timer per attempt.
        signal,
      });
      const status = res.statusCode;
      if (status >= 200 && status < 300) {
        try {
          await res.body.dump({ limit: 64 * 1024 });
        } catch {
          // Delivered: an unread or cut-off answer changes nothing.
        }
        return { ok: true, status };
      }
      // A failure: the head of the answer for the attempt log; the rest (up to 64 KB) is read so the connection is reused.
      const head: Buffer[] = [];
      let read = 0;
      try {
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          if (read < 1024) head.push(chunk);
          read += chunk.length;
          if (read > 64 * 1024) break;
        }
      } catch {
        // The status is what counts; an unread or cut-off response body changes nothing.
      }
      const response = read === 0 ? null : excerpt(Buffer.concat(head).subarray(0, 1024), [cfg.secret, ...Object.values(headers)].filter((v) => v !== opts.userAgent && v !== 'application/json'));
      const what = `HTTP ${status} from ${target.origin}`;
      if (status === 410) return failure(`${what} (gone: dead-lettered without retry)`, false, { status, response });
      // A 503 that says when to come back is a pause too (as a 429 is): the dispatcher holds the whole sink.
      if (status === 408 || status === 429 || status === 503) {
        const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
        return failure(
          retryAfterMs === null ? what : `${what}, Retry-After ${formatSeconds(retryAfterMs / 1000)} s`,
          true,
          retryAfterMs === null ? { status, response } : { status, retryAfterMs, response },
        );
      }
      return failure(what, true, { status, response });
    } catch (err) {
      if (TIMEOUT_CODES.has(errorCode(err) ?? '')) return failure(`${timeoutText} waiting for ${target.origin}`, true);
      if (signal.aborted) return failure(`aborted while sending to ${target.origin}`, true);
      const message = oneLine(err);
      const host = new URL(target.origin).hostname;
      return failure(message.includes(host) ? message : `${message} (${target.origin})`, true);
    }
  }

  return {
    name: cfg.name,
    kind: 'webhook',
    alerting: false,
    concurrency: cfg.concurrency,
    minIntervalMs: 0,
    events: cfg.events,
    deliver,
    validate(): string[] {
      const problems: string[] = [];
      const where = `sink ${cfg.name}`;
      if (!cfg.url) problems.push(`${where}: url is required (the receiver's http(s) URL)`);
      else if (!target) problems.push(`${where}: url must be an http(s) URL such as https://example.com/hooks/langfuse`);
      if (cfg.signature === 'none') {
        if (cfg.secret) problems.push(`${where}: a secret is set but signature is none (unsigned requests); remove the secret or choose a signing scheme`);
      } else if (!cfg.secret) {
        problems.push(`${where}: secret is required for the ${cfg.signature} signature scheme; set one, or choose signature none to send unsigned requests on purpose`);
      } else if (cfg.signature === 'standard') {
        const problem = standardSecretProblem(cfg.secret);
        if (problem) problems.push(`${where}: secret ${problem}; the standard scheme needs whsec_ followed by base64 (or choose signature langfuse or hex for any string)`);
      }
      if (!(cfg.timeoutSeconds > 0) || !Number.isFinite(cfg.timeoutSeconds)) {
        problems.push(`${where}: timeoutSeconds must be a positive number of seconds, got ${String(cfg.timeoutSeconds)}`);
      }
      if (!Number.isInteger(cfg.concurrency) || cfg.concurrency < 1) {
        problems.push(`${where}: concurrency must be a whole number from 1 up, got ${String(cfg.concurrency)}`);
      }
      return problems;
    },
    async close(): Promise<void> {
      await dispatcher.close();
    },
  };
}
