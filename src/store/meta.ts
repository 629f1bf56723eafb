/**
 * The key/value table, one typed accessor per key family: nothing outside this file spells a key.
 * Every family is small and written only when something changes, never per event or per delivery.
 */
import type { SinkState } from '../delivery/states.js';
import type { Sql } from './sql.js';

/** A sink's state as the process delivering to it last recorded it (see src/delivery/health.ts). */
export interface RecordedSinkState {
  state: SinkState;
  /** When it took this state (ms). */
  since: number;
  /** While open: when the next probe goes. */
  nextProbeAt?: number | null;
}

/** A range a backfill has read part-way: its resume key (`<origin>[:<project>]`), the stream and how far. */
export interface ResumePoint {
  resumeKey: string;
  source: string;
  ms: number;
}

const GET = 'SELECT value FROM meta WHERE key = ?';
const SET = 'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value';
/** A time only ever moved later: a later pause never shortens an earlier one. */
const EXTEND = 'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)';
const DELETE = 'DELETE FROM meta WHERE key = ?';
/** By key range, so the key's index is used: a prefix's keys lie in [prefix, prefix + U+FFFF). */
const WITH_PREFIX = 'SELECT key, value FROM meta WHERE key >= ? AND key < ? ORDER BY key';
const DELETE_PREFIX = 'DELETE FROM meta WHERE key >= ? AND key < ?';

const DAEMON = 'daemon';
const PRUNED_BEFORE = 'pruned_before';
const PROJECT = 'project:';
const BACKFILL = 'backfill:';
const POLL_PACE = 'poll-pace:';
const SINK_PAUSE = 'sink-pause:';
const SINK_STATE = 'sink-state:';
const LEDGER_PAUSE = 'pause:';
const LEDGER_RECORD = 'ceiling:';
const FACTS_READ = 'facts-read:';

export class Meta {
  constructor(private readonly sql: Sql) {}

  private get(key: string): string | null {
    return (this.sql.pluck(GET).get(key) as string | undefined) ?? null;
  }

  private set(key: string, value: string): void {
    this.sql.prepare(SET).run(key, value);
  }

  private withPrefix(prefix: string): Array<{ key: string; value: string }> {
    return this.sql.prepare(WITH_PREFIX).all(prefix, `${prefix}\uffff`) as Array<{ key: string; value: string }>;
  }

  // --- `daemon`: the lock record of the one daemon per database (its format: src/store/daemon.ts) -----

  daemon(): string | null {
    return this.get(DAEMON);
  }

  setDaemon(record: string): void {
    this.set(DAEMON, record);
  }

  // --- `pruned_before`: the retention cut of the last prune that forgot something ---------------------

  /** ms; 0 when nothing was ever pruned. */
  prunedBefore(): number {
    return Number(this.get(PRUNED_BEFORE) ?? 0);
  }

  setPrunedBefore(ms: number): void {
    this.set(PRUNED_BEFORE, String(ms));
  }

  // --- `project:<public key>`: the Langfuse project id those keys belong to ---------------------------

  projectId(publicKey: string): string | null {
    return this.get(`${PROJECT}${publicKey}`);
  }

  setProjectId(publicKey: string, id: string): void {
    this.set(`${PROJECT}${publicKey}`, id);
  }

  // --- `<resume key>:<source>`: how far an interrupted backfill read each stream ----------------------

  resumePoint(resumeKey: string, source: string): number | null {
    const v = this.get(`${resumeKey}:${source}`);
    return v === null ? null : Number(v);
  }

  setResumePoint(resumeKey: string, source: string, ms: number): void {
    this.set(`${resumeKey}:${source}`, String(ms));
  }

  /** Every backfill's points, for `status`. */
  resumePoints(): ResumePoint[] {
    const out: ResumePoint[] = [];
    for (const m of this.withPrefix(BACKFILL)) {
      const cut = m.key.lastIndexOf(':');
      const ms = Number(m.value);
      if (Number.isFinite(ms)) out.push({ resumeKey: m.key.slice(0, cut), source: m.key.slice(cut + 1), ms });
    }
    return out;
  }

  /** A finished pass: the same command run again reads its whole range again. */
  forgetResumePoints(origin: string): void {
    const prefix = `${origin}:`;
    this.sql.prepare(DELETE_PREFIX).run(prefix, `${prefix}\uffff`);
  }

