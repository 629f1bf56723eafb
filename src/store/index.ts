/**
 * The Store: the one owner of the SQLite database, over one file per table family. Everything the
 * bridge promises about "nothing lost, nothing twice" rests here: events, seen versions and a cursor
 * are written in one transaction, and a delivery is claimed atomically so two processes on one
 * database never send it twice. Nothing outside this folder sees the connection or writes SQL.
 */
import type Database from 'better-sqlite3';
import type { DeliveryStatus } from '../delivery/states.js';
import type { CallLedger, LedgerOwner } from '../langfuse/rate-limiter.js';
import { Attempts, type Attempt } from './attempts.js';
import { ConsoleQueries, type DeliveryFilter, type DeliveryItem, type EventDetail, type MinuteSeries, type ReplayRequest } from './console.js';
import { Cursors, type CursorRow } from './cursors.js';
import { openDatabase, type StoreOptions } from './file.js';
import { callLedger } from './ledger.js';
import { Meta, type RecordedSinkState } from './meta.js';
import { MonitorTables } from './monitors.js';
import { Outbox, type ClaimedDelivery, type Claimer, type DeliveryOutcome, type EnqueueOptions, type EnqueueResult, type NewEvent } from './outbox.js';
import { prune } from './prune.js';
import { Relay, type RelayOutcome, type RelayRow } from './relay.js';
import { Reports, type DeadLetter, type SinkActivity } from './reports.js';
import type { SeenRow } from '../events/index.js';
import { Seen } from './seen.js';
import { Sql } from './sql.js';

export type { Attempt } from './attempts.js';
export type { CursorRow } from './cursors.js';
export { SCHEMA_VERSION, databaseProblem, isSqliteError, peekDatabase, unwritable, type LooseFile, type StoreOptions } from './file.js';
export type { RecordedSinkState, ResumePoint } from './meta.js';
export type { ClaimedDelivery, Claimer, DeliveryOutcome, EnqueueOptions, EnqueueResult, NewEvent } from './outbox.js';
export { OWNER, ownerIsDead } from './owner.js';
export type { RelayOutcome, RelayRow } from './relay.js';
export type { DeadLetter, SinkActivity } from './reports.js';

export class Store {
  readonly #db: Database.Database;
  readonly #sql: Sql;
  readonly #seen: Seen;
  readonly #cursors: Cursors;
  readonly #attempts: Attempts;
  readonly #outbox: Outbox;
  readonly #relay: Relay;
  readonly #reports: Reports;
  readonly #console: ConsoleQueries;
  /** The key/value table, one typed accessor per key family. */
  readonly meta: Meta;
  /** The monitors' facts and states (src/store/monitors.ts). */
  readonly monitors: MonitorTables;

