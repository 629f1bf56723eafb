/**
 * Signature headers for webhook deliveries (pure functions, no I/O).
 *
 * - `standard`: Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`),
 *   keyed by the base64-decoded secret after `whsec_`, plus Langfuse's `x-langfuse-signature: t=…,v1=…`
 *   keyed by the whole secret string.
 * - `langfuse`: only `x-langfuse-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
 * - `hex`: only `x-langfuse-signature: <hex HMAC-SHA256 of the body>`, for receivers that verify the body alone.
 * - `none`: unsigned, chosen on purpose (the settings refuse a signing scheme without a secret); the
 *   `webhook-id`/`webhook-timestamp` pair still goes out, so receivers can dedupe.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_SCHEMES = ['standard', 'langfuse', 'hex', 'none'] as const;
/** `none`: unsigned requests, only when asked for by name. */
export type SignatureScheme = (typeof SIGNATURE_SCHEMES)[number];

export const STANDARD_SECRET_PREFIX = 'whsec_';
export const LANGFUSE_SIGNATURE_HEADER = 'x-langfuse-signature';

export type SignatureHeaders = Record<string, string>;

/** Computes the signature headers of one attempt; keys are decoded once, when the signer is made. */
export type Signer = (eventId: string, body: string, timestampSeconds: number) => SignatureHeaders;

/** The Standard Webhooks key: the secret without its `whsec_` prefix, base64-decoded. */
export function decodeStandardSecret(secret: string): Buffer {
  const raw = secret.startsWith(STANDARD_SECRET_PREFIX) ? secret.slice(STANDARD_SECRET_PREFIX.length) : secret;
  return Buffer.from(raw, 'base64');
}

/** Standard Webhooks secrets are 24 to 64 random bytes; fewer is refused, more is allowed. */
export const STANDARD_SECRET_MIN_BYTES = 24;

/**
 * What is wrong with a secret for the standard scheme, in words (never quoting the secret), or null when
 * it is usable: `whsec_` followed by standard, padded base64 (what the `standardwebhooks` and `svix`
 * libraries decode) of at least {@link STANDARD_SECRET_MIN_BYTES} bytes.
 */
export function standardSecretProblem(secret: string): string | null {
  if (!secret.startsWith(STANDARD_SECRET_PREFIX)) {
    return /^whsec/i.test(secret) ? `does not start with the exact prefix ${STANDARD_SECRET_PREFIX}` : `has no ${STANDARD_SECRET_PREFIX} prefix`;
  }
  const b64 = secret.slice(STANDARD_SECRET_PREFIX.length);
  if (b64 === '') return `has nothing after its ${STANDARD_SECRET_PREFIX} prefix`;
  const bad = /[^A-Za-z0-9+/=]/.exec(b64);
  if (bad) {
    const what = /\s/.test(bad[0]) ? 'whitespace' : JSON.stringify(bad[0]);
    return `is not base64 after its ${STANDARD_SECRET_PREFIX} prefix (${what} at character ${bad.index + 1} of the base64 part)`;
  }
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    return `is not base64 after its ${STANDARD_SECRET_PREFIX} prefix (${b64.length} characters with padding misplaced or missing: base64 comes in groups of 4, padded with =)`;
  }
  const bytes = Buffer.from(b64, 'base64').length;
  if (bytes < STANDARD_SECRET_MIN_BYTES) return `is too short: it decodes to ${bytes} byte${bytes === 1 ? '' : 's'}, and a Standard Webhooks secret has at least ${STANDARD_SECRET_MIN_BYTES}`;
  return null;
}

function hmacHex(key: Buffer, data: string): string {
  return createHmac('sha256', key).update(data, 'utf8').digest('hex');
}

function hmacBase64(key: Buffer, data: string): string {
  return createHmac('sha256', key).update(data, 'utf8').digest('base64');
}

function checkTimestamp(ts: number): void {
  if (!Number.isSafeInteger(ts) || ts < 0) throw new RangeError(`timestamp must be whole unix seconds, got ${ts}`);
}

