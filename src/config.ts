/**
 * One place for every setting: environment variables and an optional JSON file, validated once,
 * with defaults here and nowhere else. A bad value becomes a ConfigError whose one-line message
 * names the setting, what it must be, and what it got.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import cron from 'node-cron';
import { z } from 'zod';
import { ConfigError } from './errors.js';
import { isEventPattern } from './events/patterns.js';
import { standardSecretProblem } from './sinks/signing.js';

export const STREAMS = ['traces', 'generations', 'scores', 'prompts'] as const;
export type Stream = (typeof STREAMS)[number];
export type ApiMode = 'auto' | 'v4' | 'legacy';
export const SIGNATURE_SCHEMES = ['standard', 'langfuse', 'hex', 'none'] as const;
/** `none`: unsigned requests, only when asked for by name. */
export type SignatureScheme = (typeof SIGNATURE_SCHEMES)[number];

export interface WebhookSinkConfig {
  type: 'webhook';
  name: string;
  url: string;
  /** Null only with signature `none`. */
  secret: string | null;
  signature: SignatureScheme;
  events: string[];
  timeoutSeconds: number;
  concurrency: number;
}
export interface StdoutSinkConfig {
  type: 'stdout';
  name: string;
  events: string[];
  pretty: boolean;
}
export interface SlackSinkConfig {
  type: 'slack';
  name: string;
  url: string;
  events: string[];
  timeoutSeconds: number;
}
export interface PagerDutySinkConfig {
  type: 'pagerduty';
  name: string;
  routingKey: string;
  eventsUrl: string;
  events: string[];
  timeoutSeconds: number;
}
export interface HandlerSinkConfig {
  type: 'handler';
  name: string;
  /** A path (or package name) of the module; a relative one resolves against `baseDir`. */
  module: string;
  /** The config file's folder for a sink from the file, the working directory for BRIDGE_HANDLERS. */
  baseDir?: string;
  /** Where `module` was set, for messages: `BRIDGE_HANDLERS`, or the sink's key in the config file. */
  setting?: string;
  events: string[];
  timeoutSeconds: number;
  concurrency: number;
}
export type SinkConfig =
  | WebhookSinkConfig
  | StdoutSinkConfig
  | SlackSinkConfig
  | PagerDutySinkConfig
  | HandlerSinkConfig;

/** One Langfuse project of a bridge that polls several (`projects` in the config file), defaults filled in. */
export interface ProjectConfig {
  name: string;
  publicKey: string;
  secretKey: string;
  baseUrl: string;
  api: ApiMode;
  maxRequestsPerMinute: number;
  /** Whether maxRequestsPerMinute was set (not the default): processes sharing a database share one. */
  maxRequestsPerMinuteSet?: boolean;
  streams: Stream[];
  lookbackSeconds: number;
  startFrom: Date | null;
}

export interface BridgeConfig {
  langfuse: {
    publicKey: string;
    secretKey: string;
    baseUrl: string;
    api: ApiMode;
    maxRequestsPerMinute: number;
    /** Whether maxRequestsPerMinute was set (not the default): processes sharing a database share one. */
    maxRequestsPerMinuteSet?: boolean;
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
  /** Rules for alert sinks; null means the contract's defaults. */
  rules: unknown[] | null;
  configFile: string | null;
  /** Optional Redis delivery backend: the outbox is relayed to BullMQ queues worked by `worker` processes. */
  queue: { redisUrl: string | null; connectWaitSeconds: number; prefix: string; lockSeconds: number };
  /** Several Langfuse projects in one bridge (config file only); empty: the one project of `langfuse`. */
  projects: ProjectConfig[];
  /** Set by `projectConfigs` on each project's config: the project's configured name. */
  projectName?: string;
}

type Env = Record<string, string | undefined>;

// ---------------------------------------------------------------------------------------------
// Small parsers that produce the one-line messages.

/** The console's token: from the environment only (a secret), long enough not to be guessed. */
function httpToken(raw: string | undefined): string | null {
  if (raw === undefined || raw === '') return null;
  if (raw.length < 16 || /\s/.test(raw)) fail('BRIDGE_HTTP_TOKEN', 'at least 16 characters without spaces (e.g. the output of `openssl rand -hex 24`)', `${raw.length} characters`);
  return raw;
}

function fail(setting: string, must: string, got: unknown): never {
  const shown = typeof got === 'string' ? JSON.stringify(got) : JSON.stringify(got ?? null);
  throw new ConfigError(`${setting} must be ${must}, got ${shown}`);
}

function wholeNumber(setting: string, raw: unknown, min: number, max = Number.MAX_SAFE_INTEGER, unit = ''): number {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `from ${min} up` : `from ${min} to ${max}`;
    fail(setting, `a whole number${unit ? ` of ${unit}` : ''} ${range}`, raw);
  }
  return n;
}

function positiveNumber(setting: string, raw: unknown, unit: string): number {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  if (!Number.isFinite(n) || n <= 0) fail(setting, `a positive number of ${unit} (fractions allowed)`, raw);
  return n;
}

function bool(setting: string, raw: unknown): boolean {
  if (typeof raw === 'boolean') return raw;
  const s = String(raw).trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
  fail(setting, 'true or false', raw);
}

