/** Seen versions: what the bridge already turned into events, per project, kind and entity. */
import type { SeenRow } from '../events/index.js';
import type { Sql } from './sql.js';

const GET = 'SELECT kind, id, version, level, created, detail FROM seen WHERE project = ? AND kind = ? AND id = ?';
const PUT = `INSERT INTO seen (project, kind, id, version, level, created, detail, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (project, kind, id) DO UPDATE SET version = excluded.version, level = excluded.level, created = excluded.created, detail = excluded.detail, seen_at = excluded.seen_at`;

export class Seen {
  constructor(private readonly sql: Sql) {}

  get(project: string, kind: string, id: string): SeenRow | undefined {
    return this.sql.prepare(GET).get(project, kind, id) as SeenRow | undefined;
  }

  put(project: string, row: SeenRow, now: number): void {
    this.sql.prepare(PUT).run(project, row.kind, row.id, row.version, row.level, row.created, row.detail, now);
  }
}
