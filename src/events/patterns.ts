/**
 * Event-type patterns, as sinks' `events` and rules' `events` write them: an exact type
 * (`score.created`), a family (`trace.*`, or just `trace`) or `*` for everything.
 */

const EVENT_PATTERN = /^(\*|[a-z]+\.\*|[a-z]+\.[a-z]+|[a-z]+)$/;

/** Whether `p` is written as a pattern (it may still match no event type). */
export function isEventPattern(p: string): boolean {
  return EVENT_PATTERN.test(p);
}

/** `trace.*` matches trace.created and trace.updated; `*` matches everything. */
export function matchesEventPatterns(patterns: readonly string[], type: string): boolean {
  for (const p of patterns) {
    if (p === '*' || p === type) return true;
    if (p.endsWith('.*') && type.startsWith(p.slice(0, -1))) return true;
    if (!p.includes('.') && type.startsWith(`${p}.`)) return true;
  }
  return false;
}
