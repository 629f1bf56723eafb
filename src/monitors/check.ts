/**
 * `check`: each monitor evaluated once on the data already kept, read only, one line each with the
 * value it would report. A firing monitor is not a failed check: the line says its severity.
 */
import { existsSync } from 'node:fs';
import { DatabaseError } from '../errors.js';
import { Store } from '../store/index.js';
import { severityOf } from './evaluate.js';
import { cursorSource, dueWindow, factsCover, matchesProject, measureWindow } from './index.js';
import { formatMonitorValue, metricWords } from './notify.js';
import type { MonitorSpec } from './spec.js';

/** `configured`: the config's projects, whose names `where.project` may use (their ids as last connected are in the database). */
export function checkMonitors(database: string, monitors: readonly MonitorSpec[], now = Date.now(), configured: ReadonlyArray<{ name: string; publicKey: string }> = []): string[] {
  if (!monitors.length) return [];
  if (!existsSync(database)) return monitors.map((m) => `✔ monitor ${m.name}: no data yet (\`langfuse-bridge run\` records what monitors read)`);
  let store: Store;
  try {
    store = new Store(database, { readonly: true });
  } catch (err) {
    // The database line above says what is wrong with it.
    const why = err instanceof DatabaseError && err.code === 'SCHEMA_OLDER' ? 'not evaluated yet (the database has an older schema, which `langfuse-bridge run` upgrades)' : 'not evaluated (the database cannot be read)';
    return monitors.map((m) => `✔ monitor ${m.name}: ${why}`);
  }
  try {
    // Projects polled, or only backfilled so far (a backfill keeps facts but moves no live cursor); a
    // project that never connected has only its failures recorded.
    const projects = [...new Set([...store.allCursors().flatMap((c) => (c.cursorMs !== null ? [c.project] : [])), ...store.monitors.factProjects()])];
    const names = new Map<string, string>();
    for (const p of configured) {
      const id = store.meta.projectId(p.publicKey);
      if (id !== null) names.set(id, p.name);
    }
    const lines: string[] = [];
    for (const m of monitors) {
      const applies = projects.filter((project) => matchesProject(m, project, names.get(project) ?? null));
      if (!projects.length) lines.push(`✔ monitor ${m.name}: no data yet (nothing read into this database)`);
      else if (!applies.length) lines.push(`✔ monitor ${m.name}: no data yet (no project read into this database matches where.project)`);
      for (const project of applies) {
        // The window `run` would evaluate next; before the first poll, the one ending now.
        const end = dueWindow(store, project, m) ?? Math.floor(now / m.everyMs) * m.everyMs;
        const label = `✔ monitor ${m.name}${projects.length > 1 ? ` (project ${project})` : ''}`;
        const { aggregate, value } = measureWindow(store, project, m, end);
        const previous = store.monitors.getState(project, m.name)?.severity ?? 'ok';
        const severity = severityOf(m, value, previous);
        const shown = `${metricWords(m)} ${formatMonitorValue(m, value)} (${m.op} ${formatMonitorValue(m, m.alert)} alerts)`;
        // A window reaching back before what was read is measured here, but `run` waits for a full one.
        const since = store.monitors.factsSince(project, cursorSource(m));
        const firstFull = since === null ? null : Math.ceil((since + m.windowMs) / m.everyMs) * m.everyMs;
        const partial = factsCover(store, project, m, end)
          ? ''
          : `; partial window: facts kept since ${since === null ? 'nothing yet' : new Date(since).toISOString()}, so \`run\` evaluates windows ending from ${firstFull === null ? 'its first poll on' : new Date(firstFull).toISOString()} (\`backfill\` reads further back)`;
        lines.push(`${label}: ${shown} over ${m.windowText} to ${new Date(end).toISOString()}, ${aggregate.samples} item(s): ${severity}${partial}`);
      }
    }
    return lines;
  } catch (err) {
    return monitors.map((m) => `✔ monitor ${m.name}: not evaluated (${(err as Error).message})`);
  } finally {
    store.close();
  }
}
