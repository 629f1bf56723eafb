/**
 * Outbox rows handed to the Redis queues (BRIDGE_REDIS_URL): taken, reconciled and closed by the relay.
 * Such a row is 'delivering' with owner 'redis' and a lease that never runs out; its next_at at hand-over
 * time is the generation in the job id, so a relay repeated after a crash names the same job, and a
 * replayed or redelivered row (next_at reset) names a new one.
 */
import type { FinalStatus } from '../delivery/states.js';
import type { Outbox } from './outbox.js';
import type { Sql } from './sql.js';

/** Owner of rows handed to the Redis queues: closed by a relay, not by a lease. */
const REDIS_OWNER = 'redis';
/** Lease of relayed rows: never runs out, so no in-process dispatcher takes them back. */
const REDIS_LEASE = 8_640_000_000_000_000;

export interface RelayRow {
  eventId: string;
  sink: string;
  /** next_at when handed over: part of the job id. */
  gen: number;
  /** Attempts made before the hand-over (rows that were retrying in-process). */
  attempts: number;
  body: string;
  type: string;
  /** What the router decided this sink sends (the outbox row's route); the job carries it. */
  route: string | null;
}

export interface RelayOutcome {
  eventId: string;
  sink: string;
  gen: number;
  status: FinalStatus;
  error?: string | null;
  /** Attempts the job made, when known. */
  attempts?: number;
}

const TAKE = `UPDATE outbox SET status = 'delivering', owner = '${REDIS_OWNER}', lease_until = ${REDIS_LEASE}, updated_at = @now
  WHERE seq IN (
    SELECT seq FROM outbox
    WHERE sink IN (SELECT value FROM json_each(@sinks)) AND status IN ('queued', 'retrying') AND (@origin IS NULL OR origin = @origin)
    ORDER BY next_at, seq LIMIT @limit)
  RETURNING event_seq AS eventSeq, event_id AS eventId, sink, attempts, next_at AS nextAt, seq, route`;
const RELAYED = `SELECT o.event_id AS eventId, o.sink, o.next_at AS gen, o.attempts, e.body, e.type, o.route FROM outbox o JOIN events e ON e.seq = o.event_seq
  WHERE o.status IN ('queued', 'retrying', 'delivering') AND o.status = 'delivering' AND o.owner = '${REDIS_OWNER}' AND (@origin IS NULL OR o.origin = @origin)
    AND (@sink IS NULL OR o.sink > @sink OR (o.sink = @sink AND o.event_id > @eventId))
  ORDER BY o.sink, o.event_id LIMIT @limit`;
const BY_SINK = `SELECT sink, COUNT(*) AS n FROM outbox WHERE status IN ('queued', 'retrying', 'delivering') AND status = 'delivering' AND owner = '${REDIS_OWNER}' GROUP BY sink`;
const COUNT = `SELECT COUNT(*) AS n FROM outbox WHERE status IN ('queued', 'retrying', 'delivering') AND status = 'delivering' AND owner = '${REDIS_OWNER}' AND (? IS NULL OR origin = ?)`;
/** The row of this event, sink and generation, still with Redis. */
const HANDED = `event_seq = (SELECT seq FROM events WHERE id = @eventId) AND sink = @sink AND status = 'delivering' AND owner = '${REDIS_OWNER}' AND next_at = @gen`;
const CLOSE_DELIVERED = `UPDATE outbox SET status = 'delivered', delivered_at = @now, updated_at = @now, owner = NULL, lease_until = NULL, last_error = NULL, attempts = attempts + @made WHERE ${HANDED}`;
const CLOSE_DEAD = `UPDATE outbox SET status = 'dead', dead_at = @now, updated_at = @now, lease_until = NULL, last_error = @error, attempts = attempts + @made WHERE ${HANDED}`;
const RELEASE = `UPDATE outbox SET status = CASE WHEN attempts = 0 THEN 'queued' ELSE 'retrying' END, owner = NULL, lease_until = NULL, updated_at = @now WHERE ${HANDED}`;
const REOPEN = `UPDATE outbox SET status = 'delivering', lease_until = ${REDIS_LEASE}, dead_at = NULL, last_error = NULL, updated_at = ?
  WHERE event_seq = (SELECT seq FROM events WHERE id = ?) AND sink = ? AND status = 'dead' AND owner = '${REDIS_OWNER}' AND next_at = ?`;

export class Relay {
  constructor(
    private readonly sql: Sql,
    private readonly outbox: Outbox,
  ) {}

  /** Marks up to `limit` queued or retrying rows of these sinks as handed to Redis; in write order. */
  take(sinks: string[], limit: number, origin: string | null, now: number): RelayRow[] {
    if (sinks.length === 0 || limit <= 0) return [];
    return this.sql.write(() =>
      this.outbox
        .takeRows(TAKE, { now, sinks: JSON.stringify(sinks), origin, limit })
        .map((r) => ({ eventId: r.eventId, sink: r.sink, gen: r.nextAt, attempts: r.attempts, body: r.body, type: r.type, route: r.route })),
    );
  }

  /** Rows handed to Redis and not closed yet, by (sink, event id) after `after`; for reconciling. */
  relayed(origin: string | null, after: { sink: string; eventId: string } | null, limit: number): RelayRow[] {
    return this.sql.prepare(RELAYED).all({ origin, sink: after?.sink ?? null, eventId: after?.eventId ?? '', limit }) as RelayRow[];
  }

  /** Rows handed to Redis and not closed, per sink (the relay keeps each under a cap). */
  bySink(): Map<string, number> {
    const rows = this.sql.prepare(BY_SINK).all() as Array<{ sink: string; n: number }>;
    return new Map(rows.map((r) => [r.sink, r.n]));
  }

  /** How many rows wait on Redis (handed over, not closed). */
  count(origin: string | null): number {
    return (this.sql.prepare(COUNT).get(origin, origin) as { n: number }).n;
  }

  /**
   * Closes rows whose job ended: delivered, or dead (the failed job stays in Redis for `replay`).
   * Only the generation handed over is closed; returns the outcomes that changed a row, with the event type.
   */
  close(outcomes: RelayOutcome[], now: number): Array<RelayOutcome & { type: string }> {
    if (outcomes.length === 0) return [];
    return this.sql.write(() => {
      const out: Array<RelayOutcome & { type: string }> = [];
      for (const o of outcomes) {
        const p = { eventId: o.eventId, sink: o.sink, gen: o.gen, now, made: Math.max(1, o.attempts ?? 1), error: o.error ?? null };
        const st = this.sql.prepare(o.status === 'delivered' ? CLOSE_DELIVERED : CLOSE_DEAD);
        if (st.run(p).changes) out.push({ ...o, type: this.outbox.eventBody(o.eventId)?.type ?? 'unknown' });
      }
      return out;
    });
  }

  /** Hands rows back to the outbox when Redis did not take them (queued or retrying, as before). */
  release(rows: Array<{ eventId: string; sink: string; gen: number }>, now: number): number {
    if (rows.length === 0) return 0;
    return this.sql.write(() => {
      let n = 0;
      for (const r of rows) n += this.sql.prepare(RELEASE).run({ now, eventId: r.eventId, sink: r.sink, gen: r.gen }).changes;
      return n;
    });
  }

  /** A dead row whose failed job `replay` retried in Redis: open again, closed when the job ends. */
  reopen(eventId: string, sink: string, gen: number, now: number): boolean {
    return this.sql.prepare(REOPEN).run(now, eventId, sink, gen).changes > 0;
  }
}
