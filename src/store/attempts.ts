/** The attempt log: one row per delivery attempt, written with the outcome it led to, read by the console. */
import type { AttemptOutcome } from '../delivery/states.js';
import type { Sql } from './sql.js';

export interface Attempt {
  /** ms epoch when the attempt started */
  at: number;
  durationMs: number;
  outcome: AttemptOutcome;
  /** null when no HTTP answer came */
  statusCode: number | null;
  error: string | null;
  /** At most 256 bytes of the receiver's answer (see excerpt() in src/delivery/attempts.ts). */
  response: string | null;
}

export interface AttemptRow extends Attempt {
  outboxSeq: number;
}

const INSERT = 'INSERT INTO attempts (outbox_seq, at, duration_ms, outcome, status_code, error, response) VALUES (?, ?, ?, ?, ?, ?, ?)';
const INSERT_BY_EVENT = `INSERT INTO attempts (outbox_seq, at, duration_ms, outcome, status_code, error, response)
  SELECT o.seq, ?, ?, ?, ?, ?, ? FROM outbox o WHERE o.event_seq = (SELECT seq FROM events WHERE id = ?) AND o.sink = ?`;
const OF_ROWS = `SELECT outbox_seq AS outboxSeq, at, duration_ms AS durationMs, outcome, status_code AS statusCode, error, response
  FROM attempts WHERE outbox_seq IN (SELECT value FROM json_each(?)) ORDER BY id`;
const PRUNE = `DELETE FROM attempts WHERE at < ?
  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.seq = attempts.outbox_seq AND o.status <> 'delivered')`;
const PER_MINUTE = `SELECT (at / 60000) * 60000 AS minute, SUM(outcome = 'delivered') AS delivered, SUM(outcome <> 'delivered') AS failed
  FROM attempts WHERE at >= ? GROUP BY 1 ORDER BY 1`;

export class Attempts {
  constructor(private readonly sql: Sql) {}

  /** Attempts of outbox rows; called inside the caller's write transaction. */
  insert(rows: Array<{ seq: number; attempt: Attempt }>): void {
    if (rows.length === 0) return;
    const st = this.sql.prepare(INSERT);
    for (const { seq, attempt: a } of rows) st.run(seq, a.at, Math.round(a.durationMs), a.outcome, a.statusCode, a.error, a.response);
  }

  /** Attempts named by event id and sink (Redis mode's workers know no outbox row); unknown ones are skipped. */
  insertByEvent(rows: Array<{ eventId: string; sink: string; attempt: Attempt }>): void {
    if (rows.length === 0) return;
    const st = this.sql.prepare(INSERT_BY_EVENT);
    for (const { eventId, sink, attempt: a } of rows) st.run(a.at, Math.round(a.durationMs), a.outcome, a.statusCode, a.error, a.response, eventId, sink);
  }

  /** Every attempt of these outbox rows, oldest first. */
  of(seqs: number[]): AttemptRow[] {
    if (seqs.length === 0) return [];
    return this.sql.prepare(OF_ROWS).all(JSON.stringify(seqs)) as AttemptRow[];
  }

  /**
   * Forgets attempts older than the cutoff, except those of deliveries not yet delivered (dead ones
   * above all: their attempts say why). Returns how many.
   */
  prune(cutoffMs: number): number {
    return this.sql.prepare(PRUNE).run(cutoffMs).changes;
  }

  /** Per minute since `sinceMs`: attempts delivered and attempts failed (retrying or dead). */
  perMinute(sinceMs: number): Array<{ minute: number; delivered: number; failed: number }> {
    return this.sql.prepare(PER_MINUTE).all(sinceMs) as Array<{ minute: number; delivered: number; failed: number }>;
  }
}
