/** How often each project's polls run: `run` records it as it polls, `status` reads it back. */
import type { BridgeConfig } from '../config/index.js';
import type { Metrics } from '../ops/metrics.js';
import type { Poller } from '../poll/index.js';
import type { Store } from '../store/index.js';

/** How often a project's polls run, against how often they were asked to. */
export interface PollPace {
  project: string;
  intervalSeconds: number;
  /** The pace the ceiling can hold (the interval, or longer). */
  effectiveIntervalSeconds: number;
  /** Measured over the last polls (null until there are two). */
  measuredIntervalSeconds: number | null;
  callsPerPoll: number;
  ceiling: number;
  limitedByCeiling: boolean;
  at: string;
}

/** `recorded`: per project, the pace last written, so that an unchanged one is not written again every poll. */
export function recordPollPace(store: Store, metrics: Metrics, poller: Poller, config: BridgeConfig, starts: number[], recorded: Map<string, string>): PollPace {
  const measured = starts.length >= 2 ? Math.round((starts[starts.length - 1]! - starts[0]!) / (starts.length - 1) / 100) / 10 : null;
  const pace: PollPace = {
    project: poller.projectId!,
    intervalSeconds: config.pollIntervalSeconds,
    effectiveIntervalSeconds: poller.effectiveIntervalSeconds(),
    measuredIntervalSeconds: measured,
    callsPerPoll: poller.callsPerPoll(),
    ceiling: poller.ceiling(),
    limitedByCeiling: poller.effectiveIntervalSeconds() > config.pollIntervalSeconds,
    at: new Date().toISOString(),
  };
  // Written when it changes (the measured interval to the second), not every poll.
  const changed = `${pace.effectiveIntervalSeconds}/${pace.ceiling}/${pace.callsPerPoll}/${pace.measuredIntervalSeconds === null ? '' : Math.round(pace.measuredIntervalSeconds)}`;
  if (recorded.get(pace.project) !== changed) {
    store.meta.setPollPace(pace.project, pace);
    recorded.set(pace.project, changed);
  }
  metrics.setPollPace(pace);
  return pace;
}

/** What the daemon last recorded of each project's poll pace (none from a database that never ran one). */
export function pollPaces(store: Store): PollPace[] {
  return store.meta.pollPaces() as PollPace[];
}
