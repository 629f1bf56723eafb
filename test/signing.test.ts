import crypto, { createHmac, timingSafeEqual } from 'node:crypto';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { Webhook as SvixWebhook } from 'svix';
import { describe, expect, it } from 'vitest';
import { createSigner, signatureHeaders, verifyLangfuseSignature } from '../src/sinks/signing.js';

const STANDARD_SECRET = `whsec_${Buffer.from('a 24-byte test key......').toString('base64')}`;
const PLAIN_SECRET = 'lf-whsec_plain-string-secret';
const EVENT_ID = 'evt_0123456789abcdef';
const BODY = JSON.stringify({
  id: EVENT_ID,
  event: 'trace.updated',
  timestamp: '2026-11-27T01:02:03.456Z',
  data: { projectId: 'p1', traceId: 't1', name: 'naïve — résumé ✓', level: 'ERROR', statusMessage: 'boom' },
});
const TAMPERED = BODY.replace('"ERROR"', '"DEBUG"');
const now = (): number => Math.floor(Date.now() / 1000);

// The receiver from reference/webhooks-tutorial.txt, copied as is (its secret is module state there too).
const WEBHOOK_SECRET = PLAIN_SECRET;
function verifySignature(payload: string, signature: string): boolean {
  const expectedSignature = crypto
    .createHmac("sha256", WEBHOOK_SECRET)
    .update(payload)
    .digest("hex");

  return crypto.timingSafeEqual(
    Buffer.from(signature),
    Buffer.from(expectedSignature)
  );
}

// Langfuse's documented receiver check, written out independently of src/sinks/signing.ts:
// parse t= and v1=, reject outside 5 minutes, HMAC-SHA256 hex of "<t>.<body>", constant-time compare.
function langfuseDocumentedCheck(header: string, payload: string, secret: string): boolean {
  const parts = header.split(',');
  const t = parts.find((p) => p.startsWith('t='))?.slice(2);
  const v1 = parts.find((p) => p.startsWith('v1='))?.slice(3);
  if (!t || !v1) throw new Error('Invalid signature header format');
  if (Math.abs(Math.floor(Date.now() / 1000) - Number.parseInt(t, 10)) > 300) throw new Error('Signature timestamp expired');
  const expected = createHmac('sha256', secret).update(`${t}.${payload}`, 'utf8').digest('hex');
  const a = Buffer.from(v1);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

describe('standard scheme', () => {
  const ts = now();
  const headers = signatureHeaders(EVENT_ID, BODY, ts, STANDARD_SECRET, 'standard');

  it('sends the Standard Webhooks headers and the t=,v1= header', () => {
    expect(Object.keys(headers).sort()).toEqual(['webhook-id', 'webhook-signature', 'webhook-timestamp', 'x-langfuse-signature']);
    expect(headers['webhook-id']).toBe(EVENT_ID);
    expect(headers['webhook-timestamp']).toBe(String(ts));
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+={0,2}$/);
    expect(headers['x-langfuse-signature']).toMatch(new RegExp(`^t=${ts},v1=[0-9a-f]{64}$`));
  });

  it('verifies with the standardwebhooks library', () => {
    expect(new StandardWebhook(STANDARD_SECRET).verify(BODY, headers)).toEqual(JSON.parse(BODY));
    expect(() => new StandardWebhook(STANDARD_SECRET).verify(TAMPERED, headers)).toThrow();
  });

  it('verifies with the svix library', () => {
    expect(new SvixWebhook(STANDARD_SECRET).verify(BODY, headers)).toEqual(JSON.parse(BODY));
    expect(() => new SvixWebhook(STANDARD_SECRET).verify(TAMPERED, headers)).toThrow();
  });

  it('matches the library signer byte for byte', () => {
    const fixed = 1_764_000_000;
    const ours = signatureHeaders(EVENT_ID, BODY, fixed, STANDARD_SECRET, 'standard');
    expect(ours['webhook-signature']).toBe(new StandardWebhook(STANDARD_SECRET).sign(EVENT_ID, new Date(fixed * 1000), BODY));
  });

  it('keys the t=,v1= header with the whole secret string, prefix included', () => {
    const header = headers['x-langfuse-signature'] ?? '';
    expect(verifyLangfuseSignature(BODY, header, STANDARD_SECRET)).toBe(true);
    expect(langfuseDocumentedCheck(header, BODY, STANDARD_SECRET)).toBe(true);
    expect(verifyLangfuseSignature(TAMPERED, header, STANDARD_SECRET)).toBe(false);
    expect(langfuseDocumentedCheck(header, TAMPERED, STANDARD_SECRET)).toBe(false);
  });

  it('signs each attempt with its own timestamp', () => {
    const later = signatureHeaders(EVENT_ID, BODY, ts + 5, STANDARD_SECRET, 'standard');
    expect(later['webhook-timestamp']).toBe(String(ts + 5));
    expect(later['webhook-signature']).not.toBe(headers['webhook-signature']);
    expect(new StandardWebhook(STANDARD_SECRET).verify(BODY, later)).toEqual(JSON.parse(BODY));
  });
});