export function parseUrl(setting: string, raw: unknown): string {
  if (typeof raw !== 'string' || raw.trim() === '') fail(setting, 'an http(s) URL', raw);
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    fail(setting, 'an http(s) URL such as https://cloud.langfuse.com', raw);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') fail(setting, 'an http(s) URL', raw);
  return u.toString().replace(/\/+$/, '');
}

/** Accepts full ISO 8601 timestamps with a zone (or a plain date, taken as UTC midnight). */
export function parseInstant(setting: string, raw: unknown): Date {
  if (typeof raw !== 'string') fail(setting, 'an ISO 8601 time such as 2026-11-01T00:00:00Z', raw);
  const s = raw.trim();
  const ok = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2}))?$/.test(s);
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(s) ? `${s}T00:00:00Z` : s);
  if (!ok || Number.isNaN(d.getTime())) fail(setting, 'an ISO 8601 time with a zone, such as 2026-11-01T00:00:00Z', raw);
  return d;
}

function digestCron(raw: unknown): string | null {
  if (raw === undefined || raw === null || raw === '') return null;
  if (typeof raw !== 'string' || !cron.validate(raw)) fail('BRIDGE_DIGEST_CRON', 'a cron expression such as "0 9 * * *" (09:00 UTC every day)', raw);
  return raw;
}

function streams(setting: string, raw: unknown): Stream[] {
  const list = Array.isArray(raw) ? raw.map(String) : String(raw).split(',');
  const out: Stream[] = [];
  for (const item of list.map((s) => s.trim()).filter(Boolean)) {
    if (!(STREAMS as readonly string[]).includes(item)) fail(setting, `a comma list of ${STREAMS.join(', ')}`, item);
    if (!out.includes(item as Stream)) out.push(item as Stream);
  }
  if (out.length === 0) fail(setting, `a comma list of ${STREAMS.join(', ')}`, raw);
  return out;
}

export function eventPatterns(setting: string, raw: unknown): string[] {
  if (raw === undefined || raw === null) return ['*'];
  const list = Array.isArray(raw) ? raw.map(String) : String(raw).split(',');
  const out = list.map((s) => s.trim()).filter(Boolean);
  for (const p of out) if (!isEventPattern(p)) fail(setting, 'a comma list of event types or globs like trace.*,score.created', p);
  return out.length ? out : ['*'];
}

/**
 * A webhook sink signs every request unless told `none` by name: no secret is a setting error, and so
 * is a secret next to `none` (which of the two was meant?). `secretSetting` / `signatureSetting` name
 * the settings as the user wrote them; `how` says how to set a scheme in that place.
 */
function checkWebhookSecret(
  secretSetting: string,
  signatureSetting: string,
  how: (scheme: string) => string,
  scheme: SignatureScheme,
  secret: string | null,
): void {
  if (scheme === 'none') {
    if (secret) throw new ConfigError(`${secretSetting} is set but ${signatureSetting} is none (unsigned requests); remove the secret, or set ${how('standard')} (or langfuse, hex) to sign with it`);
    return;
  }
  if (!secret) {
    const what = scheme === 'standard' ? 'a whsec_ secret shared with your receiver (make one with: echo whsec_$(openssl rand -base64 32))' : `the secret your receiver verifies the ${scheme} signature with`;
    throw new ConfigError(`${secretSetting} is required: the webhook sink signs every request (${scheme} scheme); set it to ${what}, or set ${how('none')} to send unsigned requests on purpose`);
  }
  if (scheme !== 'standard') return;
  const problem = standardSecretProblem(secret);
  if (problem) {
    throw new ConfigError(
      `${secretSetting} ${problem}; the standard signature scheme needs a whsec_ secret with base64 after it, as your receiver's Standard Webhooks library has it ` +
        `(make one with: echo whsec_$(openssl rand -base64 32)), or set ${how('langfuse')} or hex to sign with any string`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// The config file: JSON, `${VAR}` in strings read from the environment.

function interpolate(value: unknown, env: Env, path: string): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const v = env[name];
      if (v === undefined) throw new ConfigError(`${path} refers to \${${name}}, which is not set in the environment; export ${name} or edit the file`);
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, `${path}[${i}]`));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env, `${path}.${k}`)]));
  }
  return value;
}

// The file's schema. It is the one the file is validated with and the source of the published JSON
// Schema (`schema/config.schema.json`, see src/config-schema.ts): descriptions name the environment
// variable each key stands for.

const eventsField = z
  .union([z.string(), z.array(z.string())])
  .describe('event types this sink gets, globs allowed: ["trace.*", "score.created"] or "trace.*,score.created"; default all');
const sinkName = z.string().min(1).describe('the name `--sink`, `status` and rules use; default the type (webhook, webhook-2, ...)');
const sinkTimeout = (dflt: number) => z.number().positive().describe(`time allowed for one delivery attempt, seconds; default ${dflt}`);
const sinkConcurrency = (dflt: number) => z.number().int().min(1).max(256).describe(`deliveries in flight at once to this sink; default ${dflt}`);

const webhookSinkSchema = z
  .object({
    type: z.literal('webhook'),
    name: sinkName.optional(),
    url: z.string().describe('the receiver: an http(s) URL (BRIDGE_WEBHOOK_URL)'),
    secret: z
      .string()
      .describe('signing secret (BRIDGE_WEBHOOK_SECRET): a whsec_ base64 secret for the standard scheme, any string for langfuse or hex; required unless signature is none')
      .optional(),
    signature: z
      .enum(SIGNATURE_SCHEMES)
      .describe('standard (Standard Webhooks and Langfuse headers), langfuse (t=,v1=), hex (HMAC of the body) or none (unsigned, on purpose) (BRIDGE_WEBHOOK_SIGNATURE); default standard')
      .optional(),
    events: eventsField.optional(),
    timeoutSeconds: sinkTimeout(10).optional(),
    concurrency: sinkConcurrency(32).optional(),
  })
  .strict()
  .describe('a signed HTTP webhook');
