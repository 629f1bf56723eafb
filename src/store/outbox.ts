/**
 * Events and the outbox: each event stored once, one row per event × sink, claimed atomically so two
 * processes on one database never send it twice, and settled with its attempts in one transaction.
 */
import type { AttemptOutcome } from '../delivery/states.js';
import type { Attempt, Attempts } from './attempts.js';
import { OWNER, ownerIsDead } from './owner.js';
import type { Sql } from './sql.js';

export interface NewEvent {
  id: string;
  type: string;
  /** The event's own timestamp (ISO), from Langfuse's data. */
  ts: string;
  body: string;
  /** The sinks this event goes to. */
  sinks: string[];
  /** What the router decided a sink sends, by sink name (src/rules/route.ts); stored with its row. */
  routes?: Readonly<Record<string, string>>;
}

export interface ClaimedDelivery {
  /** The outbox row: its position in write order. */
  seq: number;
  eventId: string;
  sink: string;
  attempts: number;
  body: string;
  type: string;
  /** What the router decided this sink sends (NewEvent.routes); null when it decided nothing for it. */
  route: string | null;
  /** Until when this process holds the row; another may take it back after that. */
  leaseUntil: number;
}

/** An outbox row just taken (claimed or relayed), with its event's body. */
export interface TakenRow {
  seq: number;
  eventId: string;
  sink: string;
  attempts: number;
  nextAt: number;
  route: string | null;
  body: string;
  type: string;
}

export interface DeliveryOutcome {
  seq: number;
  eventId: string;
  sink: string;
  status: AttemptOutcome | 'released';
  nextAt?: number;
  error?: string | null;
  /** The attempt that led here, for the attempt log (none for a row released unsent). */
  attempt?: Attempt;
}

export interface EnqueueOptions {
  /** Resend even if already delivered (backfill --redeliver). */
  redeliver?: boolean;
  /** Tag for the rows this call creates or resets, so a backfill can wait for its own. */
  origin?: string;
}

/**
 * An in-process dispatcher with room to spare: new outbox rows it can take are written already
 * claimed by it (as a claim would leave them) and handed over in memory once the transaction
 * commits, which saves a claim transaction and a read of each body.
 */
export interface Claimer {
  /** Only rows of this origin (null: any). */
  readonly origin: string | null;
  /** The lease a new row of this sink gets if the dispatcher takes it now; null: leave it queued. */
  leaseUntil(sink: string, now: number): number | null;
  /** Called inside the transaction for each row written claimed. */
  claimed(row: ClaimedDelivery): void;
  /** Called inside the transaction when a new row of this sink had to stay queued. */
  queued(sink: string): void;
}

export interface EnqueueResult {
  inserted: number;
  requeued: number;
  skipped: number;
}

const EVENT_INSERT = 'INSERT OR IGNORE INTO events (id, type, ts, body, created_at) VALUES (?, ?, ?, ?, ?)';
const EVENT_SEQ = 'SELECT seq FROM events WHERE id = ?';
const EVENT_BODY = 'SELECT body, type FROM events WHERE id = ?';
const EVENT_BODIES = 'SELECT seq, body, type FROM events WHERE seq IN (SELECT value FROM json_each(?))';
const INSERT = `INSERT OR IGNORE INTO outbox (event_seq, event_id, sink, status, attempts, next_at, created_at, updated_at, origin, route) VALUES (?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?)`;
const INSERT_CLAIMED = `INSERT OR IGNORE INTO outbox (event_seq, event_id, sink, status, attempts, next_at, owner, lease_until, created_at, updated_at, origin, route) VALUES (?, ?, ?, 'delivering', 1, ?, ?, ?, ?, ?, ?, ?)`;
// A pass that takes over or resends a row sends what it decided itself.
const ADOPT = `UPDATE outbox SET origin = ?, route = ? WHERE event_seq = ? AND sink = ? AND status IN ('queued', 'retrying') AND origin <> ?`;
const REQUEUE = `UPDATE outbox SET status = 'queued', attempts = 0, next_at = ?, updated_at = ?, origin = ?, route = ?, last_error = NULL, delivered_at = NULL, dead_at = NULL
  WHERE event_seq = ? AND sink = ? AND status IN ('delivered', 'dead') AND origin <> ?`;
const CLAIM = `UPDATE outbox SET status = 'delivering', attempts = attempts + 1, owner = @owner, lease_until = @leaseUntil, updated_at = @now
  WHERE seq IN (
    SELECT seq FROM outbox
    WHERE sink = @sink AND status IN ('queued', 'retrying') AND next_at <= @now AND (@origin IS NULL OR origin = @origin)
    ORDER BY next_at, seq LIMIT @limit)
  RETURNING seq, event_seq AS eventSeq, event_id AS eventId, sink, attempts, next_at AS nextAt, route`;
const DONE_MANY = `UPDATE outbox SET status = 'delivered', delivered_at = @now, updated_at = @now, owner = NULL, lease_until = NULL, last_error = NULL
  WHERE seq IN (SELECT value FROM json_each(@seqs)) AND status = 'delivering' AND owner = @owner`;