describe('langfuse scheme', () => {
  const ts = now();
  const headers = signatureHeaders(EVENT_ID, BODY, ts, PLAIN_SECRET, 'langfuse');
  const header = headers['x-langfuse-signature'] ?? '';

  it('sends only x-langfuse-signature: t=…,v1=…', () => {
    expect(Object.keys(headers)).toEqual(['x-langfuse-signature']);
    expect(header).toMatch(new RegExp(`^t=${ts},v1=[0-9a-f]{64}$`));
  });

  it('verifies with verifyLangfuseSignature and with the documented check', () => {
    expect(verifyLangfuseSignature(BODY, header, PLAIN_SECRET)).toBe(true);
    expect(langfuseDocumentedCheck(header, BODY, PLAIN_SECRET)).toBe(true);
  });

  it('fails a tampered body, a wrong secret, a stale timestamp and a malformed header', () => {
    expect(verifyLangfuseSignature(TAMPERED, header, PLAIN_SECRET)).toBe(false);
    expect(langfuseDocumentedCheck(header, TAMPERED, PLAIN_SECRET)).toBe(false);
    expect(verifyLangfuseSignature(BODY, header, `${PLAIN_SECRET}x`)).toBe(false);
    const stale = signatureHeaders(EVENT_ID, BODY, ts - 301, PLAIN_SECRET, 'langfuse')['x-langfuse-signature'];
    expect(verifyLangfuseSignature(BODY, stale, PLAIN_SECRET)).toBe(false);
    expect(verifyLangfuseSignature(BODY, stale, PLAIN_SECRET, 600)).toBe(true);
    expect(verifyLangfuseSignature(BODY, 'garbage', PLAIN_SECRET)).toBe(false);
    expect(verifyLangfuseSignature(BODY, `t=${ts}`, PLAIN_SECRET)).toBe(false);
    expect(verifyLangfuseSignature(BODY, undefined, PLAIN_SECRET)).toBe(false);
  });
});

describe('hex scheme', () => {
  const headers = signatureHeaders(EVENT_ID, BODY, now(), PLAIN_SECRET, 'hex');

  it('sends only the hex HMAC of the body, which the tutorial receiver verifies', () => {
    expect(Object.keys(headers)).toEqual(['x-langfuse-signature']);
    expect(headers['x-langfuse-signature']).toMatch(/^[0-9a-f]{64}$/);
    expect(verifySignature(BODY, headers['x-langfuse-signature'] ?? '')).toBe(true);
  });

  it('fails a tampered body', () => {
    expect(verifySignature(TAMPERED, headers['x-langfuse-signature'] ?? '')).toBe(false);
  });

  it('is why hex exists: the tutorial check throws on the t=,v1= form', () => {
    const tv = signatureHeaders(EVENT_ID, BODY, now(), PLAIN_SECRET, 'langfuse')['x-langfuse-signature'] ?? '';
    expect(() => verifySignature(BODY, tv)).toThrow();
  });
});

describe('signers', () => {
  it('send no signature headers without a secret', () => {
    expect(signatureHeaders(EVENT_ID, BODY, 1, null, 'langfuse')).toEqual({});
    expect(signatureHeaders(EVENT_ID, BODY, 1, null, 'hex')).toEqual({});
    // The standard scheme still identifies the attempt, unsigned.
    expect(signatureHeaders(EVENT_ID, BODY, 1, null, 'standard')).toEqual({ 'webhook-id': EVENT_ID, 'webhook-timestamp': '1' });
  });

  it('send only the attempt’s id and timestamp with signature none, secret or not', () => {
    expect(signatureHeaders(EVENT_ID, BODY, 7, null, 'none')).toEqual({ 'webhook-id': EVENT_ID, 'webhook-timestamp': '7' });
    expect(createSigner(STANDARD_SECRET, 'none')(EVENT_ID, BODY, 7)).toEqual({ 'webhook-id': EVENT_ID, 'webhook-timestamp': '7' });
  });

  it('give the same headers from a prepared signer as from the one-shot form', () => {
    for (const scheme of ['standard', 'langfuse', 'hex'] as const) {
      const secret = scheme === 'standard' ? STANDARD_SECRET : PLAIN_SECRET;
      const sign = createSigner(secret, scheme);
      expect(sign(EVENT_ID, BODY, 1_764_000_123)).toEqual(signatureHeaders(EVENT_ID, BODY, 1_764_000_123, secret, scheme));
    }
  });
});
