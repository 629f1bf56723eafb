/**
 * Loads the settings: the config file as written and the environment put in the file's shape
 * (env.ts) are each validated with the one schema (schema.ts), checked value by value under the name
 * the user wrote, merged with the environment winning, filled in from DEFAULTS (a sink by its kind's
 * definition, listed in src/sinks/kinds.ts), and the alert rules compiled against the sinks. A bad
 * value becomes a ConfigError whose one line names the setting, what it must be, and what it got.
 */
import type { z } from 'zod';
import { checkMonitorSinks, checkMonitorStreams, compileMonitors, type MonitorSpec } from '../monitors/spec.js';
import { compileRules, type CompiledRules } from '../rules/index.js';
import { settingsFromEnv, type Env } from './env.js';
import { ConfigError } from '../errors.js';
import { matchesEventPatterns } from '../events/patterns.js';
import type { SinkConfigBase, SinkPlace } from '../sinks/kind.js';
import { isAlertKind, sinkKind, type SinkConfig } from '../sinks/kinds.js';
import { stdoutSink } from '../sinks/stdout.js';
import { fail, parseUrl } from './fields.js';
import { envIssueMessage, fileIssueMessage, fileKey, pathKey, type EnvNames } from './messages.js';
import { readConfigFile, warnIfExposed } from './file.js';
import { DEFAULTS, settingsSchema, type ApiMode, type RawProject, type RawSettings, type Stream } from './schema.js';
import { checkCron, checkPrefix, checkRedisUrl, eventPatterns, parseInstant, uniqueStreams } from './values.js';

export { parseInstant } from './values.js';
export type { ApiMode, Stream } from './schema.js';

/** One Langfuse project of a bridge that polls several (`projects` in the config file), defaults filled in. */
/** How to reach one Langfuse project: its keys, host, API generation and request ceiling. */
export interface LangfuseAccess {
  publicKey: string;
  secretKey: string;
  baseUrl: string;
  api: ApiMode;
  maxRequestsPerMinute: number;
  /** Whether maxRequestsPerMinute was set (not the default): processes sharing a database share one. */
  maxRequestsPerMinuteSet?: boolean;
}

export interface ProjectConfig extends LangfuseAccess {
  name: string;
  streams: Stream[];
  lookbackSeconds: number;
  startFrom: Date | null;
}

export interface BridgeConfig {
  langfuse: LangfuseAccess & {
    /** Per-call timeout for Langfuse requests. */
    timeoutSeconds: number;
  };
  database: string;
  pollIntervalSeconds: number;
  lookbackSeconds: number;
  retentionDays: number;
  startFrom: Date | null;
  streams: Stream[];
  includeIo: boolean;
  retry: { maxAttempts: number; baseSeconds: number };
  alertBurst: number;
  httpPort: number | null;
  /** Address the ops server listens on: loopback unless told (the container image says 0.0.0.0). */
  httpHost: string;
  /** BRIDGE_HTTP_TOKEN: the console's and its API's bearer token; null: the console answers on loopback only. */
  httpToken: string | null;
  healthMaxAgeSeconds: number;
  sinks: SinkConfig[];
  /** Cron expression (UTC) for the Slack digest of the day's usage, errors and low scores; null: off. */
  digestCron: string | null;
  /** The alert rules, compiled against `sinks`: the file's `rules`, or the contract's defaults. */
  rules: CompiledRules;
  /** Thresholds on aggregates over windows (src/monitors/), checked against the sinks and streams. */
  monitors: MonitorSpec[];
  configFile: string | null;
  /** Optional Redis delivery backend: the outbox is relayed to BullMQ queues worked by `worker` processes. */
  queue: { redisUrl: string | null; connectWaitSeconds: number; prefix: string; lockSeconds: number };
  /** Several Langfuse projects in one bridge (config file only); empty: the one project of `langfuse`. */
  projects: ProjectConfig[];
  /** Set by `projectConfigs` on each project's config: the project's configured name. */
  projectName?: string;
}

/** Where a set of settings came from, to name each as the user wrote it. */
interface Origin {
  /** The config file; null for the environment. */
  file: string | null;
  name(at: readonly PropertyKey[]): string;
  /** The value at `at` as the user wrote it (a variable's text), for messages. */
  got(at: readonly PropertyKey[], value: unknown): unknown;
  /** How to set a key of sink `i` to `value` in this place, for messages. */
  howToSet(i: number, key: string, value: string): string;
}

