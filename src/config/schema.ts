/**
 * The settings' one schema and their defaults. The config file is validated with it as written, and
 * the environment after src/config/env.ts has put it into the same shape; it is also the source of the
 * published JSON Schema (`schema/config.schema.json`, see json-schema.ts), whose descriptions name the
 * environment variable each key stands for. Defaults live in DEFAULTS and nowhere else, except a sink
 * kind's: those sit in its definition (src/sinks/<kind>.ts) with the schema that names them, so that a
 * kind is described in one place; `sinks` takes the kinds listed in src/sinks/kinds.ts.
 */
import { z } from 'zod';
import { SINK_KINDS } from '../sinks/kinds.js';
import { MUST, flag, positiveSeconds, wholeNumber } from './fields.js';

export const STREAMS = ['traces', 'generations', 'scores', 'prompts'] as const;
export type Stream = (typeof STREAMS)[number];
export const API_MODES = ['auto', 'v4', 'legacy'] as const;
export type ApiMode = (typeof API_MODES)[number];

/** Every default but the sink kinds', as p-queue keeps its options' defaults: in one object. */
export const DEFAULTS = {
  langfuse: { baseUrl: 'https://cloud.langfuse.com', api: 'auto' as ApiMode, maxRequestsPerMinute: 30, timeoutSeconds: 30 },
  database: 'data/bridge.db',
  pollIntervalSeconds: 30,
  lookbackSeconds: 1200,
  retentionDays: 30,
  streams: ['traces', 'generations', 'scores'] as Stream[],
  includeIo: false,
  retry: { maxAttempts: 10, baseSeconds: 5 },
  alertBurst: 20,
  httpHost: '127.0.0.1',
  /** healthMaxAgeSeconds is this many poll intervals. */
  healthMaxAgeIntervals: 3,
  stdout: false,
  queue: { connectWaitSeconds: 30, prefix: 'langfuse-bridge', lockSeconds: 30 },
} as const;

const D = DEFAULTS;
const list = (items: readonly string[]): string => `[${items.map((s) => `"${s}"`).join(', ')}]`;

/** Each entry of `sinks`: the schema of the kind its `type` names. */
const sinkSchema = z.discriminatedUnion('type', SINK_KINDS.map((k) => k.schema) as SchemasOf<typeof SINK_KINDS>);
type SchemasOf<T extends readonly unknown[]> = { -readonly [I in keyof T]: T[I] extends { schema: infer S } ? S : never };
export type RawSink = z.infer<typeof sinkSchema>;

const apiField = z.enum(API_MODES).describe(`the Langfuse API generation: auto (probe), v4 or legacy (BRIDGE_LANGFUSE_API); default ${D.langfuse.api}`);
const streamsField = z
  .array(z.enum(STREAMS))
  .describe(`what to poll (BRIDGE_STREAMS); default ${list(D.streams)}`)
  .register(MUST, { must: `a comma list of ${STREAMS.join(', ')}` });
const maxRequestsField = wholeNumber(1, 100_000, '', `ceiling on calls to Langfuse in any 60 s, retries included (BRIDGE_MAX_REQUESTS_PER_MINUTE); default ${D.langfuse.maxRequestsPerMinute}`);
const lookbackField = wholeNumber(0, 7 * 86_400, 'seconds', `how far behind its cursor each poll reads again, for late data, seconds (BRIDGE_LOOKBACK_SECONDS); default ${D.lookbackSeconds}`);
const startFromField = z.string().describe('where the very first poll starts, ISO 8601 (BRIDGE_START_FROM); default now minus the lookback');

const projectSchema = z
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
export type RawProject = z.infer<typeof projectSchema>;

