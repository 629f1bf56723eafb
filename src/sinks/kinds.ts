/**
 * The sink kinds, in one list: the settings' schema (src/config/schema.ts), the environment
 * (src/config/env.ts), the rules and createSinks read it. A new kind is its module, with its
 * definition (kind.ts), and one line here. The order is the JSON Schema's and the environment's.
 */
import type { SinkDeps, SinkKindDefinition } from './kind.js';
import { handlerSink } from './handler.js';
import { pagerDutySink } from './pagerduty.js';
import { slackSink } from './slack/index.js';
import { stdoutSink } from './stdout.js';
import type { Sink } from './types.js';
import { webhookSink } from './webhook.js';

export const SINK_KINDS = [webhookSink, stdoutSink, slackSink, pagerDutySink, handlerSink] as const;

type Kinds = (typeof SINK_KINDS)[number];
export type SinkKind = Kinds['kind'];
/** One sink's settings, read and with defaults: the `sinks` of BridgeConfig. */
export type SinkConfig = Parameters<Kinds['create']>[0];

/** The sink kinds that page or notify people: rules route to them; history reaches them only when asked. */
export const ALERT_KINDS: readonly string[] = SINK_KINDS.filter((k) => k.alerting).map((k) => k.kind);

/** The names of the configured sinks that page or notify people. */
export function alertSinkNames(sinks: ReadonlyArray<{ name: string; type: string }>): string[] {
  return sinks.filter((s) => isAlertKind(s.type)).map((s) => s.name);
}

export function isAlertKind(kind: string | null | undefined): boolean {
  return ALERT_KINDS.includes(kind ?? '');
}

/** The definition of a kind the settings' schema accepted. */
export function sinkKind(kind: string): SinkKindDefinition {
  const found = SINK_KINDS.find((k) => k.kind === kind);
  if (!found) throw new Error(`unknown sink kind ${JSON.stringify(kind)}`);
  // Each definition takes its own kind's settings; callers pass what that kind's schema accepted.
  return found as unknown as SinkKindDefinition;
}

export function createSink(config: SinkConfig, deps: SinkDeps): Sink | Promise<Sink> {
  return sinkKind(config.type).create(config, deps);
}
