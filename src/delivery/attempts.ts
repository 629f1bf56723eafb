/**
 * The attempt log: one row per delivery attempt (when, how long, the outcome, the HTTP status or the
 * error, and at most 256 bytes of the receiver's answer). Written in the transaction that settles the
 * outcomes (see Store.settle), read by the console.
 */
import type Database from 'better-sqlite3';
import type { DeliveryResult } from '../sinks/types.js';
import type { AttemptOutcome } from './states.js';

export interface Attempt {
  /** ms epoch when the attempt started */
  at: number;
  durationMs: number;
  outcome: AttemptOutcome;
  /** null when no HTTP answer came */
  statusCode: number | null;
  error: string | null;
  /** At most RESPONSE_EXCERPT_BYTES of the receiver's answer. */
  response: string | null;
}

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

const inserts = new WeakMap<Database.Database, Database.Statement>();

/** Writes attempts of outbox rows; called inside the caller's write transaction. */
export function insertAttempts(db: Database.Database, rows: Array<{ seq: number; attempt: Attempt }>): void {
  if (rows.length === 0) return;
  let st = inserts.get(db);
  if (!st) {
    st = db.prepare('INSERT INTO attempts (outbox_seq, at, duration_ms, outcome, status_code, error, response) VALUES (?, ?, ?, ?, ?, ?, ?)');
    inserts.set(db, st);
  }
  for (const { seq, attempt: a } of rows) st.run(seq, a.at, Math.round(a.durationMs), a.outcome, a.statusCode, a.error, a.response);
}

/** Attempts named by event id and sink (Redis mode's workers know no outbox row); unknown ones are skipped. */
export function insertAttemptsByEvent(db: Database.Database, rows: Array<{ eventId: string; sink: string; attempt: Attempt }>): void {
  if (rows.length === 0) return;
  const st = db.prepare(
    `INSERT INTO attempts (outbox_seq, at, duration_ms, outcome, status_code, error, response)
     SELECT o.seq, ?, ?, ?, ?, ?, ? FROM outbox o WHERE o.event_seq = (SELECT seq FROM events WHERE id = ?) AND o.sink = ?`,
  );
  for (const { eventId, sink, attempt: a } of rows) st.run(a.at, Math.round(a.durationMs), a.outcome, a.statusCode, a.error, a.response, eventId, sink);
}

export interface AttemptRow extends Attempt {
  outboxSeq: number;
}

/** Every attempt of these outbox rows, oldest first. */
export function attemptsOf(db: Database.Database, seqs: number[]): AttemptRow[] {
  if (seqs.length === 0) return [];
  return db
    .prepare(
      `SELECT outbox_seq AS outboxSeq, at, duration_ms AS durationMs, outcome, status_code AS statusCode, error, response
       FROM attempts WHERE outbox_seq IN (SELECT value FROM json_each(?)) ORDER BY id`,
    )
    .all(JSON.stringify(seqs)) as AttemptRow[];
}

/**
 * Forgets attempts older than the cutoff, except those of deliveries not yet delivered (dead ones
 * above all: their attempts say why). Returns how many.
 */
export function pruneAttempts(db: Database.Database, cutoffMs: number): number {
  return db
    .prepare(
      `DELETE FROM attempts WHERE at < ?
       AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.seq = attempts.outbox_seq AND o.status <> 'delivered')`,
    )
    .run(cutoffMs).changes;
}

/** Per minute since `sinceMs`: attempts delivered and attempts failed (retrying or dead). */
export function attemptsPerMinute(db: Database.Database, sinceMs: number): Array<{ minute: number; delivered: number; failed: number }> {
  return db
    .prepare(
      `SELECT (at / 60000) * 60000 AS minute, SUM(outcome = 'delivered') AS delivered, SUM(outcome <> 'delivered') AS failed
       FROM attempts WHERE at >= ? GROUP BY 1 ORDER BY 1`,
    )
    .all(sinceMs) as Array<{ minute: number; delivered: number; failed: number }>;
}
