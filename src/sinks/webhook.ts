/**
 * The webhook sink: one signed POST per attempt, over a keep-alive connection pool of its own.
 *
 * Result mapping (the contract): 2xx delivered; 410 dead-letters at once; 408 and 429 wait their
 * `Retry-After` (and so does a 503 that sends one); any other status, a network error or a timeout is
 * retried on the schedule. A 429, or a 503 with Retry-After, pauses the whole sink (src/delivery/health.ts).
 */
import type { Dispatcher } from 'undici';
import { z } from 'zod';
import { parseUrl } from '../config/fields.js';
import { createDispatcher, parseRetryAfter } from '../http.js';
import { ConfigError, oneLine } from '../errors.js';
import { defineSinkKind, sinkFields, type SinkPlace } from './kind.js';
import { SIGNATURE_SCHEMES, createSigner, standardSecretProblem, type SignatureScheme, type Signer } from './signing.js';
import { excerpt } from './text.js';
import type { Delivery, DeliveryResult, Sink } from './types.js';

export interface WebhookSinkConfig {
  type: 'webhook';
  name: string;
  url: string;
  /** Null only with signature `none`. */
  secret: string | null;
  signature: SignatureScheme;
  events: string[];
  timeoutSeconds: number;
  concurrency: number;
}

const defaults = { signature: 'standard' as SignatureScheme, timeoutSeconds: 10, concurrency: 32 };

export const webhookSink = defineSinkKind({
  kind: 'webhook',
  alerting: false,
  defaults,
  schema: z
    .object({
      type: z.literal('webhook'),
      name: sinkFields.name.optional(),
      url: z.string().describe('the receiver: an http(s) URL (BRIDGE_WEBHOOK_URL)'),
      secret: z
        .string()
        .describe('signing secret (BRIDGE_WEBHOOK_SECRET): a whsec_ base64 secret for the standard scheme, any string for langfuse or hex; required unless signature is none')
        .optional(),
      signature: z
        .enum(SIGNATURE_SCHEMES)
        .describe(`standard (Standard Webhooks and Langfuse headers), langfuse (t=,v1=), hex (HMAC of the body) or none (unsigned, on purpose) (BRIDGE_WEBHOOK_SIGNATURE); default ${defaults.signature}`)
        .optional(),
      events: sinkFields.events.optional(),
      timeoutSeconds: sinkFields.timeoutSeconds(defaults.timeoutSeconds).optional(),
      concurrency: sinkFields.concurrency(defaults.concurrency).optional(),
    })
    .strict()
    .describe('a signed HTTP webhook'),
  env: {
    by: 'BRIDGE_WEBHOOK_URL',
    key: 'url',
    more: [
      ['BRIDGE_WEBHOOK_SECRET', 'secret', 'text'],
      ['BRIDGE_WEBHOOK_SIGNATURE', 'signature', 'text'],
      ['BRIDGE_WEBHOOK_EVENTS', 'events', 'text'],
      ['BRIDGE_WEBHOOK_TIMEOUT_SECONDS', 'timeoutSeconds', 'number'],
      ['BRIDGE_WEBHOOK_CONCURRENCY', 'concurrency', 'int'],
    ],
  },
  read(s, place): Omit<WebhookSinkConfig, 'name'> {
    const signature = s.signature ?? defaults.signature;
    const secret = s.secret || null;
    checkSecret(place, signature, secret);
    return {
      type: 'webhook',
      url: parseUrl(place.at('url'), s.url),
      secret,
      signature,
      events: s.events,
      timeoutSeconds: s.timeoutSeconds ?? defaults.timeoutSeconds,
      concurrency: s.concurrency ?? defaults.concurrency,
    };
  },
  create: (config: WebhookSinkConfig, deps) => createWebhookSink(config, { userAgent: deps.userAgent }),
});

/**
 * A webhook sink signs every request unless told `none` by name: no secret is a setting error, and so
 * is a secret next to `none` (which of the two was meant?).
 */
function checkSecret(place: SinkPlace, scheme: SignatureScheme, secret: string | null): void {
  const secretSetting = place.at('secret');
  const how = (other: string): string => place.howToSet('signature', other);
  if (scheme === 'none') {
    if (secret) throw new ConfigError(`${secretSetting} is set but ${place.at('signature')} is none (unsigned requests); remove the secret, or set ${how('standard')} (or langfuse, hex) to sign with it`);
    return;
  }
  if (!secret) {
    const what = scheme === 'standard' ? 'a whsec_ secret shared with your receiver (make one with: echo whsec_$(openssl rand -base64 32))' : `the secret your receiver verifies the ${scheme} signature with`;
    throw new ConfigError(`${secretSetting} is required: the webhook sink signs every request (${scheme} scheme); set it to ${what}, or set ${how('none')} to send unsigned requests on purpose`);
  }
  if (scheme !== 'standard') return;
  const problem = standardSecretProblem(secret);
  if (problem) {
    throw new ConfigError(
      `${secretSetting} ${problem}; the standard signature scheme needs a whsec_ secret with base64 after it, as your receiver's Standard Webhooks library has it ` +
        `(make one with: echo whsec_$(openssl rand -base64 32)), or set ${how('langfuse')} or hex to sign with any string`,
    );
  }
}

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
    kind: webhookSink.kind,
    alerting: webhookSink.alerting,
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
