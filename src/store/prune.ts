/** Retention: forgets delivered rows, their events, seen versions and attempts older than the cutoff. */
import type { Attempts } from './attempts.js';
import type { Meta } from './meta.js';
import type { Sql } from './sql.js';

const OUTBOX = `DELETE FROM outbox WHERE status = 'delivered' AND delivered_at < ?`;
const EVENTS = `DELETE FROM events WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_seq = events.seq)`;
const SEEN = `DELETE FROM seen WHERE seen_at < ?`;

/** Never anything pending or dead; records the cut in `pruned_before` when something was forgotten. */
export function prune(sql: Sql, meta: Meta, attempts: Attempts, cutoff: number): { outbox: number; events: number; seen: number; attempts: number } {
  return sql.write(() => {
    const outbox = sql.prepare(OUTBOX).run(cutoff).changes;
    const events = sql.prepare(EVENTS).run(cutoff).changes;
    const seen = sql.prepare(SEEN).run(cutoff).changes;
    if (outbox || seen) meta.setPrunedBefore(cutoff);
    return { outbox, events, seen, attempts: attempts.prune(cutoff) };
  });
}