const RETRY = `UPDATE outbox SET status = 'retrying', next_at = @nextAt, updated_at = @now, owner = NULL, lease_until = NULL, last_error = @error
  WHERE seq = @seq AND status = 'delivering' AND owner = @owner`;
const DEAD = `UPDATE outbox SET status = 'dead', dead_at = @now, updated_at = @now, owner = NULL, lease_until = NULL, last_error = @error
  WHERE seq = @seq AND status = 'delivering' AND owner = @owner`;
const RENEW = `UPDATE outbox SET lease_until = @leaseUntil, updated_at = @now WHERE seq = @seq AND status = 'delivering' AND owner = @owner`;
const RELEASE = `UPDATE outbox SET status = CASE WHEN attempts <= 1 THEN 'queued' ELSE 'retrying' END, attempts = MAX(attempts - 1, 0), updated_at = @now, owner = NULL, lease_until = NULL
  WHERE seq = @seq AND status = 'delivering' AND owner = @owner`;
const HELD_ELSEWHERE = `SELECT seq, owner, lease_until AS leaseUntil FROM outbox WHERE status = 'delivering' AND owner IS NOT ?`;
const TAKE_BACK = `UPDATE outbox SET status = 'retrying', next_at = ?, owner = NULL, lease_until = NULL, updated_at = ?, last_error = COALESCE(last_error, 'attempt interrupted') WHERE seq = ? AND status = 'delivering'`;
const NEXT_DUE = `SELECT MIN(next_at) AS t FROM outbox WHERE sink = ? AND status IN ('queued', 'retrying') AND (? IS NULL OR origin = ?)`;
const PENDING = `SELECT COUNT(*) AS n FROM outbox WHERE status IN ('queued', 'retrying', 'delivering') AND (? IS NULL OR origin = ?)`;
const REPLAY = `UPDATE outbox SET status = 'queued', attempts = 0, next_at = ?, updated_at = ?, dead_at = NULL, last_error = NULL
  WHERE status = 'dead' AND (? IS NULL OR sink = ?) AND (? IS NULL OR dead_at >= ?)`;

export class Outbox {
  constructor(
    private readonly sql: Sql,
    private readonly attempts: Attempts,
  ) {}

  /**
   * Must run inside a write transaction: stores each event once and one outbox row per sink. With a
   * claimer, new rows it has room for are written claimed by it (see Claimer).
   */
  enqueue(events: NewEvent[], opts: EnqueueOptions, now: number, claimer?: Claimer): EnqueueResult {
    const res: EnqueueResult = { inserted: 0, requeued: 0, skipped: 0 };
    const origin = opts.origin ?? 'live';
    const handoff = claimer && (claimer.origin === null || claimer.origin === origin) ? claimer : null;
    const sql = this.sql;
    for (const ev of events) {
      // An event stored earlier keeps its stored body, which is what a claim sends: hand over only new ones.
      const put = sql.prepare(EVENT_INSERT).run(ev.id, ev.type, ev.ts, ev.body, now);
      const fresh = put.changes > 0;
      const eventSeq = fresh ? Number(put.lastInsertRowid) : (sql.pluck(EVENT_SEQ).get(ev.id) as number);
      for (const sink of ev.sinks) {
        const route = ev.routes?.[sink] ?? null;
        const lease = handoff && fresh ? handoff.leaseUntil(sink, now) : null;
        if (lease !== null) {
          const r = sql.prepare(INSERT_CLAIMED).run(eventSeq, ev.id, sink, now, OWNER, lease, now, now, origin, route);
          if (r.changes) {
            res.inserted++;
            handoff!.claimed({ seq: Number(r.lastInsertRowid), eventId: ev.id, sink, attempts: 1, body: ev.body, type: ev.type, route, leaseUntil: lease });
            continue;
          }
        } else if (sql.prepare(INSERT).run(eventSeq, ev.id, sink, now, now, now, origin, route).changes) {
          res.inserted++;
          handoff?.queued(sink);
          continue;
        }
        // Once per pass: a row this pass already sent again is not sent a third time.
        if (opts.redeliver && sql.prepare(REQUEUE).run(now, now, origin, route, eventSeq, sink, origin).changes) res.requeued++;
        // Still pending from an earlier, interrupted pass: this pass takes it over and waits for it.
        else if (origin !== 'live' && sql.prepare(ADOPT).run(origin, route, eventSeq, sink, origin).changes) res.requeued++;
        else {
          res.skipped++;
          continue;
        }
        handoff?.queued(sink);
      }
    }
    return res;
  }

  eventBody(id: string): { body: string; type: string } | undefined {
    return this.sql.prepare(EVENT_BODY).get(id) as { body: string; type: string } | undefined;
  }


