/** What `status`, `/metrics`, `/api/v1/monitors` and the console show of each monitor. */
import type { Store } from '../store/index.js';
import type { MonitorStateRow } from '../store/monitors.js';
import { formatMonitorValue } from './notify.js';
import type { MonitorSeverity, MonitorSpec } from './spec.js';

export interface MonitorStatus {
  monitor: string;
  /** Empty until the monitor was first evaluated in a project. */
  projectId: string;
  severity: MonitorSeverity;
  /** The last evaluated window's value; null: no data (or not evaluated yet). */
  value: number | null;
  /** The value as messages write it (`7.5 %`, `8.31 s`). */
  valueText: string;
  metric: string;
  of: string | null;
  op: string;
  alert: number;
  warning: number | null;
  /** `> 5 %`, with the warning threshold when there is one: `> 5 % (warning 2 %)`. */
  thresholdText: string;
  window: string;
  samples: number;
  windowEnd: string | null;
  lastEvaluation: string | null;
  /** False for a state left by a monitor that is not in this config (`run` resolves it at its next start if it fires). */
  configured: boolean;
}

function statusOf(spec: MonitorSpec, projectId: string, r: MonitorStateRow | null, configured: boolean): MonitorStatus {
  return {
    monitor: spec.name,
    projectId,
    severity: r?.severity ?? 'ok',
    value: r?.value ?? null,
    valueText: r && r.evaluatedAt !== null ? formatMonitorValue(spec, r.value) : '-',
    metric: spec.metric,
    of: spec.of,
    op: spec.op,
    alert: spec.alert,
    warning: spec.warning,
    thresholdText: `${spec.op} ${formatMonitorValue(spec, spec.alert)}${spec.warning !== null ? ` (warning ${formatMonitorValue(spec, spec.warning)})` : ''}`,
    window: spec.windowText,
    samples: r?.samples ?? 0,
    windowEnd: r?.windowEndMs == null ? null : new Date(r.windowEndMs).toISOString(),
    lastEvaluation: r?.evaluatedAt == null ? null : new Date(r.evaluatedAt).toISOString(),
    configured,
  };
}

/** Every configured monitor (per project once evaluated), and any state left by one removed. */
export function monitorStatuses(store: Store, monitors: readonly MonitorSpec[]): MonitorStatus[] {
  const rows = store.monitors.states();
  const out: MonitorStatus[] = [];
  for (const m of monitors) {
    const mine = rows.filter((r) => r.monitor === m.name);
    if (!mine.length) out.push(statusOf(m, '', null, true));
    for (const r of mine) out.push(statusOf(m, r.project, r, true));
  }
  for (const r of rows) {
    if (!monitors.some((m) => m.name === r.monitor)) out.push(statusOf(JSON.parse(r.spec) as MonitorSpec, r.project, r, false));
  }
  return out;
}

export function formatMonitorStatus(rows: readonly MonitorStatus[], ago: (iso: string | null) => string): string[] {
  if (!rows.length) return [];
  const several = new Set(rows.map((r) => r.projectId).filter(Boolean)).size > 1;
  const lines = ['', 'MONITOR                SEVERITY  VALUE         THRESHOLD                 WINDOW  LAST EVALUATION'];
  for (const r of rows) {
    const name = `${r.monitor}${several && r.projectId ? ` (${r.projectId})` : ''}`;
    lines.push(`${name.padEnd(22)} ${r.severity.padEnd(8)}  ${r.valueText.padEnd(12)}  ${r.thresholdText.padEnd(24)}  ${r.window.padEnd(6)}  ${r.lastEvaluation ? `${ago(r.lastEvaluation)}, ${r.samples} item(s)` : 'not yet'}`);
    if (!r.configured) lines.push('  not in this config: if it still fires, `run` resolves it at its next start');
  }
  return lines;
}