const stdoutSinkSchema = z
  .object({
    type: z.literal('stdout'),
    name: sinkName.optional(),
    events: eventsField.optional(),
    pretty: z.boolean().describe('one readable line per event instead of JSON lines; default false').optional(),
  })
  .strict()
  .describe('events as JSON lines on standard output (BRIDGE_STDOUT)');
const slackSinkSchema = z
  .object({
    type: z.literal('slack'),
    name: sinkName.optional(),
    url: z.string().describe('the Slack incoming-webhook URL (SLACK_WEBHOOK_URL)'),
    events: eventsField.optional(),
    timeoutSeconds: sinkTimeout(10).optional(),
  })
  .strict()
  .describe('alerts to a Slack incoming webhook');
const pagerDutySinkSchema = z
  .object({
    type: z.literal('pagerduty'),
    name: sinkName.optional(),
    routingKey: z.string().describe("the integration's Events API v2 routing key (PAGERDUTY_ROUTING_KEY)"),
    eventsUrl: z.string().describe('the Events API v2 endpoint (PAGERDUTY_EVENTS_URL); default https://events.pagerduty.com/v2/enqueue').optional(),
    events: eventsField.optional(),
    timeoutSeconds: sinkTimeout(10).optional(),
  })
  .strict()
  .describe('alerts to PagerDuty (Events API v2)');
const handlerSinkSchema = z
  .object({
    type: z.literal('handler'),
    name: sinkName.optional(),
    module: z.string().describe('path of an .mjs, .js or .cjs handler module, relative to this file (BRIDGE_HANDLERS, relative to the working directory)'),
    events: eventsField.optional(),
    timeoutSeconds: sinkTimeout(30).optional(),
    concurrency: sinkConcurrency(8).optional(),
  })
  .strict()
  .describe('your own handler module, called in process');

const sinkFileSchema = z.discriminatedUnion('type', [webhookSinkSchema, stdoutSinkSchema, slackSinkSchema, pagerDutySinkSchema, handlerSinkSchema]);
type SinkFileConfig = z.infer<typeof sinkFileSchema>;

const apiField = z.enum(['auto', 'v4', 'legacy']).describe('the Langfuse API generation: auto (probe), v4 or legacy (BRIDGE_LANGFUSE_API); default auto');
const streamsField = z.array(z.enum(STREAMS)).describe('what to poll (BRIDGE_STREAMS); default ["traces", "generations", "scores"]');
const maxRequestsField = z.number().int().min(1).max(100_000).describe('ceiling on calls to Langfuse in any 60 s, retries included (BRIDGE_MAX_REQUESTS_PER_MINUTE); default 30');
const lookbackField = z.number().int().min(0).max(7 * 86_400).describe('how far behind its cursor each poll reads again, for late data, seconds (BRIDGE_LOOKBACK_SECONDS); default 1200');
const startFromField = z.string().describe('where the very first poll starts, ISO 8601 (BRIDGE_START_FROM); default now minus the lookback');

const projectFileSchema = z
  .object({
    name: z.string().describe('a unique name for `backfill --project`, `status` and logs'),
    publicKey: z.string().describe('this project’s pk-lf-… key').optional(),
    secretKey: z.string().describe('this project’s sk-lf-… key').optional(),
    baseUrl: z.string().describe('its Langfuse host; default the top-level one').optional(),
    streams: streamsField.optional(),
    lookbackSeconds: lookbackField.optional(),
    maxRequestsPerMinute: maxRequestsField.optional(),
    api: apiField.optional(),
    startFrom: startFromField.optional(),
  })
  .strict()
  .describe('one Langfuse project of several; unset keys come from the top level');