export const settingsSchema = z
  .object({
    $schema: z.string().describe('the JSON Schema of this file, for editors').optional(),
    langfuse: z
      .object({
        publicKey: z.string().describe('pk-lf-… API key (LANGFUSE_PUBLIC_KEY)').optional(),
        secretKey: z.string().describe('sk-lf-… API key (LANGFUSE_SECRET_KEY)').optional(),
        baseUrl: z.string().describe(`the Langfuse host (LANGFUSE_BASE_URL); default ${D.langfuse.baseUrl}`).optional(),
        api: apiField.optional(),
        maxRequestsPerMinute: maxRequestsField.optional(),
        timeoutSeconds: positiveSeconds(`time allowed for one Langfuse call, seconds (LANGFUSE_TIMEOUT_SECONDS); default ${D.langfuse.timeoutSeconds}`).optional(),
      })
      .strict()
      .describe('the Langfuse project to poll')
      .optional(),
    database: z.string().describe(`SQLite file: cursors, seen versions, outbox, dead letters (BRIDGE_DATABASE); default ${D.database}`).optional(),
    pollIntervalSeconds: wholeNumber(1, 86_400, 'seconds', `time between polls (BRIDGE_POLL_INTERVAL_SECONDS); default ${D.pollIntervalSeconds}`).optional(),
    lookbackSeconds: lookbackField.optional(),
    retentionDays: wholeNumber(1, 3650, 'days', `seen versions and delivered rows older than this are pruned (BRIDGE_RETENTION_DAYS); default ${D.retentionDays}`).optional(),
    startFrom: startFromField.optional(),
    streams: streamsField.optional(),
    includeIo: flag(`put observation input/output and prompt text in events (BRIDGE_INCLUDE_IO); default ${D.includeIo}`).optional(),
    retry: z
      .object({
        maxAttempts: wholeNumber(1, 100, '', `delivery attempts before dead-letter (BRIDGE_RETRY_MAX_ATTEMPTS); default ${D.retry.maxAttempts}`).optional(),
        baseSeconds: positiveSeconds(`first backoff, fractions allowed (BRIDGE_RETRY_BASE_SECONDS); default ${D.retry.baseSeconds}`).optional(),
      })
      .strict()
      .describe('delivery retries, exponential with jitter')
      .optional(),
    alertBurst: wholeNumber(1, null, '', `more alerts than this from one rule in a minute fold into one summary (BRIDGE_ALERT_BURST); default ${D.alertBurst}`).optional(),
    httpPort: wholeNumber(0, 65535, '', 'ops server port: /healthz, /metrics (BRIDGE_HTTP_PORT); default off').optional(),
    httpHost: z.string().min(1).describe(`address the ops server listens on (BRIDGE_HTTP_HOST); default ${D.httpHost}`).optional(),
    healthMaxAgeSeconds: wholeNumber(1, null, '', `/healthz answers 503 when the last successful poll is older (BRIDGE_HEALTH_MAX_AGE_SECONDS); default ${D.healthMaxAgeIntervals} × pollIntervalSeconds`).optional(),
    stdout: flag(`also print events to stdout next to other sinks (BRIDGE_STDOUT); default ${D.stdout}`).optional(),
    sinks: z.array(sinkSchema).describe('where events and alerts go; each entry has a "type"').optional(),
    rules: z.array(z.unknown()).describe('which events alert, and where; without rules the defaults apply').optional(),
    monitors: z.array(z.unknown()).describe('thresholds on aggregates over windows: error rate, score mean, p95 latency, cost, count').optional(),
    projects: z.array(projectSchema).describe('several Langfuse projects in one bridge').optional(),
    digestCron: z.string().describe('post the last day’s usage, errors and low scores to Slack on this cron schedule, UTC (BRIDGE_DIGEST_CRON); default off').optional(),
    queue: z
      .object({
        redisUrl: z.string().describe('redis:// or rediss:// URL; unset: in-process delivery (BRIDGE_REDIS_URL)').optional(),
        connectWaitSeconds: wholeNumber(0, 3600, 'seconds', `how long commands wait for Redis at start (BRIDGE_REDIS_WAIT_SECONDS); default ${D.queue.connectWaitSeconds}`).optional(),
        prefix: z.string().min(1).describe(`Redis key prefix (BRIDGE_QUEUE_PREFIX); default ${D.queue.prefix}`).optional(),
        lockSeconds: wholeNumber(1, 3600, 'seconds', `a job whose worker died is taken again after about this long (BRIDGE_WORKER_LOCK_SECONDS); default ${D.queue.lockSeconds}`).optional(),
      })
      .strict()
      .describe('Redis queues and workers')
      .optional(),
  })
  .strict()
  .describe('langfuse-bridge config file (--config); environment variables win over it, and ${VAR} in any string is read from the environment');
/** The settings as written, in the file or (through env.ts) in the environment, once valid. */
export type RawSettings = z.infer<typeof settingsSchema>;
