/**
 * What describes a sink kind, once, next to its implementation: its settings (a zod schema and the
 * defaults its descriptions name), the environment variables that make one, whether it alerts, how its
 * settings are checked and filled in, and how it is built. src/sinks/kinds.ts lists the kinds; the
 * settings, the environment, the rules and createSinks all read that list.
 */
import { z } from 'zod';
import { positiveSeconds, wholeNumber } from '../config/fields.js';
import type { VariableKind } from '../config/env.js';
import type { AnyBridgeEvent } from '../events/types.js';
import type { AlertDecision } from '../rules/route.js';
import type { Sink } from './types.js';

/** What every sink's settings hold once read. */
export interface SinkConfigBase {
  type: string;
  /** The name `--sink`, `status` and rules use. */
  name: string;
  /** The event types it takes, globs allowed. */
  events: string[];
}

/** Where one sink's settings were written, to name them in messages as the user wrote them. */
export interface SinkPlace {
  /** The config file; null for a sink the environment makes. */
  file: string | null;
  /** A key of this sink as the user wrote it: `sinks[0] ("ops").url` or `SLACK_WEBHOOK_URL`. */
  at(key: string): string;
  /** How to set `key` to `value` in that place: `"signature": "none" on that sink` or `BRIDGE_WEBHOOK_SIGNATURE=none`. */
  howToSet(key: string, value: string): string;
}

/** One variable that makes a sink of this kind when set (its value the key `key`), and those that fill in its other keys. */
export interface SinkVariables {
  by: string;
  key: string;
  more: ReadonlyArray<readonly [variable: string, key: string, kind: VariableKind]>;
}

/** What an alert sink (Slack, PagerDuty) is built with, besides its own settings. */
export type AlertSinkOptions = Pick<SinkDeps, 'decideNow' | 'unrouted' | 'langfuseBaseUrl' | 'userAgent'>;

/** What createSinks hands every sink it builds; each kind takes what it needs. */
export interface SinkDeps {
  /** `langfuse-bridge/<version>` */
  userAgent: string;
  langfuseBaseUrl: string;
  /** More alerts than this from one rule in a minute fold into one summary. */
  alertBurst: number;
  /** Where the stdout sink writes; process.stdout unless given. */
  stdout?: NodeJS.WritableStream;
  /**
   * For an alert sink: decides now what to send for a delivery that carries no decision, a row or job
   * queued by a version that did not store one. Every other delivery sends what was decided when it was routed.
   */
  decideNow(event: AnyBridgeEvent): AlertDecision[];
  /** An alert sink no rule (or monitor) sends anything to. */
  unrouted: boolean;
  warn(message: string): void;
}

type Settings<S extends z.ZodObject> = Omit<z.infer<S>, 'events'> & { events: string[] };

export interface SinkKindDefinition<C extends SinkConfigBase = SinkConfigBase, S extends z.ZodObject = z.ZodObject, D extends object = object> {
  /** The `type` in the config file, the sink's default name, and Sink.kind. */
  readonly kind: C['type'];
  /** Pages or notifies people (Slack, PagerDuty): rules send alerts to it; history reaches it only when asked. */
  readonly alerting: boolean;
  /** Its entry in the config file's `sinks`, with a literal `type`. */
  readonly schema: S;
  /** Every default of its settings, written here only. */
  readonly defaults: D;
  /** The variables that make one from the environment, if any. */
  readonly env?: SinkVariables;
  /**
   * The settings as the sink takes them: checked beyond the schema (throwing ConfigError named by
   * `place`), with defaults filled in. The name is given after, once every sink is known.
   */
  read(settings: Settings<S>, place: SinkPlace): Omit<C, 'name'>;
  create(config: C, deps: SinkDeps): Sink | Promise<Sink>;
}

/** Types a sink kind's definition from its config and schema. */
export function defineSinkKind<C extends SinkConfigBase, S extends z.ZodObject, D extends object>(d: SinkKindDefinition<C, S, D>): SinkKindDefinition<C, S, D> {
  return d;
}

/** The keys every sink kind has, for its schema. */
export const sinkFields = {
  name: z.string().min(1).describe('the name `--sink`, `status` and rules use; default the type (webhook, webhook-2, ...)'),
  events: z
    .union([z.string(), z.array(z.string())])
    .describe('event types this sink gets, globs allowed: ["trace.*", "score.created"] or "trace.*,score.created"; default all'),
  timeoutSeconds: (dflt: number) => positiveSeconds(`time allowed for one delivery attempt, seconds; default ${dflt}`),
  concurrency: (dflt: number) => wholeNumber(1, 256, '', `deliveries in flight at once to this sink; default ${dflt}`),
};
