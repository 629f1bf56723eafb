/** Cursors: where each project's stream has read up to, its late-data sweep, and its last poll's outcome. */
import type { Sql } from './sql.js';

export interface CursorRow {
  project: string;
  source: string;
  cursorMs: number | null;
  sweepFloorMs: number | null;
  sweepPosMs: number | null;
  sweepStartedAt: number | null;
  lastSweepDoneAt: number | null;
  lastPollAt: number | null;
  lastOkAt: number | null;
  lastOutcome: string | null;
  lastError: string | null;
}

const GET = 'SELECT * FROM cursors WHERE project = ? AND source = ?';
const PUT = `INSERT INTO cursors (project, source, cursor_ms, sweep_floor_ms, sweep_pos_ms, sweep_started_at, last_sweep_done_at, last_poll_at, last_ok_at, last_outcome, last_error)
  VALUES (@project, @source, @cursorMs, @sweepFloorMs, @sweepPosMs, @sweepStartedAt, @lastSweepDoneAt, @lastPollAt, @lastOkAt, @lastOutcome, @lastError)
  ON CONFLICT (project, source) DO UPDATE SET cursor_ms = excluded.cursor_ms, sweep_floor_ms = excluded.sweep_floor_ms, sweep_pos_ms = excluded.sweep_pos_ms,
    sweep_started_at = excluded.sweep_started_at, last_sweep_done_at = excluded.last_sweep_done_at, last_poll_at = excluded.last_poll_at,
    last_ok_at = excluded.last_ok_at, last_outcome = excluded.last_outcome, last_error = excluded.last_error`;

export class Cursors {
  constructor(private readonly sql: Sql) {}

  get(project: string, source: string): CursorRow {
    const r = this.sql.prepare(GET).get(project, source) as Record<string, unknown> | undefined;
    return {
      project,
      source,
      cursorMs: (r?.cursor_ms as number | null) ?? null,
      sweepFloorMs: (r?.sweep_floor_ms as number | null) ?? null,
      sweepPosMs: (r?.sweep_pos_ms as number | null) ?? null,
      sweepStartedAt: (r?.sweep_started_at as number | null) ?? null,
      lastSweepDoneAt: (r?.last_sweep_done_at as number | null) ?? null,
      lastPollAt: (r?.last_poll_at as number | null) ?? null,
      lastOkAt: (r?.last_ok_at as number | null) ?? null,
      lastOutcome: (r?.last_outcome as string | null) ?? null,
      lastError: (r?.last_error as string | null) ?? null,
    };
  }

  put(c: CursorRow): void {
    this.sql.prepare(PUT).run(c);
  }

  all(): CursorRow[] {
    const rows = this.sql.prepare('SELECT project, source FROM cursors ORDER BY project, source').all() as Array<{ project: string; source: string }>;
    return rows.map((r) => this.get(r.project, r.source));
  }

  /** Forgets the rows of a project that never read anything (kept under its name while it could not connect). */
  forgetUnread(project: string): void {
    this.sql.prepare('DELETE FROM cursors WHERE project = ? AND cursor_ms IS NULL').run(project);
  }
}
