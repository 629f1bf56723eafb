/**
 * What `status`, /metrics and the digest read of the outbox and the events: counts, dead letters, a
 * sink's last activity, open work per origin, and the day's usage. Read only; each from an index.
 */
import type { DeliveryStatus } from '../delivery/states.js';
import type { Sql } from './sql.js';

export interface DeadLetter {
  eventId: string;
  sink: string;
  type: string;
  attempts: number;
  deadAt: number;
  lastError: string | null;
}

export interface SinkActivity {
  lastSuccessAt: number | null;
  lastErrorAt: number | null;
  lastError: string | null;
  nextRetryAt: number | null;
}

const COUNTS = `SELECT sink, status, COUNT(*) AS n FROM outbox WHERE (? IS NULL OR origin = ?) GROUP BY sink, status`;
const OPEN_COUNTS = `SELECT sink, status, COUNT(*) AS n FROM outbox WHERE status IN ('queued', 'retrying', 'delivering') GROUP BY sink, status`;
const OLDEST_PENDING = `SELECT MIN(created_at) AS t FROM outbox WHERE status IN ('queued', 'retrying', 'delivering')`;
const DEAD_LETTERS = `SELECT o.event_id AS eventId, o.sink, e.type, o.attempts, o.dead_at AS deadAt, o.last_error AS lastError
  FROM outbox o JOIN events e ON e.seq = o.event_seq
  WHERE o.status = 'dead' AND (? IS NULL OR o.sink = ?) AND (? IS NULL OR o.dead_at >= ?)
  ORDER BY o.dead_at DESC LIMIT ?`;
const LAST_SUCCESS = `SELECT delivered_at FROM outbox WHERE status = 'delivered' AND sink = ? ORDER BY delivered_at DESC LIMIT 1`;
// The status repeated as the partial index names it, so that the index of open rows is used.
const LAST_RETRY = `SELECT updated_at AS at, last_error AS error FROM outbox WHERE status IN ('queued', 'retrying') AND status = 'retrying' AND sink = ? AND last_error IS NOT NULL ORDER BY updated_at DESC LIMIT 1`;
const LAST_DEAD = `SELECT dead_at AS at, last_error AS error FROM outbox WHERE status = 'dead' AND sink = ? ORDER BY dead_at DESC LIMIT 1`;
const NEXT_RETRY = `SELECT MIN(next_at) FROM outbox WHERE status IN ('queued', 'retrying') AND status = 'retrying' AND sink = ?`;
const DEAD_BY_REASON = `SELECT sink, last_error AS reason, COUNT(*) AS count, MAX(dead_at) AS lastAt FROM outbox WHERE status = 'dead' GROUP BY sink, last_error ORDER BY count DESC, lastAt DESC`;
const DEAD_SINCE = `SELECT COUNT(*) FROM outbox WHERE status = 'dead' AND dead_at >= ?`;
const DEAD_SINKS = `SELECT DISTINCT sink FROM outbox WHERE status = 'dead'`;
const OPEN_BY_ORIGIN = `SELECT origin, status, COUNT(*) AS n, MIN(created_at) AS since FROM outbox WHERE status IN ('queued', 'retrying', 'delivering') AND origin <> 'live' GROUP BY origin, status`;
const USAGE_BY_MODEL = `SELECT COALESCE(json_extract(body, '$.data.model'), 'unknown') AS model, COUNT(*) AS generations,
    COALESCE(SUM(json_extract(body, '$.data.usage.totalTokens')), 0) AS tokens, COALESCE(SUM(json_extract(body, '$.data.totalCost')), 0) AS cost
  FROM events WHERE type = 'generation.created' AND ts >= ? AND ts < ? GROUP BY 1 ORDER BY cost DESC, generations DESC`;
const ERROR_TRACES = `SELECT COUNT(*) FROM events WHERE type = 'trace.updated' AND json_extract(body, '$.data.level') = 'ERROR' AND ts >= ? AND ts < ?`;
const LOW_SCORES = `SELECT json_extract(body, '$.data.name') AS name, COUNT(*) AS count FROM events
  WHERE type = 'score.created' AND json_extract(body, '$.data.dataType') = 'NUMERIC' AND json_extract(body, '$.data.value') < 0.5 AND ts >= ? AND ts < ?
  GROUP BY 1 ORDER BY 2 DESC`;

export class Reports {
  constructor(private readonly sql: Sql) {}

