import type { AnyBridgeEvent } from '../../src/events/types.js';
import { compileRules } from '../../src/rules/index.js';
import { routeEvent } from '../../src/rules/route.js';
import type { Sink } from '../../src/sinks/types.js';

const noRules = compileRules(null, []);

/** Whether the router sends this event to this (non-alert) sink. */
export function takes(sink: Sink, event: AnyBridgeEvent): boolean {
  return routeEvent(event, [sink], noRules).sinks.includes(sink.name);
}
