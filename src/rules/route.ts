/**
 * Where an event goes: the one place that decides which sinks get it, asked as the outbox is written,
 * and what each alert sink sends for it. A sink gets the event types it takes (its `events`); Slack
 * and PagerDuty get an event only when a rule sends it to them, and then send what the rules say:
 * Slack one message, for the first rule that triggers; PagerDuty one event per dedup key, the most
 * severe trigger or else a resolve. That decision is stored with the outbox row (its `route`) and
 * travels with it, through Redis too: a retry or a replay sends what was decided when the event was
 * routed, whatever the rules in force by then.
 */
import { matchesEventPatterns } from '../events/patterns.js';
import type { AnyBridgeEvent } from '../events/types.js';
import type { AlertMatch, CompiledRules, Severity } from './index.js';

/** A sink as routing sees it; `Sink` objects fit. */
export interface RoutedSink {
  name: string;
  kind: string;
  /** An alert sink (Slack, PagerDuty): it gets an event only when a rule sends it there. */
  alerting: boolean;
  /** The event types it takes, globs allowed. */
  events: readonly string[];
}

/** One alert an alert sink sends for an event: the rule's match, without the sink it is stored for. */
export type AlertDecision = Omit<AlertMatch, 'sink'>;

/** What the outbox is given for one event: the sinks that get it, and each alert sink's decision (compact JSON). */
export interface Routing {
  sinks: string[];
  routes: Record<string, string>;
}

/** The sinks among `sinks` that get `event`, in their order, with what each alert sink sends. */
export function routeEvent(event: AnyBridgeEvent, sinks: readonly RoutedSink[], rules: CompiledRules): Routing {
  const out: Routing = { sinks: [], routes: {} };
  for (const s of sinks) {
    if (!matchesEventPatterns(s.events, event.event)) continue;
    if (s.alerting) {
      const alerts = alertsFor(event, s, rules);
      if (alerts.length === 0) continue;
      out.routes[s.name] = encodeRoute(alerts);
    }
    out.sinks.push(s.name);
  }
  return out;
}

/** `event` to exactly these sinks, chosen elsewhere (a test event goes where it is told), with what each alert sink sends. */
export function routeTo(event: AnyBridgeEvent, sinks: readonly RoutedSink[], rules: CompiledRules): Routing {
  const out: Routing = { sinks: sinks.map((s) => s.name), routes: {} };
  for (const s of sinks) if (s.alerting) out.routes[s.name] = encodeRoute(alertsFor(event, s, rules));
  return out;
}

/** What an alert sink sends for `event` (nothing for other sinks). */
export function alertsFor(event: AnyBridgeEvent, sink: Pick<RoutedSink, 'name' | 'kind'>, rules: CompiledRules): AlertDecision[] {
  const matches = rules.forSink(event, sink.name).map(({ sink: _sink, ...m }) => m);
  if (sink.kind === 'slack') return matches.filter((m) => m.action === 'trigger').slice(0, 1);
  if (sink.kind !== 'pagerduty') return [];
  // A test event opens and closes an incident, so nothing stays open.
  if (event.event === 'test') return matches.flatMap((m) => [m, { ...m, action: 'resolve' as const }]);
  return onePerIncident(matches);
}

/** The decision as the outbox row and the Redis job carry it. */
export function encodeRoute(alerts: readonly AlertDecision[]): string {
  return JSON.stringify(alerts);
}

/** The decision stored with a row; null for a row stored without one. */
export function decodeRoute(route: string | null | undefined): AlertDecision[] | null {
  return route ? (JSON.parse(route) as AlertDecision[]) : null;
}

const RANK: Record<Severity, number> = { info: 0, warning: 1, error: 2, critical: 3 };

/** One PagerDuty event per dedup key: the most severe trigger, or a resolve when nothing triggers it. */
function onePerIncident(matches: AlertDecision[]): AlertDecision[] {
  const byKey = new Map<string, AlertDecision>();
  for (const m of matches) {
    const prev = byKey.get(m.dedupKey);
    if (!prev) byKey.set(m.dedupKey, m);
    else if (prev.action === 'resolve' && m.action === 'trigger') byKey.set(m.dedupKey, m);
    else if (prev.action === 'trigger' && m.action === 'trigger' && RANK[m.severity] > RANK[prev.severity]) byKey.set(m.dedupKey, m);
  }
  return [...byKey.values()];
}