  // --- `poll-pace:<project>`: the pace the daemon last recorded for each project's polls --------------

  setPollPace(project: string, pace: object): void {
    this.set(`${POLL_PACE}${project}`, JSON.stringify(pace));
  }

  /** Each project's last recorded pace, in project order; unreadable ones left out. */
  pollPaces(): unknown[] {
    const out: unknown[] = [];
    for (const r of this.withPrefix(POLL_PACE)) {
      try {
        out.push(JSON.parse(r.value));
      } catch {
        /* not ours */
      }
    }
    return out;
  }

  // --- `sink-pause:<sink>`, `sink-state:<sink>`: sink health --------------------------------------------
  // `sink-pause` holds until when every process delivering to the sink waits (a 429's Retry-After),
  // `sink-state` the state the delivering process last gave the sink, for `status`.

  /** Until when (ms) a receiver asked every process to leave this sink alone; 0: no pause. */
  sinkPausedUntil(sink: string): number {
    return Number(this.get(`${SINK_PAUSE}${sink}`) ?? 0) || 0;
  }

  /** Pauses a sink for every process on this database; a later pause only ever extends it. */
  pauseSink(sink: string, untilMs: number): void {
    this.sql.prepare(EXTEND).run(`${SINK_PAUSE}${sink}`, String(Math.round(untilMs)));
  }

  recordSinkState(sink: string, s: RecordedSinkState): void {
    this.set(`${SINK_STATE}${sink}`, JSON.stringify(s));
  }

  /** Each sink's last recorded state and pause. */
  sinkStates(): Map<string, RecordedSinkState & { pausedUntil: number | null }> {
    const out = new Map<string, RecordedSinkState & { pausedUntil: number | null }>();
    for (const r of this.withPrefix(SINK_STATE)) {
      try {
        const v = JSON.parse(r.value) as RecordedSinkState;
        if (typeof v?.state === 'string') out.set(r.key.slice(SINK_STATE.length), { ...v, pausedUntil: null });
      } catch {
        /* unreadable: shown as unknown */
      }
    }
    for (const r of this.withPrefix(SINK_PAUSE)) {
      const sink = r.key.slice(SINK_PAUSE.length);
      const s = out.get(sink) ?? { state: 'ok', since: 0, pausedUntil: null };
      s.pausedUntil = Number(r.value) || 0;
      out.set(sink, s);
    }
    return out;
  }

  // --- `facts-read:<project>:<source>`: the range monitor facts are complete for (src/store/monitors.ts)

  /** [since, until) in ms; null when no facts were kept yet for this project and poll source. */
  factsRead(project: string, source: string): { since: number; until: number } | null {
    const v = this.get(`${FACTS_READ}${project}:${source}`);
    if (v === null) return null;
    const [since, until] = v.split('-').map(Number);
    return Number.isFinite(since) && Number.isFinite(until) ? { since: since!, until: until! } : null;
  }

  setFactsRead(project: string, source: string, range: { since: number; until: number }): void {
    this.set(`${FACTS_READ}${project}:${source}`, `${range.since}-${range.until}`);
  }

  // --- `pause:<ledger>`, `ceiling:<ledger>:<process>`: the shared request ceiling (src/store/ledger.ts) --

  /** Until when (ms) a 429 paused every process's calls under this ledger; 0: no pause. */
  ledgerPausedUntil(ledger: string): number {
    return Number(this.get(`${LEDGER_PAUSE}${ledger}`) ?? 0);
  }

  pauseLedger(ledger: string, untilMs: number): void {
    this.sql.prepare(EXTEND).run(`${LEDGER_PAUSE}${ledger}`, String(untilMs));
  }

  /** What each process sharing this ledger said it holds to, by the id it registered under. */
  ledgerRecords(ledger: string): Array<{ id: string; value: string }> {
    const prefix = `${LEDGER_RECORD}${ledger}:`;
    return this.withPrefix(prefix).map((r) => ({ id: r.key.slice(prefix.length), value: r.value }));
  }

  putLedgerRecord(ledger: string, id: string, value: string): void {
    this.set(`${LEDGER_RECORD}${ledger}:${id}`, value);
  }

  forgetLedgerRecord(ledger: string, id: string): void {
    this.sql.prepare(DELETE).run(`${LEDGER_RECORD}${ledger}:${id}`);
  }
}