function fileOrigin(file: string, data: unknown): Origin {
  return {
    file,
    name: (at) => fileKey(at, data),
    got: (_, value) => value,
    howToSet: (_, key, value) => `"${key}": "${value}" on that sink`,
  };
}

function envOrigin(names: EnvNames): Origin {
  return {
    file: null,
    name: (at) => names.get(pathKey(at))?.name ?? pathKey(at),
    got: (at, value) => names.get(pathKey(at))?.raw ?? value,
    howToSet: (i, key, value) => `${names.get(pathKey(['sinks', i, key]))?.name ?? key}=${value}`,
  };
}

function validate(data: unknown, describe: (issue: z.core.$ZodIssue) => string): RawSettings {
  const parsed = settingsSchema.safeParse(data);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new ConfigError(issue ? describe(issue) : 'the settings are invalid');
}

/** A sink read by its kind's definition, not named yet, with the name it was given and where it came from. */
interface CheckedSink {
  sink: Omit<SinkConfigBase, 'name'>;
  name: string | undefined;
  origin: Origin;
  index: number;
}

/** The checks the schema cannot express, on one origin's settings; values come back normalized. */
function check(s: RawSettings, o: Origin): { settings: RawSettings; sinks: CheckedSink[] } {
  const out: RawSettings = structuredClone(s);
  if (out.langfuse?.baseUrl !== undefined) out.langfuse.baseUrl = parseUrl(o.name(['langfuse', 'baseUrl']), out.langfuse.baseUrl);
  if (out.startFrom !== undefined) parseInstant(o.name(['startFrom']), out.startFrom);
  if (out.streams !== undefined) out.streams = uniqueStreams(o.name(['streams']), out.streams, o.got(['streams'], out.streams));
  if (out.digestCron) checkCron(o.name(['digestCron']), out.digestCron);
  if (out.queue?.redisUrl !== undefined && out.queue.redisUrl.trim() !== '') out.queue.redisUrl = checkRedisUrl(o.name(['queue', 'redisUrl']), out.queue.redisUrl);
  if (out.queue?.prefix !== undefined) out.queue.prefix = checkPrefix(o.name(['queue', 'prefix']), out.queue.prefix);
  const sinks = (out.sinks ?? []).map((sink, index): CheckedSink => {
    const place: SinkPlace = { file: o.file, at: (key) => o.name(['sinks', index, key]), howToSet: (key, value) => o.howToSet(index, key, value) };
    const events = eventPatterns(place.at('events'), sink.events);
    return { sink: sinkKind(sink.type).read({ ...sink, events }, place), name: sink.name, origin: o, index };
  });
  return { settings: out, sinks };
}

