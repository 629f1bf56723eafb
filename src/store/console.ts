/**
 * What the console reads and the replays it writes: the delivery log, one event with its attempts,
 * per-minute figures. Reads run on the daemon's own connection (short, indexed statements).
 */
import type { Attempt, Attempts } from './attempts.js';
import { SUPERSEDED_NOTE } from './monitors.js';
import type { DeliveryStatus } from '../delivery/states.js';
import type { Sql } from './sql.js';

export interface DeliveryFilter {
  sink?: string | null;
  status?: DeliveryStatus | null;
  /** An event type, or a prefix ending in `*` (`trace.*`). */
  event?: string | null;
  traceId?: string | null;
  limit?: number;
  /** From a previous answer's nextCursor. */
  cursor?: string | null;
}

export interface DeliveryItem {
  eventId: string;
  event: string;
  sink: string;
  status: DeliveryStatus;
  attempts: number;
  lastAttemptAt: string | null;
  lastStatusCode: number | null;
  lastError: string | null;
  nextAttemptAt: string | null;
  traceId: string | null;
  observationId: string | null;
  scoreId: string | null;
}

export interface EventDetail {
  id: string;
  event: string;
  timestamp: string;
  createdAt: string;
  /** Byte for byte what every attempt sends. */
  body: string;
  sinks: Array<{
    sink: string;
    status: DeliveryStatus;
    attempts: Array<Omit<Attempt, 'at'> & { at: string }>;
    nextAttemptAt: string | null;
    lastError: string | null;
    deliveredAt: string | null;
    deadAt: string | null;
  }>;
}

export interface MinuteSeries {
  /** ms epoch of each minute's start, oldest first: 60 of them, the current minute last. */
  minutes: number[];
  events: number[];
  delivered: number[];
  failed: number[];
}

export interface ReplayRequest {
  deliveries?: Array<{ eventId: string; sink: string }>;
  eventIds?: string[];
  sink?: string;
  /** ms epoch: dead letters of `sink` dead since then. */
  sinceMs?: number | null;
  /** With `deliveries`: delivered ones are sent again too. */
  resend?: boolean;
}

const DELIVERIES = `SELECT o.seq, o.event_id AS eventId, e.type AS event, o.sink, o.status, o.attempts, o.next_at AS nextAt, o.last_error AS lastError,
    (SELECT a.at FROM attempts a WHERE a.outbox_seq = o.seq ORDER BY a.id DESC LIMIT 1) AS lastAttemptAt,
    (SELECT a.status_code FROM attempts a WHERE a.outbox_seq = o.seq ORDER BY a.id DESC LIMIT 1) AS lastStatusCode,
    json_extract(e.body, '$.data.traceId') AS traceId, json_extract(e.body, '$.data.observationId') AS observationId,
    json_extract(e.body, '$.data.scoreId') AS scoreId
  FROM outbox o JOIN events e ON e.seq = o.event_seq
  WHERE (@cursor IS NULL OR o.seq < @cursor) AND (@sink IS NULL OR o.sink = @sink) AND (@status IS NULL OR o.status = @status)
    AND (@event IS NULL OR e.type = @event) AND (@prefix IS NULL OR substr(e.type, 1, length(@prefix)) = @prefix)
    AND (@traceId IS NULL OR json_extract(e.body, '$.data.traceId') = @traceId)
  ORDER BY o.seq DESC LIMIT @limit`;
const EVENT = 'SELECT seq, id, type, ts, body, created_at AS createdAt FROM events WHERE id = ?';
const EVENT_ROWS = `SELECT seq, sink, status, next_at AS nextAt, last_error AS lastError, delivered_at AS deliveredAt, dead_at AS deadAt
  FROM outbox WHERE event_seq = ? ORDER BY sink`;
const DELIVERED_SINCE = `SELECT sink, COUNT(*) AS n FROM outbox WHERE status = 'delivered' AND delivered_at >= ? GROUP BY sink`;
const EVENTS_PER_MINUTE = `SELECT (created_at / 60000) * 60000 AS minute, COUNT(*) AS n FROM events WHERE created_at >= ? GROUP BY 1`;
const RESET = `UPDATE outbox SET status = 'queued', attempts = 0, next_at = @now, updated_at = @now, owner = NULL, lease_until = NULL,
    dead_at = NULL, delivered_at = NULL, last_error = NULL`;
// A superseded monitor notification (monitors.ts) is delivered but was never sent: not resent.
const RESET_DELIVERY = `${RESET} WHERE event_seq = (SELECT seq FROM events WHERE id = @eventId) AND sink = @sink
  AND (status = 'dead' OR (@resend AND status = 'delivered' AND (last_error IS NULL OR substr(last_error, 1, ${SUPERSEDED_NOTE.length}) <> '${SUPERSEDED_NOTE}')))`;
const RESET_EVENT = `${RESET} WHERE event_seq = (SELECT seq FROM events WHERE id = @eventId) AND status = 'dead'`;
const RESET_SINK = `${RESET} WHERE status = 'dead' AND sink = @sink AND (@since IS NULL OR dead_at >= @since)`;

const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

export class ConsoleQueries {
  constructor(
    private readonly sql: Sql,
    private readonly attempts: Attempts,
  ) {}

