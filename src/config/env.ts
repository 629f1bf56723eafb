/**
 * The environment in the config file's shape: each variable becomes the file key it stands for, its
 * text turned into the number, boolean or list the file would hold, so that one schema validates
 * both. Text that does not read as its kind stays text, for the schema to reject and the message to
 * show as written. Every value remembers the variable it came from.
 */
import { ConfigError } from '../errors.js';
import { SINK_KINDS } from '../sinks/kinds.js';
import { pathKey, type EnvNames } from './messages.js';

export type Env = Record<string, string | undefined>;

/** How a variable's text is read: as it is, a whole number, a number, a flag or a comma list. */
export type VariableKind = 'text' | 'int' | 'number' | 'flag' | 'list';

/** Variable (or variables, first set wins), the file key it stands for, and the kind of value it holds. */
const VARIABLES: ReadonlyArray<readonly [string | readonly string[], readonly string[], VariableKind]> = [
  ['LANGFUSE_PUBLIC_KEY', ['langfuse', 'publicKey'], 'text'],
  ['LANGFUSE_SECRET_KEY', ['langfuse', 'secretKey'], 'text'],
  // The official SDKs' spellings are accepted too.
  [['LANGFUSE_BASE_URL', 'LANGFUSE_BASEURL', 'LANGFUSE_HOST'], ['langfuse', 'baseUrl'], 'text'],
  ['BRIDGE_LANGFUSE_API', ['langfuse', 'api'], 'text'],
  ['BRIDGE_MAX_REQUESTS_PER_MINUTE', ['langfuse', 'maxRequestsPerMinute'], 'int'],
  ['LANGFUSE_TIMEOUT_SECONDS', ['langfuse', 'timeoutSeconds'], 'number'],
  ['BRIDGE_DATABASE', ['database'], 'text'],
  ['BRIDGE_POLL_INTERVAL_SECONDS', ['pollIntervalSeconds'], 'int'],
  ['BRIDGE_LOOKBACK_SECONDS', ['lookbackSeconds'], 'int'],
  ['BRIDGE_RETENTION_DAYS', ['retentionDays'], 'int'],
  ['BRIDGE_START_FROM', ['startFrom'], 'text'],
  ['BRIDGE_STREAMS', ['streams'], 'list'],
  ['BRIDGE_INCLUDE_IO', ['includeIo'], 'flag'],
  ['BRIDGE_RETRY_MAX_ATTEMPTS', ['retry', 'maxAttempts'], 'int'],
  ['BRIDGE_RETRY_BASE_SECONDS', ['retry', 'baseSeconds'], 'number'],
  ['BRIDGE_ALERT_BURST', ['alertBurst'], 'int'],
  ['BRIDGE_HTTP_PORT', ['httpPort'], 'int'],
  ['BRIDGE_HTTP_HOST', ['httpHost'], 'text'],
  ['BRIDGE_HEALTH_MAX_AGE_SECONDS', ['healthMaxAgeSeconds'], 'int'],
  ['BRIDGE_STDOUT', ['stdout'], 'flag'],
  ['BRIDGE_DIGEST_CRON', ['digestCron'], 'text'],
  ['BRIDGE_REDIS_URL', ['queue', 'redisUrl'], 'text'],
  ['BRIDGE_REDIS_WAIT_SECONDS', ['queue', 'connectWaitSeconds'], 'int'],
  ['BRIDGE_QUEUE_PREFIX', ['queue', 'prefix'], 'text'],
  ['BRIDGE_WORKER_LOCK_SECONDS', ['queue', 'lockSeconds'], 'int'],
];

const TRUE = ['1', 'true', 'yes', 'on'];
const FALSE = ['0', 'false', 'no', 'off', ''];

function read(text: string, kind: VariableKind): unknown {
  switch (kind) {
    case 'text':
      return text;
    case 'int':
      return /^\s*\d+\s*$/.test(text) ? Number(text) : text;
    case 'number': {
      const n = text.trim() === '' ? NaN : Number(text);
      return Number.isFinite(n) ? n : text;
    }
    case 'flag': {
      const s = text.trim().toLowerCase();
      return TRUE.includes(s) ? true : FALSE.includes(s) ? false : text;
    }
    case 'list':
      return text
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
  }
}

function put(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
  node[path[path.length - 1]!] = value;
}

export interface EnvSettings {
  /** The settings in the file's shape, not validated yet. */
  raw: Record<string, unknown>;
  names: EnvNames;
  /** BRIDGE_HTTP_TOKEN: a secret of the environment only, never of the file. */
  httpToken: string | null;
}

export function settingsFromEnv(env: Env): EnvSettings {
  const raw: Record<string, unknown> = {};
  const names: EnvNames = new Map();
  // An empty variable counts as unset, except BRIDGE_STDOUT= (off).
  const given = (name: string): boolean => env[name] !== undefined && (env[name] !== '' || name === 'BRIDGE_STDOUT');
  // Keys are named whether set or not: a message about a missing one names the variable to set.
  for (const [vars, path, kind] of VARIABLES) {
    const all = typeof vars === 'string' ? [vars] : vars;
    const name = all.find(given);
    if (name === undefined) {
      names.set(pathKey(path), { name: all[0]! });
      continue;
    }
    const text = env[name]!;
    put(raw, path, read(text, kind));
    names.set(pathKey(path), { name, raw: text });
  }
  const sinks: Array<Record<string, unknown>> = [];
  // Each sink kind's variables (src/sinks/kinds.ts): the one that makes it, then those that fill it in.
  for (const k of SINK_KINDS) {
    const s = k.env;
    if (!s || !given(s.by)) continue;
    const i = sinks.length;
    const sink: Record<string, unknown> = { type: k.kind, [s.key]: env[s.by] };
    names.set(pathKey(['sinks', i, s.key]), { name: s.by, raw: env[s.by]! });
    for (const [name, key, kind] of s.more) {
      if (!given(name)) {
        names.set(pathKey(['sinks', i, key]), { name });
        continue;
      }
      sink[key] = read(env[name]!, kind);
      names.set(pathKey(['sinks', i, key]), { name, raw: env[name]! });
    }
    sinks.push(sink);
  }
  if (sinks.length) raw.sinks = sinks;
  return { raw, names, httpToken: httpToken(env.BRIDGE_HTTP_TOKEN) };
}

/** The console's token: long enough not to be guessed. */
function httpToken(raw: string | undefined): string | null {
  if (raw === undefined || raw === '') return null;
  if (raw.length < 16 || /\s/.test(raw)) {
    throw new ConfigError(`BRIDGE_HTTP_TOKEN must be at least 16 characters without spaces (e.g. the output of \`openssl rand -hex 24\`), got ${JSON.stringify(`${raw.length} characters`)}`);
  }
  return raw;
}
