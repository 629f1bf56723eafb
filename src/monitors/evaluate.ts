/**
 * Pure arithmetic of a monitor: the window grid, which window is due, the severity a value gives,
 * and whether a change of severity is notified.
 */
import type { MonitorSeverity, MonitorSpec } from './spec.js';

/**
 * The end of the latest window that may be evaluated: on the grid of `every` from the Unix epoch,
 * once every stream it reads has been polled past its end plus `delay`. null: none yet.
 */
export function dueWindowEnd(spec: Pick<MonitorSpec, 'everyMs' | 'delayMs'>, polledUpToMs: number | null): number | null {
  if (polledUpToMs === null) return null;
  return Math.floor((polledUpToMs - spec.delayMs) / spec.everyMs) * spec.everyMs;
}

export function compare(op: MonitorSpec['op'], value: number, threshold: number): boolean {
  switch (op) {
    case '>':
      return value > threshold;
    case '>=':
      return value >= threshold;
    case '<':
      return value < threshold;
    case '<=':
      return value <= threshold;
    case '==':
      return value === threshold;
    case '!=':
      return value !== threshold;
  }
}

/** null value: no data (fewer than minSamples items, or none with the measure). */
export function severityOf(spec: Pick<MonitorSpec, 'op' | 'alert' | 'warning' | 'noData'>, value: number | null, previous: MonitorSeverity): MonitorSeverity {
  if (value === null) return spec.noData === 'keep' ? previous : spec.noData === 'alert' ? 'alert' : 'ok';
  if (compare(spec.op, value, spec.alert)) return 'alert';
  if (spec.warning !== null && compare(spec.op, value, spec.warning)) return 'warning';
  return 'ok';
}

/** The value a window reports: a count is always a value; anything else needs minSamples items. */
export function reportedValue(spec: Pick<MonitorSpec, 'metric' | 'minSamples'>, value: number | null, samples: number): number | null {
  if (spec.metric === 'count') return value ?? 0;
  return samples >= spec.minSamples ? value : null;
}

/**
 * Whether this evaluation notifies: on every change of severity (the first evaluation of a healthy
 * monitor says nothing), and again after `renotifyMinutes` while it still fires.
 */
export function notifies(spec: Pick<MonitorSpec, 'renotifyMinutes'>, previous: MonitorSeverity, next: MonitorSeverity, notifiedAtMs: number | null, windowEndMs: number): boolean {
  if (next !== previous) return true;
  if (next === 'ok' || spec.renotifyMinutes === null || notifiedAtMs === null) return false;
  return windowEndMs - notifiedAtMs >= spec.renotifyMinutes * 60_000;
}