const fileSchema = z
  .object({
    $schema: z.string().describe('the JSON Schema of this file, for editors').optional(),
    langfuse: z
      .object({
        publicKey: z.string().describe('pk-lf-… API key (LANGFUSE_PUBLIC_KEY)').optional(),
        secretKey: z.string().describe('sk-lf-… API key (LANGFUSE_SECRET_KEY)').optional(),
        baseUrl: z.string().describe('the Langfuse host (LANGFUSE_BASE_URL); default https://cloud.langfuse.com').optional(),
        api: apiField.optional(),
        maxRequestsPerMinute: maxRequestsField.optional(),
        timeoutSeconds: z.number().positive().describe('time allowed for one Langfuse call, seconds (LANGFUSE_TIMEOUT_SECONDS); default 30').optional(),
      })
      .strict()
      .describe('the Langfuse project to poll')
      .optional(),
    database: z.string().describe('SQLite file: cursors, seen versions, outbox, dead letters (BRIDGE_DATABASE); default data/bridge.db').optional(),
    pollIntervalSeconds: z.number().int().min(1).max(86_400).describe('time between polls (BRIDGE_POLL_INTERVAL_SECONDS); default 30').optional(),
    lookbackSeconds: lookbackField.optional(),
    retentionDays: z.number().int().min(1).max(3650).describe('seen versions and delivered rows older than this are pruned (BRIDGE_RETENTION_DAYS); default 30').optional(),
    startFrom: startFromField.optional(),
    streams: streamsField.optional(),
    includeIo: z.boolean().describe('put observation input/output and prompt text in events (BRIDGE_INCLUDE_IO); default false').optional(),
    retry: z
      .object({
        maxAttempts: z.number().int().min(1).max(100).describe('delivery attempts before dead-letter (BRIDGE_RETRY_MAX_ATTEMPTS); default 10').optional(),
        baseSeconds: z.number().positive().describe('first backoff, fractions allowed (BRIDGE_RETRY_BASE_SECONDS); default 5').optional(),
      })
      .strict()
      .describe('delivery retries, exponential with jitter')
      .optional(),
    alertBurst: z.number().int().min(1).describe('more alerts than this from one rule in a minute fold into one summary (BRIDGE_ALERT_BURST); default 20').optional(),
    httpPort: z.number().int().min(0).max(65535).describe('ops server port: /healthz, /metrics (BRIDGE_HTTP_PORT); default off').optional(),
    httpHost: z.string().min(1).describe('address the ops server listens on (BRIDGE_HTTP_HOST); default 127.0.0.1').optional(),
    healthMaxAgeSeconds: z.number().int().min(1).describe('/healthz answers 503 when the last successful poll is older (BRIDGE_HEALTH_MAX_AGE_SECONDS); default 3 × pollIntervalSeconds').optional(),
    stdout: z.boolean().describe('also print events to stdout next to other sinks (BRIDGE_STDOUT); default false').optional(),
    sinks: z.array(sinkFileSchema).describe('where events and alerts go; each entry has a "type"').optional(),
    rules: z.array(z.unknown()).describe('which events alert, and where; without rules the defaults apply').optional(),
    projects: z.array(projectFileSchema).describe('several Langfuse projects in one bridge').optional(),
    digestCron: z.string().describe('post the last day’s usage, errors and low scores to Slack on this cron schedule, UTC (BRIDGE_DIGEST_CRON); default off').optional(),
    queue: z
      .object({
        redisUrl: z.string().describe('redis:// or rediss:// URL; unset: in-process delivery (BRIDGE_REDIS_URL)').optional(),
        connectWaitSeconds: z.number().int().min(0).max(3600).describe('how long commands wait for Redis at start (BRIDGE_REDIS_WAIT_SECONDS); default 30').optional(),
        prefix: z.string().min(1).describe('Redis key prefix (BRIDGE_QUEUE_PREFIX); default langfuse-bridge').optional(),
        lockSeconds: z.number().int().min(1).max(3600).describe('a job whose worker died is taken again after about this long (BRIDGE_WORKER_LOCK_SECONDS); default 30').optional(),
      })
      .strict()
      .describe('Redis queues and workers')
      .optional(),
  })
  .strict()
  .describe('langfuse-bridge config file (--config); environment variables win over it, and ${VAR} in any string is read from the environment');
type FileConfig = z.infer<typeof fileSchema>;

/** The file's schema as validated, for the JSON Schema (see src/config-schema.ts). */
export const configFileSchema = fileSchema;

type AnySchema = z.core.$ZodType;

/** The schema found at `path` in `root`, following the data through optionals, arrays and a sink's `type`. */
function schemaAt(root: AnySchema, path: readonly PropertyKey[], data: unknown): AnySchema | null {
  let schema: AnySchema | null = root;
  let value: unknown = data;
  const unwrap = (s: AnySchema, v: unknown): AnySchema | null => {
    let cur: AnySchema = s;
    for (;;) {
      const def = cur._zod.def as unknown as { type: string; innerType?: AnySchema; options?: AnySchema[]; discriminator?: string };
      if ((def.type === 'optional' || def.type === 'nullable' || def.type === 'default') && def.innerType) cur = def.innerType;
      else if (def.type === 'union' && def.options) {
        const d = def.discriminator;
        const wanted = d && v && typeof v === 'object' ? (v as Record<string, unknown>)[d] : undefined;
        const match = def.options.find((o) => (o._zod as { propValues?: Record<string, Set<unknown>> }).propValues?.[d ?? '']?.has(wanted));
        if (!match) return null;
        cur = match;
      } else return cur;
    }
  };
  for (const p of path) {
    if (!schema) return null;
    schema = unwrap(schema, value);
    if (!schema) return null;
    const def = schema._zod.def as unknown as { type: string; shape?: Record<string, AnySchema>; element?: AnySchema };
    if (def.type === 'object' && typeof p === 'string') schema = def.shape?.[p] ?? null;
    else if (def.type === 'array' && typeof p === 'number') schema = def.element ?? null;
    else return null;
    value = value && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[p] : undefined;
  }
  return schema ? unwrap(schema, value) : null;
}

function validKeys(schema: AnySchema | null): string[] {
  const def = schema?._zod.def as { type?: string; shape?: Record<string, unknown> } | undefined;
  return def?.type === 'object' && def.shape ? Object.keys(def.shape) : [];
}

/** The closest of `candidates` to a mistyped `key`, when one is close enough to be what was meant. */
function closest(key: string, candidates: readonly string[]): string | null {
  const distance = (a: string, b: string): number => {
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      let prev = row[0]!;
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const cur = row[j]!;
        row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
        prev = cur;
      }
    }
    return row[b.length]!;
  };
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(key, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best !== null && bestD <= Math.max(1, Math.floor(key.length / 3)) ? best : null;
}