  /** Counts per sink and status; with origin, only that backfill's rows. */
  counts(origin: string | null): Map<string, Record<DeliveryStatus, number>> {
    const rows = this.sql.prepare(COUNTS).all(origin, origin) as Array<{ sink: string; status: DeliveryStatus; n: number }>;
    const out = new Map<string, Record<DeliveryStatus, number>>();
    for (const r of rows) {
      const c = out.get(r.sink) ?? { queued: 0, delivering: 0, retrying: 0, delivered: 0, dead: 0 };
      c[r.status] = r.n;
      out.set(r.sink, c);
    }
    return out;
  }

  /** Rows not yet delivered or dead, per sink and status: reads only the small index of open rows. */
  openCounts(): Array<{ sink: string; status: DeliveryStatus; n: number }> {
    return this.sql.prepare(OPEN_COUNTS).all() as Array<{ sink: string; status: DeliveryStatus; n: number }>;
  }

  oldestPendingAt(): number | null {
    return (this.sql.prepare(OLDEST_PENDING).get() as { t: number | null }).t;
  }

  deadLetters(sink: string | null, sinceMs: number | null, limit: number): DeadLetter[] {
    return this.sql.prepare(DEAD_LETTERS).all(sink, sink, sinceMs, sinceMs, limit) as DeadLetter[];
  }

  /**
   * A sink's last success, last failed attempt and next retry, each read from an index. With the
   * sink's counts, statuses it has no rows in are not looked up (a sink that never delivered would
   * scan every other sink's deliveries).
   */
  sinkActivity(sink: string, counts: Record<DeliveryStatus, number> | null): SinkActivity {
    const none = { lastSuccessAt: null, lastErrorAt: null, lastError: null, nextRetryAt: null };
    if (counts && counts.delivered + counts.dead + counts.retrying === 0) return none;
    const ok = counts?.delivered === 0 ? undefined : (this.sql.pluck(LAST_SUCCESS).get(sink) as number | undefined);
    const retrying = this.sql.prepare(LAST_RETRY).get(sink) as { at: number; error: string } | undefined;
    const dead = counts?.dead === 0 ? undefined : (this.sql.prepare(LAST_DEAD).get(sink) as { at: number; error: string | null } | undefined);
    const err = retrying && (!dead || retrying.at >= dead.at) ? retrying : dead;
    const next = this.sql.pluck(NEXT_RETRY).get(sink) as number | null;
    return { lastSuccessAt: ok ?? null, lastErrorAt: err?.at ?? null, lastError: err?.error ?? null, nextRetryAt: next ?? null };
  }

  /** Dead letters per sink and reason (the last error), most frequent first. */
  deadByReason(): Array<{ sink: string; reason: string | null; count: number; lastAt: number }> {
    return this.sql.prepare(DEAD_BY_REASON).all() as Array<{ sink: string; reason: string | null; count: number; lastAt: number }>;
  }

  /** Dead letters not replayed, dead-lettered since then. */
  deadSince(sinceMs: number): number {
    return this.sql.pluck(DEAD_SINCE).get(sinceMs) as number;
  }

  /** The sinks that have dead letters. */
  deadSinks(): string[] {
    return this.sql.pluck(DEAD_SINKS).all() as string[];
  }

  /** Rows of each origin but the live one that are not delivered or dead yet (backfills, test events). */
  openByOrigin(): Array<{ origin: string; status: DeliveryStatus; n: number; since: number }> {
    return this.sql.prepare(OPEN_BY_ORIGIN).all() as Array<{ origin: string; status: DeliveryStatus; n: number; since: number }>;
  }

  // The digest's sums, over [since, until) (ISO) by the events' own timestamps.

  /** Generations, tokens and cost per model, costliest first. */
  usageByModel(since: string, until: string): Array<{ model: string; generations: number; tokens: number; cost: number }> {
    return this.sql.prepare(USAGE_BY_MODEL).all(since, until) as Array<{ model: string; generations: number; tokens: number; cost: number }>;
  }

  /** Traces that reached ERROR. */
  errorTraces(since: string, until: string): number {
    return this.sql.pluck(ERROR_TRACES).get(since, until) as number;
  }

  /** Numeric scores below 0.5, per score name, most first. */
  lowScores(since: string, until: string): Array<{ name: string; count: number }> {
    return this.sql.prepare(LOW_SCORES).all(since, until) as Array<{ name: string; count: number }>;
  }
}
