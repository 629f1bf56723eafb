/**
 * Builds the configured sinks. Slack and PagerDuty send what the router decided from the rules when
 * the event was routed; the rules in force here decide only for deliveries that carry no decision.
 */
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/index.js';
import type { AnyBridgeEvent } from '../events/types.js';
import { alertsFor } from '../rules/route.js';
import { USER_AGENT } from '../version.js';
import { checkMonitorSinks } from '../monitors/spec.js';
import { createSink } from './kinds.js';
import type { Sink } from './types.js';

export type { Sink, Delivery, DeliveryResult } from './types.js';

export interface BuiltSinks {
  sinks: Sink[];
}

export async function createSinks(config: BridgeConfig, logger: Logger, opts: { stdout?: NodeJS.WritableStream } = {}): Promise<BuiltSinks> {
  const { rules } = config;
  // An alert sink that only monitors notify is routed too.
  const monitorSinks = new Set(config.monitors.flatMap((m) => m.sinks));
  const unrouted = rules.unroutedSinks.filter((n) => !monitorSinks.has(n));
  for (const name of unrouted) logger.warn({ sink: name }, 'no rule sends anything to this alert sink');
  const sinks: Sink[] = [];
  for (const cfg of config.sinks) {
    sinks.push(
      await createSink(cfg, {
        userAgent: USER_AGENT,
        langfuseBaseUrl: config.langfuse.baseUrl,
        alertBurst: config.alertBurst,
        stdout: opts.stdout,
        // Outbox rows and Redis jobs queued before decisions were stored with them are decided at delivery, as then.
        decideNow: (event: AnyBridgeEvent) => alertsFor(event, { name: cfg.name, kind: cfg.type }, rules),
        unrouted: unrouted.includes(cfg.name),
        warn: (message) => logger.warn({ sink: cfg.name }, message),
      }),
    );
  }
  // A handler module is known only now: a monitor naming it needs a handler for its events.
  const loaded = new Map(sinks.map((s) => [s.name, s]));
  checkMonitorSinks(config.monitors, (name, types) => {
    const sink = loaded.get(name);
    const cfg = config.sinks.find((c) => c.name === name);
    if (sink?.kind !== 'handler' || cfg?.type !== 'handler') return null;
    const missing = types.filter((t) => !(sink.events as readonly string[]).includes(t));
    return missing.length ? `whose handler module ${cfg.module} has no handler for ${missing.join(', ')}; export one (e.g. 'monitor.*' or onMonitorAlert) or name another sink` : null;
  });
  return { sinks };
}

export async function closeSinks(sinks: Sink[]): Promise<void> {
  await Promise.allSettled(sinks.map((s) => s.close?.()));
}