/** `projects[1] ("b").streams`: the path of an issue, entries of named lists shown with their name. */
function issueWhere(path: readonly PropertyKey[], data: unknown): string {
  let out = '';
  let value: unknown = data;
  for (let i = 0; i < path.length; i++) {
    const p = path[i]!;
    const next = value && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[p] : undefined;
    if (typeof p === 'number') {
      const listName = String(path[i - 1] ?? '');
      const name = next && typeof next === 'object' ? (next as Record<string, unknown>).name : undefined;
      out = (listName === 'sinks' || listName === 'projects') && out.endsWith(listName) ? `${out.slice(0, -listName.length)}${entryLabel(listName, p, name)}` : `${out}[${p}]`;
    } else out += `${out ? '.' : ''}${String(p)}`;
    value = next;
  }
  return out;
}

/** One line for the first thing wrong with the file, naming where it is, what is allowed and what it got. */
function fileIssueMessage(issue: z.core.$ZodIssue, data: unknown): string {
  const where = issueWhere(issue.path, data) || 'the top level';
  const got = issue.path.reduce<unknown>((v, p) => (v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined), data);
  if (issue.code === 'unrecognized_keys') {
    const keys = validKeys(schemaAt(fileSchema, issue.path, data));
    const meant = issue.keys.length === 1 ? closest(issue.keys[0]!, keys) : null;
    return `${where} has unknown key(s) ${issue.keys.join(', ')}${meant ? ` (did you mean ${meant}?)` : ''}; valid keys here: ${keys.join(', ')}`;
  }
  if (issue.code === 'invalid_union' && 'discriminator' in issue && 'options' in issue) {
    const options = (issue as { options: unknown[] }).options.map(String).join(', ');
    return got === undefined ? `${where} is required: one of ${options}` : `${where} must be one of ${options}, got ${JSON.stringify(got)}`;
  }
  const description = (schemaAt(fileSchema, issue.path, data) as { description?: string } | null)?.description;
  if (got === undefined && issue.code === 'invalid_type') return `${where} is required${description ? `: ${description}` : ''}`;
  if (issue.code === 'invalid_value') return `${where} must be one of ${issue.values.map((v) => String(v)).join(', ')}, got ${JSON.stringify(got)}`;
  return `${where} is invalid: ${issue.message}, got ${JSON.stringify(got)}`;
}

/** Where a config file may hold a secret, as written (before `${VAR}` is read). */
function literalSecrets(json: unknown): string[] {
  const literal = (v: unknown): v is string => typeof v === 'string' && v !== '' && !v.includes('${');
  const o = (json ?? {}) as Record<string, unknown>;
  const out: string[] = [];
  const lf = o.langfuse as Record<string, unknown> | undefined;
  if (literal(lf?.secretKey)) out.push('langfuse.secretKey');
  (Array.isArray(o.projects) ? o.projects : []).forEach((p: Record<string, unknown> | null, i) => {
    if (literal(p?.secretKey)) out.push(`projects[${i}].secretKey`);
  });
  (Array.isArray(o.sinks) ? o.sinks : []).forEach((s: Record<string, unknown> | null, i) => {
    if (literal(s?.secret)) out.push(`sinks[${i}].secret`);
    if (literal(s?.routingKey)) out.push(`sinks[${i}].routingKey`);
    // A Slack incoming-webhook URL is its own credential.
    if (s?.type === 'slack' && literal(s.url)) out.push(`sinks[${i}].url`);
  });
  const redisUrl = (o.queue as Record<string, unknown> | undefined)?.redisUrl;
  if (literal(redisUrl) && /^[a-z]+:\/\/[^/@]*:[^/@]+@/i.test(redisUrl)) out.push('queue.redisUrl');
  return out;
}

/**
 * A config file that holds a secret as written, and that other users may read or write, gets one
 * warning naming it and its mode.
 */
function warnIfExposed(file: string, json: unknown, onWarning: (message: string, fields: Record<string, unknown>) => void): void {
  if (process.platform === 'win32') return;
  const secrets = literalSecrets(json);
  if (!secrets.length) return;
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    return;
  }
  if ((mode & 0o066) === 0) return;
  const can = [mode & 0o044 ? 'read' : '', mode & 0o022 ? 'write' : ''].filter(Boolean).join(' and ');
  const shown = `0${mode.toString(8)}`;
  onWarning(`config file ${file} holds secrets as plain text and other users can ${can} it (mode ${shown}): chmod 600 it, or write them as \${VAR} and set VAR in the environment`, { file, mode: shown, secrets });
}

export function readConfigFile(file: string, env: Env, onWarning?: (message: string, fields: Record<string, unknown>) => void): FileConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`--config ${file} cannot be read (${code ?? 'error'}); pass the path of an existing JSON file`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`--config ${file} is not valid JSON (${(err as Error).message}); fix the file`);
  }
  const interpolated = interpolate(json, env, file);
  const parsed = fileSchema.safeParse(interpolated);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`--config ${file}: ${issue ? fileIssueMessage(issue, interpolated) : 'the top level is invalid'}`);
  }
  if (onWarning) warnIfExposed(file, json, onWarning);
  return parsed.data;
}