  listDeliveries(f: DeliveryFilter): { items: DeliveryItem[]; nextCursor: string | null } {
    const limit = Math.min(500, Math.max(1, Math.floor(f.limit ?? 50)));
    const cursor = f.cursor && /^\d+$/.test(f.cursor) ? Number(f.cursor) : null;
    let event: string | null = f.event ?? null;
    let eventPrefix: string | null = null;
    if (event?.endsWith('*')) {
      eventPrefix = event.slice(0, -1);
      event = null;
    }
    const rows = this.sql
      .prepare(DELIVERIES)
      .all({ cursor, sink: f.sink ?? null, status: f.status ?? null, event, prefix: eventPrefix, traceId: f.traceId ?? null, limit: limit + 1 }) as Array<{
      seq: number;
      eventId: string;
      event: string;
      sink: string;
      status: DeliveryStatus;
      attempts: number;
      nextAt: number;
      lastError: string | null;
      lastAttemptAt: number | null;
      lastStatusCode: number | null;
      traceId: string | null;
      observationId: string | null;
      scoreId: string | null;
    }>;
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    return {
      items: page.map((r) => ({
        eventId: r.eventId,
        event: r.event,
        sink: r.sink,
        status: r.status,
        attempts: r.attempts,
        lastAttemptAt: iso(r.lastAttemptAt),
        lastStatusCode: r.lastStatusCode,
        lastError: r.lastError,
        nextAttemptAt: r.status === 'queued' || r.status === 'retrying' ? iso(r.nextAt) : null,
        traceId: r.traceId,
        observationId: r.observationId,
        scoreId: r.scoreId,
      })),
      nextCursor: more ? String(page[page.length - 1]!.seq) : null,
    };
  }

  eventDetail(id: string): EventDetail | null {
    const ev = this.sql.prepare(EVENT).get(id) as { seq: number; id: string; type: string; ts: string; body: string; createdAt: number } | undefined;
    if (!ev) return null;
    const rows = this.sql.prepare(EVENT_ROWS).all(ev.seq) as Array<{
      seq: number;
      sink: string;
      status: DeliveryStatus;
      nextAt: number;
      lastError: string | null;
      deliveredAt: number | null;
      deadAt: number | null;
    }>;
    const attempts = this.attempts.of(rows.map((r) => r.seq));
    return {
      id: ev.id,
      event: ev.type,
      timestamp: ev.ts,
      createdAt: new Date(ev.createdAt).toISOString(),
      body: ev.body,
      sinks: rows.map((r) => ({
        sink: r.sink,
        status: r.status,
        attempts: attempts.filter((a) => a.outboxSeq === r.seq).map(({ outboxSeq: _, ...a }) => ({ ...a, at: new Date(a.at).toISOString() })),
        nextAttemptAt: r.status === 'queued' || r.status === 'retrying' ? iso(r.nextAt) : null,
        lastError: r.lastError,
        deliveredAt: iso(r.deliveredAt),
        deadAt: iso(r.deadAt),
      })),
    };
  }

  /** Deliveries per sink since then (the console asks for the last 24 h). */
  deliveredSince(sinceMs: number): Map<string, number> {
    const rows = this.sql.prepare(DELIVERED_SINCE).all(sinceMs) as Array<{ sink: string; n: number }>;
    return new Map(rows.map((r) => [r.sink, r.n]));
  }

  /** Events written, attempts delivered and attempts failed, per minute over the last hour. */
  lastHour(now: number): MinuteSeries {
    const end = Math.floor(now / 60_000) * 60_000;
    const start = end - 59 * 60_000;
    const minutes = Array.from({ length: 60 }, (_, i) => start + i * 60_000);
    const events = new Array<number>(60).fill(0);
    const delivered = new Array<number>(60).fill(0);
    const failed = new Array<number>(60).fill(0);
    for (const r of this.sql.prepare(EVENTS_PER_MINUTE).all(start) as Array<{ minute: number; n: number }>) {
      const i = (r.minute - start) / 60_000;
      if (i >= 0 && i < 60) events[i] = r.n;
    }
    for (const r of this.attempts.perMinute(start)) {
      const i = (r.minute - start) / 60_000;
      if (i >= 0 && i < 60) {
        delivered[i] = r.delivered;
        failed[i] = r.failed;
      }
    }
    return { minutes, events, delivered, failed };
  }

  /** Puts the chosen deliveries back in the queue (dead ones; delivered ones too with resend); returns how many. */
  replay(r: ReplayRequest, now: number): number {
    return this.sql.write(() => {
      let n = 0;
      if (r.deliveries) {
        const st = this.sql.prepare(RESET_DELIVERY);
        for (const d of r.deliveries) n += st.run({ now, eventId: d.eventId, sink: d.sink, resend: r.resend ? 1 : 0 }).changes;
      }
      if (r.eventIds) {
        const st = this.sql.prepare(RESET_EVENT);
        for (const id of r.eventIds) n += st.run({ now, eventId: id }).changes;
      }
      if (r.sink !== undefined) n += this.sql.prepare(RESET_SINK).run({ now, sink: r.sink, since: r.sinceMs ?? null }).changes;
      return n;
    });
  }
}