  /** Bodies of these events (by their write-order key), in one statement. */
  bodiesBySeq(seqs: number[]): Map<number, { body: string; type: string }> {
    const out = new Map<number, { body: string; type: string }>();
    if (seqs.length === 0) return out;
    for (const b of this.sql.prepare(EVENT_BODIES).all(JSON.stringify([...new Set(seqs)])) as Array<{ seq: number; body: string; type: string }>) out.set(b.seq, b);
    return out;
  }

  /** Atomically takes up to `limit` due deliveries of one sink for this process. */
  claim(sink: string, limit: number, leaseMs: number, origin: string | null, now: number): ClaimedDelivery[] {
    const leaseUntil = now + leaseMs;
    return this.sql.write(() =>
      this.takeRows(CLAIM, { owner: OWNER, leaseUntil, now, sink, limit, origin }).map((r) => ({
        seq: r.seq,
        eventId: r.eventId,
        sink: r.sink,
        attempts: r.attempts,
        body: r.body,
        type: r.type,
        route: r.route,
        leaseUntil,
      })),
    );
  }

  /**
   * Runs an UPDATE … RETURNING that takes outbox rows (a claim, or the relay's hand-over) and gives them
   * back in write order with their event bodies. Call inside a write transaction.
   */
  takeRows(statement: string, params: Record<string, unknown>): TakenRow[] {
    const rows = this.sql.prepare(statement).all(params) as Array<Omit<TakenRow, 'body' | 'type'> & { eventSeq: number }>;
    // RETURNING gives rows in storage order; hand them out in the order they were written.
    rows.sort((a, b) => a.nextAt - b.nextAt || a.seq - b.seq);
    if (rows.length === 0) return [];
    // Every body in one statement.
    const bodies = this.bodiesBySeq(rows.map((r) => r.eventSeq));
    const out: TakenRow[] = [];
    for (const r of rows) {
      const ev = bodies.get(r.eventSeq);
      if (ev) out.push({ seq: r.seq, eventId: r.eventId, sink: r.sink, attempts: r.attempts, nextAt: r.nextAt, route: r.route, body: ev.body, type: ev.type });
    }
    return out;
  }

  /** Writes a batch of attempt outcomes, and their attempts, in one transaction. */
  settle(outcomes: DeliveryOutcome[], now: number): void {
    if (outcomes.length === 0) return;
    this.sql.write(() => {
      // The common outcome in one statement; the rest row by row.
      const delivered: number[] = [];
      for (const o of outcomes) {
        if (o.status === 'delivered') {
          delivered.push(o.seq);
          continue;
        }
        // Only rows this process still holds: one whose lease ran out may belong to another by now.
        const p = { seq: o.seq, now, nextAt: o.nextAt ?? now, error: o.error ?? null, owner: OWNER };
        this.sql.prepare(o.status === 'retrying' ? RETRY : o.status === 'dead' ? DEAD : RELEASE).run(p);
      }
      if (delivered.length) this.sql.prepare(DONE_MANY).run({ now, seqs: JSON.stringify(delivered), owner: OWNER });
      const attempts: Array<{ seq: number; attempt: Attempt }> = [];
      for (const o of outcomes) if (o.attempt) attempts.push({ seq: o.seq, attempt: o.attempt });
      this.attempts.insert(attempts);
    });
  }

  /** Extends this process's hold on a row; false when the row is no longer this process's to send. */
  renewLease(seq: number, leaseUntil: number, now: number): boolean {
    return this.sql.prepare(RENEW).run({ seq, leaseUntil, now, owner: OWNER }).changes > 0;
  }

  /**
   * Deliveries left 'delivering' by a process that died: take them back when their lease ran out,
   * or at once when their owner is a process on this host that no longer exists.
   */
  recoverStalled(now: number): number {
    return this.sql.write(() => {
      const rows = this.sql.prepare(HELD_ELSEWHERE).all(OWNER) as Array<{ seq: number; owner: string | null; leaseUntil: number | null }>;
      let n = 0;
      for (const r of rows) {
        if ((r.leaseUntil ?? 0) < now || (r.owner && ownerIsDead(r.owner))) n += this.sql.prepare(TAKE_BACK).run(now, now, r.seq).changes;
      }
      return n;
    });
  }

  /** The earliest time at which a row of this sink becomes due, or null when none waits. */
  nextDueAt(sink: string, origin: string | null): number | null {
    return (this.sql.prepare(NEXT_DUE).get(sink, origin, origin) as { t: number | null }).t;
  }

  /** Rows of this origin (null: any) not yet delivered or dead. */
  pending(origin: string | null): number {
    return (this.sql.prepare(PENDING).get(origin, origin) as { n: number }).n;
  }

  /** Puts dead letters back in the queue; returns how many. */
  replay(sink: string | null, sinceMs: number | null, now: number): number {
    return this.sql.write(() => this.sql.prepare(REPLAY).run(now, now, sink, sink, sinceMs, sinceMs).changes);
  }

  /** Forgets every row of this origin, whatever its state (a test event leaves nothing behind). */
  forgetOrigin(origin: string): void {
    this.sql.prepare('DELETE FROM outbox WHERE origin = ?').run(origin);
  }
}