// ---------------------------------------------------------------------------------------------

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
  const file: FileConfig = opts.configFile ? readConfigFile(opts.configFile, env, opts.onWarning) : {};
  const fl = file.langfuse ?? {};
  const pick = (envName: string, fileValue: unknown): unknown => (env[envName] !== undefined && env[envName] !== '' ? env[envName] : fileValue);

  const publicKey = String(pick('LANGFUSE_PUBLIC_KEY', fl.publicKey) ?? '');
  const secretKey = String(pick('LANGFUSE_SECRET_KEY', fl.secretKey) ?? '');
  const hasProjects = (file.projects ?? []).length > 0;
  if (opts.requireKeys !== false && !hasProjects) {
    if (!publicKey) throw new ConfigError('LANGFUSE_PUBLIC_KEY is required (a pk-lf-… key from your Langfuse project settings); set it or put langfuse.publicKey in the config file');
    if (!secretKey) throw new ConfigError('LANGFUSE_SECRET_KEY is required (an sk-lf-… key from your Langfuse project settings); set it or put langfuse.secretKey in the config file');
  }
  const baseUrlEnv = env.LANGFUSE_BASE_URL ? 'LANGFUSE_BASE_URL' : env.LANGFUSE_BASEURL ? 'LANGFUSE_BASEURL' : env.LANGFUSE_HOST ? 'LANGFUSE_HOST' : null;
  const baseUrl = parseUrl(baseUrlEnv ?? 'langfuse.baseUrl', baseUrlEnv ? env[baseUrlEnv] : (fl.baseUrl ?? 'https://cloud.langfuse.com'));

  const apiRaw = pick('BRIDGE_LANGFUSE_API', fl.api) ?? 'auto';
  if (!['auto', 'v4', 'legacy'].includes(String(apiRaw))) fail('BRIDGE_LANGFUSE_API', 'one of auto, v4, legacy', apiRaw);

  const pollIntervalSeconds = wholeNumber('BRIDGE_POLL_INTERVAL_SECONDS', pick('BRIDGE_POLL_INTERVAL_SECONDS', file.pollIntervalSeconds) ?? 30, 1, 86_400, 'seconds');
  const lookbackSeconds = wholeNumber('BRIDGE_LOOKBACK_SECONDS', pick('BRIDGE_LOOKBACK_SECONDS', file.lookbackSeconds) ?? 1200, 0, 7 * 86_400, 'seconds');
  const startRaw = pick('BRIDGE_START_FROM', file.startFrom);

  const retryAttempts = wholeNumber('BRIDGE_RETRY_MAX_ATTEMPTS', pick('BRIDGE_RETRY_MAX_ATTEMPTS', file.retry?.maxAttempts) ?? 10, 1, 100);
  const retryBase = positiveNumber('BRIDGE_RETRY_BASE_SECONDS', pick('BRIDGE_RETRY_BASE_SECONDS', file.retry?.baseSeconds) ?? 5, 'seconds');
  const portRaw = pick('BRIDGE_HTTP_PORT', file.httpPort);
  const httpPort = portRaw === undefined ? null : wholeNumber('BRIDGE_HTTP_PORT', portRaw, 0, 65_535);

  const sinks: SinkConfig[] = [];
  for (const [i, s] of (file.sinks ?? []).entries()) sinks.push(sinkFromFile(s, i, opts.configFile ?? ''));

  // Sinks from the environment, next to the file's.
  const webhookUrl = env.BRIDGE_WEBHOOK_URL;
  if (webhookUrl) {
    const signature = String(env.BRIDGE_WEBHOOK_SIGNATURE || 'standard');
    if (!(SIGNATURE_SCHEMES as readonly string[]).includes(signature)) fail('BRIDGE_WEBHOOK_SIGNATURE', `one of ${SIGNATURE_SCHEMES.join(', ')}`, signature);
    const secret = env.BRIDGE_WEBHOOK_SECRET || null;
    checkWebhookSecret('BRIDGE_WEBHOOK_SECRET', 'BRIDGE_WEBHOOK_SIGNATURE', (scheme) => `BRIDGE_WEBHOOK_SIGNATURE=${scheme}`, signature as SignatureScheme, secret);
    sinks.push({
      type: 'webhook',
      name: uniqueName(sinks, 'webhook'),
      url: parseUrl('BRIDGE_WEBHOOK_URL', webhookUrl),
      secret,
      signature: signature as SignatureScheme,
      events: eventPatterns('BRIDGE_WEBHOOK_EVENTS', env.BRIDGE_WEBHOOK_EVENTS),
      timeoutSeconds: positiveNumber('BRIDGE_WEBHOOK_TIMEOUT_SECONDS', env.BRIDGE_WEBHOOK_TIMEOUT_SECONDS ?? 10, 'seconds'),
      concurrency: wholeNumber('BRIDGE_WEBHOOK_CONCURRENCY', env.BRIDGE_WEBHOOK_CONCURRENCY ?? 32, 1, 256),
    });
  }
  if (env.SLACK_WEBHOOK_URL) {
    sinks.push({ type: 'slack', name: uniqueName(sinks, 'slack'), url: parseUrl('SLACK_WEBHOOK_URL', env.SLACK_WEBHOOK_URL), events: ['*'], timeoutSeconds: 10 });
  }
  if (env.PAGERDUTY_ROUTING_KEY) {
    sinks.push({
      type: 'pagerduty',
      name: uniqueName(sinks, 'pagerduty'),
      routingKey: env.PAGERDUTY_ROUTING_KEY,
      eventsUrl: parseUrl('PAGERDUTY_EVENTS_URL', env.PAGERDUTY_EVENTS_URL ?? 'https://events.pagerduty.com/v2/enqueue'),
      events: ['*'],
      timeoutSeconds: 10,
    });
  }
  if (env.BRIDGE_HANDLERS) {
    const baseDir = process.cwd();
    sinks.push({ type: 'handler', name: uniqueName(sinks, 'handler'), module: env.BRIDGE_HANDLERS, baseDir, setting: 'BRIDGE_HANDLERS', events: ['*'], timeoutSeconds: 30, concurrency: 8 });
  }
  const wantStdout = env.BRIDGE_STDOUT !== undefined ? bool('BRIDGE_STDOUT', env.BRIDGE_STDOUT) : (file.stdout ?? false);
  const hasEventSink = sinks.some((s) => s.type === 'webhook' || s.type === 'handler' || s.type === 'stdout');
  if ((wantStdout || !hasEventSink) && !sinks.some((s) => s.type === 'stdout')) {
    sinks.push({ type: 'stdout', name: uniqueName(sinks, 'stdout'), events: ['*'], pretty: false });
  }

  const config: BridgeConfig = {
    langfuse: {
      publicKey,
      secretKey,
      baseUrl,
      api: apiRaw as ApiMode,
      maxRequestsPerMinute: wholeNumber('BRIDGE_MAX_REQUESTS_PER_MINUTE', pick('BRIDGE_MAX_REQUESTS_PER_MINUTE', fl.maxRequestsPerMinute) ?? 30, 1, 100_000),
      maxRequestsPerMinuteSet: pick('BRIDGE_MAX_REQUESTS_PER_MINUTE', fl.maxRequestsPerMinute) !== undefined,
      timeoutSeconds: positiveNumber('LANGFUSE_TIMEOUT_SECONDS', pick('LANGFUSE_TIMEOUT_SECONDS', fl.timeoutSeconds) ?? 30, 'seconds'),
    },
    database: String(pick('BRIDGE_DATABASE', file.database) ?? 'data/bridge.db'),
    pollIntervalSeconds,
    lookbackSeconds,
    retentionDays: wholeNumber('BRIDGE_RETENTION_DAYS', pick('BRIDGE_RETENTION_DAYS', file.retentionDays) ?? 30, 1, 3650, 'days'),
    startFrom: startRaw === undefined ? null : parseInstant('BRIDGE_START_FROM', startRaw),
    streams: streams('BRIDGE_STREAMS', pick('BRIDGE_STREAMS', file.streams) ?? 'traces,generations,scores'),
    includeIo: bool('BRIDGE_INCLUDE_IO', pick('BRIDGE_INCLUDE_IO', file.includeIo) ?? false),
    retry: { maxAttempts: retryAttempts, baseSeconds: retryBase },
    alertBurst: wholeNumber('BRIDGE_ALERT_BURST', pick('BRIDGE_ALERT_BURST', file.alertBurst) ?? 20, 1),
    httpPort,
    httpHost: String(env.BRIDGE_HTTP_HOST || file.httpHost || '127.0.0.1'),
    httpToken: httpToken(env.BRIDGE_HTTP_TOKEN),
    healthMaxAgeSeconds: wholeNumber('BRIDGE_HEALTH_MAX_AGE_SECONDS', pick('BRIDGE_HEALTH_MAX_AGE_SECONDS', file.healthMaxAgeSeconds) ?? pollIntervalSeconds * 3, 1),
    sinks,
    rules: file.rules ?? null,
    digestCron: digestCron(pick('BRIDGE_DIGEST_CRON', file.digestCron)),
    configFile: opts.configFile ?? null,
    queue: queueSettings(env, file.queue ?? {}, pick),
    projects: [],
  };
  config.projects = projectsFromFile(file.projects ?? [], config, opts.requireKeys !== false);
  return config;
}

