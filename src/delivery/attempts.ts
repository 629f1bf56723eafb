/**
 * An attempt as the attempt log records it (when, how long, the outcome, the HTTP status or the
 * error, and at most 256 bytes of the receiver's answer), made from a sink's result. The log itself
 * is the store's (src/store/attempts.ts), written in the transaction that settles the outcomes.
 */
import type { DeliveryResult } from '../sinks/types.js';
import type { Attempt } from '../store/attempts.js';
import type { AttemptOutcome } from './states.js';

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