/** Makes the per-sink signer: decodes the secret once and reuses the key buffers for every attempt. */
export function createSigner(secret: string | null, scheme: SignatureScheme): Signer {
  const secretKey = secret ? Buffer.from(secret, 'utf8') : null;
  switch (scheme) {
    case 'standard': {
      const standardKey = secret ? decodeStandardSecret(secret) : null;
      return (eventId, body, ts) => {
        checkTimestamp(ts);
        const headers: SignatureHeaders = { 'webhook-id': eventId, 'webhook-timestamp': String(ts) };
        if (standardKey && secretKey) {
          headers['webhook-signature'] = `v1,${hmacBase64(standardKey, `${eventId}.${ts}.${body}`)}`;
          headers[LANGFUSE_SIGNATURE_HEADER] = `t=${ts},v1=${hmacHex(secretKey, `${ts}.${body}`)}`;
        }
        return headers;
      };
    }
    case 'langfuse':
      return (_eventId, body, ts): SignatureHeaders => {
        checkTimestamp(ts);
        if (!secretKey) return {};
        return { [LANGFUSE_SIGNATURE_HEADER]: `t=${ts},v1=${hmacHex(secretKey, `${ts}.${body}`)}` };
      };
    case 'hex':
      return (_eventId, body): SignatureHeaders => {
        if (!secretKey) return {};
        return { [LANGFUSE_SIGNATURE_HEADER]: hmacHex(secretKey, body) };
      };
    case 'none':
      return (eventId, _body, ts): SignatureHeaders => {
        checkTimestamp(ts);
        return { 'webhook-id': eventId, 'webhook-timestamp': String(ts) };
      };
  }
}

// A few signers kept for the one-shot form below, so repeated calls with the same secret do not re-decode it.
const signerCache = new Map<string, Signer>();
const SIGNER_CACHE_MAX = 16;

/** One-shot form of {@link createSigner}: the headers for one attempt. */
export function signatureHeaders(
  eventId: string,
  body: string,
  timestampSeconds: number,
  secret: string | null,
  scheme: SignatureScheme,
): SignatureHeaders {
  const cacheKey = `${scheme}\u0000${secret ?? ''}\u0000${secret === null ? 0 : 1}`;
  let signer = signerCache.get(cacheKey);
  if (!signer) {
    signer = createSigner(secret, scheme);
    if (signerCache.size >= SIGNER_CACHE_MAX) {
      const oldest = signerCache.keys().next();
      if (!oldest.done) signerCache.delete(oldest.value);
    }
    signerCache.set(cacheKey, signer);
  }
  return signer(eventId, body, timestampSeconds);
}

/**
 * Langfuse's documented receiver check for `x-langfuse-signature: t=<unix seconds>,v1=<hex>`: the timestamp
 * is within `toleranceSeconds` of now (either way) and one `v1` equals the hex HMAC-SHA256 of `"<t>.<body>"`
 * keyed by the secret string, compared in constant time. Any malformed header is simply `false`.
 */
export function verifyLangfuseSignature(
  body: string,
  header: string | null | undefined,
  secret: string,
  toleranceSeconds = 300,
  nowSeconds: number = Math.floor(Date.now() / 1000),
): boolean {
  if (typeof header !== 'string' || header === '' || !secret) return false;
  let timestamp: string | null = null;
  const candidates: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't') timestamp = value;
    else if (key === 'v1') candidates.push(value);
  }
  if (timestamp === null || !/^\d{1,15}$/.test(timestamp) || candidates.length === 0) return false;
  if (Math.abs(nowSeconds - Number(timestamp)) > toleranceSeconds) return false;

  const expected = Buffer.from(createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex'), 'utf8');
  let ok = false;
  for (const candidate of candidates) {
    const given = Buffer.from(candidate.toLowerCase(), 'utf8');
    if (given.length === expected.length && timingSafeEqual(given, expected)) ok = true;
  }
  return ok;
}