/** The keys `s` sets, without those it leaves unset: what it overrides in a merge. */
function given<T extends object>(s: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(s ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export interface LoadOptions {
  env?: Env;
  configFile?: string | null;
  /** Commands that never call Langfuse (status, replay) do not need keys. */
  requireKeys?: boolean;
  /** Told of a problem that is not an error (a config file with secrets that others can read). */
  onWarning?(message: string, fields: Record<string, unknown>): void;
}

export function loadConfig(opts: LoadOptions = {}): BridgeConfig {
  const env = opts.env ?? process.env;
  const configFile = opts.configFile ?? null;
  let fileValid: RawSettings = {};
  let fromFile: Origin | null = null;
  if (configFile) {
    const { json, data } = readConfigFile(configFile, env);
    fileValid = validate(data, (issue) => `--config ${configFile}: ${fileIssueMessage(issue, data)}`);
    if (opts.onWarning) warnIfExposed(configFile, json, opts.onWarning);
    fromFile = fileOrigin(configFile, data);
  }
  const envSettings = settingsFromEnv(env);
  const envValid = validate(envSettings.raw, (issue) => envIssueMessage(issue, envSettings.raw, envSettings.names));

  const publicKey = envValid.langfuse?.publicKey ?? fileValid.langfuse?.publicKey ?? '';
  const secretKey = envValid.langfuse?.secretKey ?? fileValid.langfuse?.secretKey ?? '';
  const rawProjects = fileValid.projects ?? [];
  if (opts.requireKeys !== false && rawProjects.length === 0) {
    if (!publicKey) throw new ConfigError('LANGFUSE_PUBLIC_KEY is required (a pk-lf-… key from your Langfuse project settings); set it or put langfuse.publicKey in the config file');
    if (!secretKey) throw new ConfigError('LANGFUSE_SECRET_KEY is required (an sk-lf-… key from your Langfuse project settings); set it or put langfuse.secretKey in the config file');
  }
  const file = fromFile ? check(fileValid, fromFile) : { settings: {}, sinks: [] };
  const fromEnvChecked = check(envValid, envOrigin(envSettings.names));
  const f: RawSettings = file.settings;
  const e = fromEnvChecked.settings;
  // The environment wins over the file, key by key (in the groups too).
  const m: RawSettings = { ...given(f), ...given(e) };
  const lf = { ...given(f.langfuse), ...given(e.langfuse) };
  const retry = { ...given(f.retry), ...given(e.retry) };
  const queue = { ...given(f.queue), ...given(e.queue) };

  const sinks = sinkConfigs([...file.sinks, ...fromEnvChecked.sinks], m.stdout ?? DEFAULTS.stdout);
  const pollIntervalSeconds = m.pollIntervalSeconds ?? DEFAULTS.pollIntervalSeconds;
  const config: BridgeConfig = {
    langfuse: {
      publicKey,
      secretKey,
      baseUrl: lf.baseUrl ?? DEFAULTS.langfuse.baseUrl,
      api: lf.api ?? DEFAULTS.langfuse.api,
      maxRequestsPerMinute: lf.maxRequestsPerMinute ?? DEFAULTS.langfuse.maxRequestsPerMinute,
      maxRequestsPerMinuteSet: lf.maxRequestsPerMinute !== undefined,
      timeoutSeconds: lf.timeoutSeconds ?? DEFAULTS.langfuse.timeoutSeconds,
    },
    database: m.database ?? DEFAULTS.database,
    pollIntervalSeconds,
    lookbackSeconds: m.lookbackSeconds ?? DEFAULTS.lookbackSeconds,
    retentionDays: m.retentionDays ?? DEFAULTS.retentionDays,
    // Checked already, under the name it was set by.
    startFrom: m.startFrom === undefined ? null : parseInstant('startFrom', m.startFrom),
    streams: m.streams ?? [...DEFAULTS.streams],
    includeIo: m.includeIo ?? DEFAULTS.includeIo,
    retry: { maxAttempts: retry.maxAttempts ?? DEFAULTS.retry.maxAttempts, baseSeconds: retry.baseSeconds ?? DEFAULTS.retry.baseSeconds },
    alertBurst: m.alertBurst ?? DEFAULTS.alertBurst,
    httpPort: m.httpPort ?? null,
    httpHost: m.httpHost ?? DEFAULTS.httpHost,
    httpToken: envSettings.httpToken,
    healthMaxAgeSeconds: m.healthMaxAgeSeconds ?? pollIntervalSeconds * DEFAULTS.healthMaxAgeIntervals,
    sinks,
    rules: compileRules(
      f.rules ?? null,
      sinks.map((s) => ({ name: s.name, type: s.type })),
    ),
    // With projects, the top-level streams are only their defaults: checkMonitorStreams checks each project's.
    monitors: compileMonitors(f.monitors, { sinks: sinks.map((s) => s.name), streams: rawProjects.length ? null : (m.streams ?? [...DEFAULTS.streams]) }),
    digestCron: m.digestCron || null,
    configFile,
    queue: {
      redisUrl: queue.redisUrl?.trim() || null,
      connectWaitSeconds: queue.connectWaitSeconds ?? DEFAULTS.queue.connectWaitSeconds,
      prefix: queue.prefix ?? DEFAULTS.queue.prefix,
      lockSeconds: queue.lockSeconds ?? DEFAULTS.queue.lockSeconds,
    },
    projects: [],
  };
  if (fromFile) config.projects = projectConfigsFromFile(rawProjects, fromFile, config, opts.requireKeys !== false);
  checkMonitorStreams(config.monitors, config.projects);
  const eventsOf = new Map(sinks.map((s) => [s.name, s.events]));
  checkMonitorSinks(config.monitors, (sink, types) => {
    const events = eventsOf.get(sink) ?? [];
    const missing = types.filter((t) => !matchesEventPatterns(events, t));
    return missing.length ? `whose events (${events.join(', ')}) leave out ${missing.join(', ')}; add "monitor.*" to that sink's events or name another sink` : null;
  });
  return config;
}

function uniqueName(sinks: SinkConfig[], base: string): string {
  let name = base;
  for (let i = 2; sinks.some((s) => s.name === name); i++) name = `${base}-${i}`;
  return name;
}

/**
 * The file's sinks, named by their place in the file, then the environment's, named apart from
 * them; and stdout when asked for or when no other sink takes events.
 */
function sinkConfigs(checked: CheckedSink[], wantStdout: boolean): SinkConfig[] {
  const sinks: SinkConfig[] = [];
  for (const { sink, name, origin, index } of checked) {
    const { type, ...settings } = sink;
    const named = origin.file === null ? uniqueName(sinks, type) : (name ?? `${type}${index ? `-${index + 1}` : ''}`);
    sinks.push({ type, name: named, ...settings } as SinkConfig);
  }
  const hasEventSink = sinks.some((s) => !isAlertKind(s.type));
  if ((wantStdout || !hasEventSink) && !sinks.some((s) => s.type === 'stdout')) {
    sinks.push({ type: 'stdout', name: uniqueName(sinks, 'stdout'), events: ['*'], pretty: stdoutSink.defaults.pretty });
  }
  return sinks;
}

/** The file's `projects`, each with the top-level settings as defaults. */
function projectConfigsFromFile(list: RawProject[], o: Origin, base: BridgeConfig, requireKeys: boolean): ProjectConfig[] {
  const seen = new Map<string, number>();
  return list.map((p, i) => {
    const at = (key: string): string => o.name(['projects', i, key]);
    const name = p.name.trim();
    if (!name) fail(at('name'), 'a non-empty string', p.name);
    const prev = seen.get(name);
    if (prev !== undefined) throw new ConfigError(`${at('name')} repeats the name of projects[${prev}]; give each project its own name`);
    seen.set(name, i);
    const publicKey = p.publicKey ?? '';
    const secretKey = p.secretKey ?? '';
    if (requireKeys) {
      if (!publicKey) throw new ConfigError(`${at('publicKey')} is required (a pk-lf-… key from that Langfuse project's settings)`);
      if (!secretKey) throw new ConfigError(`${at('secretKey')} is required (an sk-lf-… key from that Langfuse project's settings)`);
    }
    return {
      name,
      publicKey,
      secretKey,
      baseUrl: p.baseUrl === undefined ? base.langfuse.baseUrl : parseUrl(at('baseUrl'), p.baseUrl),
      api: p.api ?? base.langfuse.api,
      maxRequestsPerMinute: p.maxRequestsPerMinute ?? base.langfuse.maxRequestsPerMinute,
      maxRequestsPerMinuteSet: p.maxRequestsPerMinute === undefined ? base.langfuse.maxRequestsPerMinuteSet : true,
      streams: p.streams === undefined ? base.streams : uniqueStreams(at('streams'), p.streams, p.streams),
      lookbackSeconds: p.lookbackSeconds ?? base.lookbackSeconds,
      startFrom: p.startFrom === undefined ? base.startFrom : parseInstant(at('startFrom'), p.startFrom),
    };
  });
}

/** One full config per project (the base with that project's Langfuse settings), or `[config]` without projects. */
export function projectConfigs(config: BridgeConfig): BridgeConfig[] {
  if (config.projects.length === 0) return [config];
  return config.projects.map((p) => ({
    ...config,
    langfuse: { ...config.langfuse, publicKey: p.publicKey, secretKey: p.secretKey, baseUrl: p.baseUrl, api: p.api, maxRequestsPerMinute: p.maxRequestsPerMinute, maxRequestsPerMinuteSet: p.maxRequestsPerMinuteSet },
    streams: p.streams,
    lookbackSeconds: p.lookbackSeconds,
    startFrom: p.startFrom,
    projectName: p.name,
  }));
}