  constructor(
    readonly file: string,
    opts: StoreOptions = {},
  ) {
    this.#db = openDatabase(file, opts);
    const sql = (this.#sql = new Sql(this.#db));
    this.meta = new Meta(sql);
    this.#seen = new Seen(sql);
    this.#cursors = new Cursors(sql);
    this.#attempts = new Attempts(sql);
    this.#outbox = new Outbox(sql, this.#attempts);
    this.#relay = new Relay(sql, this.#outbox);
    this.#reports = new Reports(sql);
    this.#console = new ConsoleQueries(sql, this.#attempts);
    this.monitors = new MonitorTables(sql, this.meta);
  }

  get isOpen(): boolean {
    return this.#db.open;
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }

  /** Runs fn in a write transaction taken up front, so concurrent processes serialize cleanly. */
  write<T>(fn: () => T): T {
    return this.#sql.write(fn);
  }

  // --- seen versions (seen.ts) ------------------------------------------------------------------

  getSeen(project: string, kind: string, id: string): SeenRow | undefined {
    return this.#seen.get(project, kind, id);
  }

  putSeen(project: string, row: SeenRow, now = Date.now()): void {
    this.#seen.put(project, row, now);
  }

  // --- events and outbox (outbox.ts) ------------------------------------------------------------

  /**
   * Must run inside write(): stores each event once and one outbox row per sink. With a claimer,
   * new rows it has room for are written claimed by it (see Claimer).
   */
  enqueue(events: NewEvent[], opts: EnqueueOptions = {}, now = Date.now(), claimer?: Claimer): EnqueueResult {
    return this.#outbox.enqueue(events, opts, now, claimer);
  }

  eventBody(id: string): { body: string; type: string } | undefined {
    return this.#outbox.eventBody(id);
  }

  /** Atomically takes up to `limit` due deliveries of one sink for this process. */
  claim(sink: string, limit: number, leaseMs: number, origin: string | null = null, now = Date.now()): ClaimedDelivery[] {
    return this.#outbox.claim(sink, limit, leaseMs, origin, now);
  }

  /** Writes a batch of attempt outcomes, with their attempts, in one transaction. */
  settle(outcomes: DeliveryOutcome[], now = Date.now()): void {
    this.#outbox.settle(outcomes, now);
  }

  /** Extends this process's hold on a row; false when the row is no longer this process's to send. */
  renewLease(seq: number, leaseUntil: number, now = Date.now()): boolean {
    return this.#outbox.renewLease(seq, leaseUntil, now);
  }

  /** Takes back deliveries left 'delivering' by a process that died (lease run out, or owner gone from this host). */
  recoverStalled(now = Date.now()): number {
    return this.#outbox.recoverStalled(now);
  }

  /** The earliest time at which a row of this sink becomes due, or null when none waits. */
  nextDueAt(sink: string, origin: string | null = null): number | null {
    return this.#outbox.nextDueAt(sink, origin);
  }

  /** Does the outbox still hold work of this origin that is not yet delivered or dead? */
  pending(origin: string | null = null): number {
    return this.#outbox.pending(origin);
  }

  /** Puts dead letters back in the queue; returns how many. */
  replay(sink: string | null, sinceMs: number | null, now = Date.now()): number {
    return this.#outbox.replay(sink, sinceMs, now);
  }

  /** Forgets every row of this origin, whatever its state (a test event leaves nothing behind). */
  forgetOrigin(origin: string): void {
    this.#outbox.forgetOrigin(origin);
  }

  /** Attempts named by event id and sink (Redis mode's workers), in one transaction; unknown ones are skipped. */
  recordAttempts(rows: Array<{ eventId: string; sink: string; attempt: Attempt }>): void {
    this.write(() => this.#attempts.insertByEvent(rows));
  }

  // --- Redis relay (relay.ts) -------------------------------------------------------------------

  /** Marks up to `limit` queued or retrying rows of these sinks as handed to Redis; in write order. */
  takeForRelay(sinks: string[], limit: number, origin: string | null = null, now = Date.now()): RelayRow[] {
    return this.#relay.take(sinks, limit, origin, now);
  }

  /** Rows handed to Redis and not closed yet, by (sink, event id) after `after`; for reconciling. */
  relayed(origin: string | null, after: { sink: string; eventId: string } | null, limit: number): RelayRow[] {
    return this.#relay.relayed(origin, after, limit);
  }

  /** Rows handed to Redis and not closed, per sink (the relay keeps each under a cap). */
  relayedBySink(): Map<string, number> {
    return this.#relay.bySink();
  }

  /** How many rows wait on Redis (handed over, not closed). */
  relayedCount(origin: string | null = null): number {
    return this.#relay.count(origin);
  }

  /** Closes rows whose job ended (delivered or dead); returns the outcomes that changed a row, with the event type. */
  closeRelayed(outcomes: RelayOutcome[], now = Date.now()): Array<RelayOutcome & { type: string }> {
    return this.#relay.close(outcomes, now);
  }

  /** Hands rows back to the outbox when Redis did not take them (queued or retrying, as before). */
  releaseRelayed(rows: Array<{ eventId: string; sink: string; gen: number }>, now = Date.now()): number {
    return this.#relay.release(rows, now);
  }

  /** A dead row whose failed job `replay` retried in Redis: open again, closed when the job ends. */
  reopenRelayed(eventId: string, sink: string, gen: number, now = Date.now()): boolean {
    return this.#relay.reopen(eventId, sink, gen, now);
  }

  // --- cursors (cursors.ts) ---------------------------------------------------------------------

  getCursor(project: string, source: string): CursorRow {
    return this.#cursors.get(project, source);
  }

  putCursor(c: CursorRow): void {
    this.#cursors.put(c);
  }

  allCursors(): CursorRow[] {
    return this.#cursors.all();
  }

  /** Forgets the rows of a project that never read anything (kept under its name while it could not connect). */
  forgetUnreadCursors(project: string): void {
    this.#cursors.forgetUnread(project);
  }

  // --- sink health (meta.ts) --------------------------------------------------------------------

  /** Until when (ms) a receiver asked every process to leave this sink alone; 0: no pause. */
  sinkPausedUntil(sink: string): number {
    return this.meta.sinkPausedUntil(sink);
  }

  /** Pauses a sink for every process on this database; a later pause only ever extends it. */
  pauseSink(sink: string, untilMs: number): void {
    this.meta.pauseSink(sink, untilMs);
  }

  recordSinkState(sink: string, s: RecordedSinkState): void {
    this.meta.recordSinkState(sink, s);
  }

  /** Each sink's last recorded state and pause. */
  sinkStates(): Map<string, RecordedSinkState & { pausedUntil: number | null }> {
    return this.meta.sinkStates();
  }

  // --- status, /metrics and the digest (reports.ts) ---------------------------------------------

  /** Counts per sink and status; with origin, only that backfill's rows. */
  counts(origin: string | null = null): Map<string, Record<DeliveryStatus, number>> {
    return this.#reports.counts(origin);
  }

  /** Rows not yet delivered or dead, per sink and status: reads only the small index of open rows. */
  openCounts(): Array<{ sink: string; status: DeliveryStatus; n: number }> {
    return this.#reports.openCounts();
  }

  oldestPendingAt(): number | null {
    return this.#reports.oldestPendingAt();
  }

  deadLetters(sink: string | null, sinceMs: number | null, limit = 20): DeadLetter[] {
    return this.#reports.deadLetters(sink, sinceMs, limit);
  }

  /** A sink's last success, last failed attempt and next retry; with its counts, empty statuses are not looked up. */
  sinkActivity(sink: string, counts: Record<DeliveryStatus, number> | null = null): SinkActivity {
    return this.#reports.sinkActivity(sink, counts);
  }

  /** Dead letters per sink and reason (the last error), most frequent first. */
  deadByReason(): Array<{ sink: string; reason: string | null; count: number; lastAt: number }> {
    return this.#reports.deadByReason();
  }

  /** Dead letters not replayed, dead-lettered since then. */
  deadSince(sinceMs: number): number {
    return this.#reports.deadSince(sinceMs);
  }

  /** The sinks that have dead letters. */
  deadSinks(): string[] {
    return this.#reports.deadSinks();
  }

  /** Rows of each origin but the live one that are not delivered or dead yet (backfills, test events). */
  openByOrigin(): Array<{ origin: string; status: DeliveryStatus; n: number; since: number }> {
    return this.#reports.openByOrigin();
  }

  /** Generations, tokens and cost per model in [since, until) (ISO, the events' own time), costliest first. */
  usageByModel(since: string, until: string): Array<{ model: string; generations: number; tokens: number; cost: number }> {
    return this.#reports.usageByModel(since, until);
  }

  /** Traces that reached ERROR in [since, until). */
  errorTraces(since: string, until: string): number {
    return this.#reports.errorTraces(since, until);
  }

  /** Numeric scores below 0.5 in [since, until), per score name, most first. */
  lowScores(since: string, until: string): Array<{ name: string; count: number }> {
    return this.#reports.lowScores(since, until);
  }

  // --- the console (console.ts) -----------------------------------------------------------------

  listDeliveries(f: DeliveryFilter): { items: DeliveryItem[]; nextCursor: string | null } {
    return this.#console.listDeliveries(f);
  }

  eventDetail(id: string): EventDetail | null {
    return this.#console.eventDetail(id);
  }

  /** Deliveries per sink since then. */
  deliveredSince(sinceMs: number): Map<string, number> {
    return this.#console.deliveredSince(sinceMs);
  }

  /** Events written, attempts delivered and attempts failed, per minute over the last hour. */
  lastHour(now = Date.now()): MinuteSeries {
    return this.#console.lastHour(now);
  }

  /** Puts the chosen deliveries back in the queue (dead ones; delivered ones too with resend); returns how many. */
  replayDeliveries(r: ReplayRequest, now = Date.now()): number {
    return this.#console.replay(r, now);
  }

  // --- the shared request ceiling (ledger.ts) and retention (prune.ts) --------------------------

  /** A CallLedger over this database for one Langfuse project, for one process (`own`). */
  callLedger(key: string, own: LedgerOwner = { max: 30, explicit: true, role: 'live' }): CallLedger {
    // On the main connection: a second connection writing to the same file would make this one drop
    // its whole page cache after every call. In WAL mode with synchronous=NORMAL a commit costs no fsync.
    return callLedger(this.#sql, this.meta, key, own);
  }

  /** Forgets delivered rows, seen versions and attempts older than the retention; never anything pending or dead. */
  prune(retentionDays: number, now = Date.now()): { outbox: number; events: number; seen: number; attempts: number } {
    return prune(this.#sql, this.meta, this.#attempts, now - retentionDays * 86_400_000);
  }
}
