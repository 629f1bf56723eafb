/** Builds the configured sinks, with the alert rules (compiled with the config) that route events to Slack and PagerDuty. */
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/index.js';
import { USER_AGENT } from '../version.js';
import { createHandlerSink } from './handler.js';
import { createPagerDutySink } from './pagerduty.js';
import { createSlackSink } from './slack/index.js';
import { createStdoutSink } from './stdout.js';
import type { Sink } from './types.js';
import { createWebhookSink } from './webhook.js';

export type { Sink, Delivery, DeliveryResult } from './types.js';

export interface BuiltSinks {
  sinks: Sink[];
}

export async function createSinks(config: BridgeConfig, logger: Logger, opts: { stdout?: NodeJS.WritableStream } = {}): Promise<BuiltSinks> {
  const { rules } = config;
  for (const name of rules.unroutedSinks) logger.warn({ sink: name }, 'no rule sends anything to this alert sink');
  const sinks: Sink[] = [];
  for (const cfg of config.sinks) {
    switch (cfg.type) {
      case 'webhook':
        sinks.push(createWebhookSink(cfg, { userAgent: USER_AGENT }));
        break;
      case 'stdout':
        sinks.push(createStdoutSink(cfg, opts.stdout));
        break;
      case 'slack':
        sinks.push(
          createSlackSink(cfg, {
            rules,
            langfuseBaseUrl: config.langfuse.baseUrl,
            alertBurst: config.alertBurst,
            userAgent: USER_AGENT,
            warn: (message) => logger.warn({ sink: cfg.name }, message),
          }),
        );
        break;
      case 'pagerduty':
        sinks.push(createPagerDutySink(cfg, { rules, langfuseBaseUrl: config.langfuse.baseUrl, userAgent: USER_AGENT }));
        break;
      case 'handler':
        sinks.push(await createHandlerSink(cfg));
        break;
    }
  }
  return { sinks };
}

export async function closeSinks(sinks: Sink[]): Promise<void> {
  await Promise.allSettled(sinks.map((s) => s.close?.()));
}
