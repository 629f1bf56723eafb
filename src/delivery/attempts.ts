/**
 * An attempt as the attempt log records it (when, how long, the outcome, the HTTP status or the
 * error, and at most 256 bytes of the receiver's answer), made from a sink's result. The log itself
 * is the store's (src/store/attempts.ts), written in the transaction that settles the outcomes.
 */
import type { DeliveryResult } from '../sinks/types.js';
import type { Attempt } from '../store/attempts.js';
import type { AttemptOutcome } from './states.js';

export const RESPONSE_EXCERPT_BYTES = 256;

/**
 * A receiver's answer cut to at most 256 bytes of UTF-8 (never in the middle of a character), with
 * every value in `redact` (our secret, the headers we sent, should the receiver echo them) replaced.
 */
export function excerpt(raw: Buffer | string, redact: Array<string | null | undefined> = []): string | null {
  let text = typeof raw === 'string' ? raw : raw.toString('utf8');
  for (const r of redact) if (r && r.length >= 4) text = text.split(r).join('[redacted]');
  if (text.length === 0) return null;
  let buf = Buffer.from(text, 'utf8');
  if (buf.length <= RESPONSE_EXCERPT_BYTES) return text;
  buf = buf.subarray(0, RESPONSE_EXCERPT_BYTES);
  // Drop a character cut in half (continuation bytes 10xxxxxx after its lead byte).
  let end = buf.length;
  let i = end - 1;
  while (i > 0 && (buf[i]! & 0xc0) === 0x80) i--;
  const lead = buf[i]!;
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  if (i + need > end) end = i;
  return buf.subarray(0, end).toString('utf8');
}

/** The log entry of one attempt, from the sink's result. */
export function attemptOf(result: DeliveryResult, outcome: AttemptOutcome, at: number, durationMs: number): Attempt {
  return {
    at,
    durationMs,
    outcome,
    statusCode: result.status ?? null,
    error: result.ok ? null : result.reason,
    response: result.response ?? null,
  };
}