/** `sinks[2] ("oncall")`: an entry of a list in the config file, by index and, when it has one, name. */
function entryLabel(list: string, i: number, name: unknown): string {
  return typeof name === 'string' && name.trim() ? `${list}[${i}] (${JSON.stringify(name.trim())})` : `${list}[${i}]`;
}

function projectLabel(i: number, name: unknown): string {
  return entryLabel('projects', i, name);
}

/** The file's `projects`, each with the top-level settings as defaults. */
function projectsFromFile(list: NonNullable<FileConfig['projects']>, base: BridgeConfig, requireKeys: boolean): ProjectConfig[] {
  const seen = new Map<string, number>();
  return list.map((p, i) => {
    const at = projectLabel(i, p.name);
    const name = p.name.trim();
    if (!name) fail(`${at}.name`, 'a non-empty string', p.name);
    const prev = seen.get(name);
    if (prev !== undefined) throw new ConfigError(`${at}.name repeats the name of projects[${prev}]; give each project its own name`);
    seen.set(name, i);
    const publicKey = p.publicKey ?? '';
    const secretKey = p.secretKey ?? '';
    if (requireKeys) {
      if (!publicKey) throw new ConfigError(`${at}.publicKey is required (a pk-lf-… key from that Langfuse project's settings)`);
      if (!secretKey) throw new ConfigError(`${at}.secretKey is required (an sk-lf-… key from that Langfuse project's settings)`);
    }
    return {
      name,
      publicKey,
      secretKey,
      baseUrl: p.baseUrl === undefined ? base.langfuse.baseUrl : parseUrl(`${at}.baseUrl`, p.baseUrl),
      api: p.api ?? base.langfuse.api,
      maxRequestsPerMinute: p.maxRequestsPerMinute === undefined ? base.langfuse.maxRequestsPerMinute : wholeNumber(`${at}.maxRequestsPerMinute`, p.maxRequestsPerMinute, 1, 100_000),
      maxRequestsPerMinuteSet: p.maxRequestsPerMinute === undefined ? base.langfuse.maxRequestsPerMinuteSet : true,
      streams: p.streams === undefined ? base.streams : streams(`${at}.streams`, p.streams),
      lookbackSeconds: p.lookbackSeconds === undefined ? base.lookbackSeconds : wholeNumber(`${at}.lookbackSeconds`, p.lookbackSeconds, 0, 7 * 86_400, 'seconds'),
      startFrom: p.startFrom === undefined ? base.startFrom : parseInstant(`${at}.startFrom`, p.startFrom),
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

/** BRIDGE_REDIS_URL switches delivery to Redis queues; unset, everything stays in-process. */
function queueSettings(env: Env, fq: NonNullable<FileConfig['queue']>, pick: (envName: string, fileValue: unknown) => unknown): BridgeConfig['queue'] {
  const rawUrl = pick('BRIDGE_REDIS_URL', fq.redisUrl);
  let redisUrl: string | null = null;
  if (rawUrl !== undefined && String(rawUrl).trim() !== '') {
    const setting = env.BRIDGE_REDIS_URL ? 'BRIDGE_REDIS_URL' : 'queue.redisUrl';
    let u: URL | null = null;
    try {
      u = new URL(String(rawUrl).trim());
    } catch {
      u = null;
    }
    if (!u || (u.protocol !== 'redis:' && u.protocol !== 'rediss:') || !u.hostname) {
      fail(setting, 'a redis:// or rediss:// URL such as redis://127.0.0.1:6379', String(rawUrl).replace(/\/\/([^:@/]*):([^@/]*)@/, '//$1:***@'));
    }
    redisUrl = String(rawUrl).trim();
  }
  const prefix = String(pick('BRIDGE_QUEUE_PREFIX', fq.prefix) ?? 'langfuse-bridge').trim();
  if (!prefix || /\s/.test(prefix)) fail('BRIDGE_QUEUE_PREFIX', 'a key prefix without spaces', prefix);
  return {
    redisUrl,
    connectWaitSeconds: wholeNumber('BRIDGE_REDIS_WAIT_SECONDS', pick('BRIDGE_REDIS_WAIT_SECONDS', fq.connectWaitSeconds) ?? 30, 0, 3600, 'seconds'),
    prefix,
    lockSeconds: wholeNumber('BRIDGE_WORKER_LOCK_SECONDS', pick('BRIDGE_WORKER_LOCK_SECONDS', fq.lockSeconds) ?? 30, 1, 3600, 'seconds'),
  };
}

function uniqueName(sinks: SinkConfig[], base: string): string {
  let name = base;
  for (let i = 2; sinks.some((s) => s.name === name); i++) name = `${base}-${i}`;
  return name;
}

/** `configFile`: paths in the file (a handler's `module`) resolve against its folder, not the working directory. */
function sinkFromFile(s: SinkFileConfig, i: number, configFile: string): SinkConfig {
  const at = entryLabel('sinks', i, s.name);
  const name = s.name ?? `${s.type}${i ? `-${i + 1}` : ''}`;
  const events = eventPatterns(`${at}.events`, s.events);
  switch (s.type) {
    case 'webhook': {
      const signature = s.signature ?? 'standard';
      const secret = s.secret || null;
      checkWebhookSecret(`${at}.secret`, `${at}.signature`, (scheme) => `"signature": "${scheme}" on that sink`, signature, secret);
      return { type: 'webhook', name, url: parseUrl(`${at}.url`, s.url), secret, signature, events, timeoutSeconds: s.timeoutSeconds ?? 10, concurrency: s.concurrency ?? 32 };
    }
    case 'stdout':
      return { type: 'stdout', name, events, pretty: s.pretty ?? false };
    case 'slack':
      return { type: 'slack', name, url: parseUrl(`${at}.url`, s.url), events, timeoutSeconds: s.timeoutSeconds ?? 10 };
    case 'pagerduty':
      if (!s.routingKey) throw new ConfigError(`${at}.routingKey is required for a pagerduty sink (the integration's Events API v2 routing key)`);
      return {
        type: 'pagerduty',
        name,
        routingKey: s.routingKey,
        eventsUrl: parseUrl(`${at}.eventsUrl`, s.eventsUrl ?? 'https://events.pagerduty.com/v2/enqueue'),
        events,
        timeoutSeconds: s.timeoutSeconds ?? 10,
      };
    case 'handler':
      if (!s.module) throw new ConfigError(`${at}.module is required for a handler sink (path to an .mjs/.js module)`);
      return {
        type: 'handler',
        name,
        module: s.module,
        baseDir: path.dirname(path.resolve(configFile)),
        setting: `${at}.module in ${configFile}`,
        events,
        timeoutSeconds: s.timeoutSeconds ?? 30,
        concurrency: s.concurrency ?? 8,
      };
  }
}
