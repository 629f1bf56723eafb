/**
 * The delivery schedule, one arithmetic for both backends (the in-process dispatcher and the Redis
 * workers): exponential backoff with jitter, a receiver's Retry-After honoured up to an hour, and the
 * spacing between attempts of a paced sink.
 */
import { MAX_RETRY_AFTER_MS } from '../http.js';

export interface RetryPolicy {
  maxAttempts: number;
  baseSeconds: number;
}

/** Delay before attempt n+1 after n failed: base·2^(n−1), jittered to 50–100 %, capped at an hour. */
export function backoffMs(policy: Pick<RetryPolicy, 'baseSeconds'>, failedAttempts: number, random = Math.random): number {
  const exp = Math.min(3_600_000, policy.baseSeconds * 1000 * 2 ** Math.max(0, failedAttempts - 1));
  return Math.round(exp * (0.5 + random() * 0.5));
}

/** A receiver's Retry-After as obeyed: at most an hour. */
export function cappedRetryAfter(ms: number): number {
  return Math.min(MAX_RETRY_AFTER_MS, ms);
}

/** Wait before the next attempt: the schedule's, or the receiver's Retry-After when that is longer. */
export function retryDelayMs(policy: Pick<RetryPolicy, 'baseSeconds'>, failedAttempts: number, retryAfterMs: number | undefined): number {
  return Math.max(backoffMs(policy, failedAttempts), cappedRetryAfter(retryAfterMs ?? 0));
}

/**
 * The spacing a paced sink gets between attempts: its minimum plus a margin, since the receiver
 * counts arrivals and the network can bring two posts closer together than they left.
 */
export function pacedIntervalMs(minIntervalMs: number): number {
  return minIntervalMs + Math.max(50, Math.round(minIntervalMs * 0.2));
}

/**
 * How long an attempt trusts the last read of the pause other processes recorded for its sink (in
 * the database or in Redis): one read per this, not one per attempt.
 */
export const SHARED_PAUSE_READ_MS = 25;
