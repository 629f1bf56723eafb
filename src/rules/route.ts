/**
 * Where an event goes: the one place that decides which sinks get it, asked by the poller as it
 * writes the outbox, and what each alert sink sends for it. A sink gets the event types it takes
 * (its `events`); Slack and PagerDuty get an event only when a rule sends it to them, and then send
 * what the rules say: Slack one message, for the first rule that triggers; PagerDuty one event per
 * dedup key, the most severe trigger or else a resolve. A pure function of the event and the
 * compiled rules, so a delivery attempt in any process finds the same decision.
 */
import { matchesEventPatterns } from '../events/patterns.js';
import type { AnyBridgeEvent } from '../events/types.js';
import type { AlertMatch, CompiledRules, Severity } from './index.js';

/** A sink as routing sees it; `Sink` objects fit. */
export interface RoutedSink {
  name: string;
  kind: string;
  /** The event types it takes, globs allowed. */
  events: readonly string[];
}

/** The names of the sinks among `sinks` that get `event`, in their order. */
export function routeEvent(event: AnyBridgeEvent, sinks: readonly RoutedSink[], rules: CompiledRules): string[] {
  const out: string[] = [];
  for (const s of sinks) if (matchesEventPatterns(s.events, event.event) && (!isAlertSink(s) || alertsFor(event, s, rules).length > 0)) out.push(s.name);
  return out;
}

function isAlertSink(s: Pick<RoutedSink, 'kind'>): boolean {
  return s.kind === 'slack' || s.kind === 'pagerduty';
}

/** What an alert sink sends for `event` (nothing for other sinks). */
export function alertsFor(event: AnyBridgeEvent, sink: Pick<RoutedSink, 'name' | 'kind'>, rules: CompiledRules): AlertMatch[] {
  const matches = rules.forSink(event, sink.name);
  if (sink.kind === 'slack') return matches.filter((m) => m.action === 'trigger').slice(0, 1);
  if (sink.kind === 'pagerduty') return onePerIncident(matches);
  return [];
}

const RANK: Record<Severity, number> = { info: 0, warning: 1, error: 2, critical: 3 };

/** One PagerDuty event per dedup key: the most severe trigger, or a resolve when nothing triggers it. */
function onePerIncident(matches: AlertMatch[]): AlertMatch[] {
  const byKey = new Map<string, AlertMatch>();
  for (const m of matches) {
    const prev = byKey.get(m.dedupKey);
    if (!prev) byKey.set(m.dedupKey, m);
    else if (prev.action === 'resolve' && m.action === 'trigger') byKey.set(m.dedupKey, m);
    else if (prev.action === 'trigger' && m.action === 'trigger' && RANK[m.severity] > RANK[prev.severity]) byKey.set(m.dedupKey, m);
  }
  return [...byKey.values()];
}
