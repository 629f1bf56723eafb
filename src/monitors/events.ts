/**
 * A monitor's notification as an event: `monitor.alert`, `monitor.warning` or `monitor.resolved`,
 * its id derived from the project, the monitor, the severity and the window's end (so a window is
 * notified once, whatever restarts), its timestamp the window's end.
 */
import { eventId, makeEvent } from '../events/index.js';
import type { AnyBridgeEvent, MonitorData } from '../events/types.js';
import { baseUrl } from '../sinks/text.js';
import type { MonitorSeverity, MonitorSource, MonitorSpec, MonitorWhere } from './spec.js';

export type MonitorEventType = 'monitor.alert' | 'monitor.warning' | 'monitor.resolved';
export type MonitorEvent = Extract<AnyBridgeEvent, { event: MonitorEventType }>;

export function isMonitorEvent(event: AnyBridgeEvent): event is MonitorEvent {
  return event.event === 'monitor.alert' || event.event === 'monitor.warning' || event.event === 'monitor.resolved';
}

export function monitorEventType(severity: MonitorSeverity): MonitorEventType {
  return severity === 'alert' ? 'monitor.alert' : severity === 'warning' ? 'monitor.warning' : 'monitor.resolved';
}

/** The PagerDuty dedup key (and Slack's thread of one incident): one per project and monitor. */
export function monitorDedupKey(projectId: string, monitor: string): string {
  return `langfuse-bridge:${projectId}:monitor:${monitor}`;
}

const PAGE: Record<MonitorSource, string> = { traces: 'traces', generations: 'observations', observations: 'observations', scores: 'scores' };

/**
 * Langfuse's table for the monitor's source, filtered the same way (Langfuse's `filter` query
 * parameter: `column;type;key;operator;value` items) and from the window's start.
 */
export function monitorUrl(langfuseBaseUrl: string, projectId: string, spec: Pick<MonitorSpec, 'source' | 'where'>, windowStartMs: number): string {
  const base = `${baseUrl(langfuseBaseUrl)}/project/${encodeURIComponent(projectId)}/${PAGE[spec.source]}`;
  const w: MonitorWhere = spec.where;
  const filters: string[] = [`Timestamp;datetime;;>=;${new Date(windowStartMs).toISOString()}`];
  const names = (column: string, values: string[] | undefined): void => {
    // Wildcards have no filter form in Langfuse; exact names do.
    const exact = values?.filter((v) => !v.includes('*'));
    if (exact?.length) filters.push(`${column};stringOptions;;any of;${exact.map(encodeURIComponent).join('|')}`);
  };
  if (spec.source === 'generations') filters.push('Type;stringOptions;;any of;GENERATION');
  names(spec.source === 'traces' ? 'Name' : 'Trace Name', w.traceName);
  names('Environment', w.environment);
  names('Model', w.model);
  names('Name', w.scoreName);
  if (w.tags?.length) filters.push(`Tags;arrayOptions;;all of;${w.tags.map(encodeURIComponent).join('|')}`);
  if (w.level) filters.push(`Level;stringOptions;;any of;${w.level === 'ERROR' ? 'ERROR' : 'WARNING|ERROR'}`);
  return `${base}?filter=${encodeURIComponent(filters.join(','))}`;
}

export interface MonitorOutcome {
  projectId: string;
  spec: MonitorSpec;
  severity: MonitorSeverity;
  previousSeverity: MonitorSeverity;
  value: number | null;
  samples: number;
  windowEndMs: number;
  recent: Array<number | null>;
  langfuseBaseUrl: string;
  removed?: boolean;
}

export function buildMonitorEvent(o: MonitorOutcome): MonitorEvent {
  const type = monitorEventType(o.severity);
  const windowStartMs = o.windowEndMs - o.spec.windowMs;
  const windowEnd = new Date(o.windowEndMs).toISOString();
  const data: MonitorData = {
    projectId: o.projectId,
    monitor: o.spec.name,
    severity: o.severity,
    previousSeverity: o.previousSeverity,
    value: o.value,
    threshold: o.severity === 'warning' && o.spec.warning !== null ? o.spec.warning : o.spec.alert,
    op: o.spec.op,
    metric: o.spec.metric,
    of: o.spec.of,
    window: o.spec.windowText,
    windowStart: new Date(windowStartMs).toISOString(),
    windowEnd,
    samples: o.samples,
    url: monitorUrl(o.langfuseBaseUrl, o.projectId, o.spec, windowStartMs),
    recent: o.recent,
  };
  if (o.removed) data.removed = true;
  return makeEvent(type, eventId(o.projectId, type, o.spec.name, windowEnd), windowEnd, data) as MonitorEvent;
}
