/**
 * Handler sink: calls functions from a user's module in-process, one per event, instead of sending
 * a webhook. The module is a plain file anywhere (ESM or CommonJS, importing nothing of the bridge); a
 * relative path resolves against the config file that names it, or for BRIDGE_HANDLERS against the
 * working directory. It exports handlers
 * by event type — `'trace.created'`, camelCase `onTraceCreated`, a group `'trace.*'`, a fallback
 * `'*'` / `onEvent` — as named exports or on a default-exported object, or a default-exported
 * function that receives every event. See `src/handlers.ts` for the types.
 */
import { stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { ConfigError, oneLine } from '../errors.js';
import { matchesEventPatterns } from '../events/patterns.js';
import { EVENT_TYPES } from '../events/types.js';
import type { AnyBridgeEvent, EventType } from '../events/types.js';
import { eventTypeForExportName } from '../handlers.js';
import type { HandlerContext } from '../handlers.js';
import { defineSinkKind, sinkFields } from './kind.js';
import type { Delivery, DeliveryResult, Sink } from './types.js';

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

const defaults = { timeoutSeconds: 30, concurrency: 8 };

export const handlerSink = defineSinkKind({
  kind: 'handler',
  alerting: false,
  defaults,
  schema: z
    .object({
      type: z.literal('handler'),
      name: sinkFields.name.optional(),
      module: z.string().describe('path of an .mjs, .js or .cjs handler module, relative to this file (BRIDGE_HANDLERS, relative to the working directory)'),
      events: sinkFields.events.optional(),
      timeoutSeconds: sinkFields.timeoutSeconds(defaults.timeoutSeconds).optional(),
      concurrency: sinkFields.concurrency(defaults.concurrency).optional(),
    })
    .strict()
    .describe('your own handler module, called in process'),
  env: { by: 'BRIDGE_HANDLERS', key: 'module', more: [] },
  read(s, place): Omit<HandlerSinkConfig, 'name'> {
    if (!s.module) throw new ConfigError(`${place.at('module')} is required for a handler sink (path to an .mjs/.js module)`);
    // A module named in the file resolves against the file's folder, not the working directory.
    const file = place.file;
    return {
      type: 'handler',
      module: s.module,
      baseDir: file === null ? process.cwd() : path.dirname(path.resolve(file)),
      setting: file === null ? place.at('module') : `${place.at('module')} in ${file}`,
      events: s.events,
      timeoutSeconds: s.timeoutSeconds ?? defaults.timeoutSeconds,
      concurrency: s.concurrency ?? defaults.concurrency,
    };
  },
  create: (config: HandlerSinkConfig) => createHandlerSink(config),
});

type Fn = (this: unknown, event: AnyBridgeEvent, ctx: HandlerContext) => unknown;
interface Bound {
  fn: Fn;
  self: unknown;
  key: string;
}


const GROUPS = new Set(EVENT_TYPES.filter((t) => t.includes('.')).map((t) => `${t.split('.')[0]}.*`));

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

async function locate(spec: string, cwd: string, setting: string): Promise<string> {
  const abs = path.resolve(cwd, spec);
  if (await isFile(abs)) return abs;
  const looksLikePath = spec.startsWith('.') || path.isAbsolute(spec) || /\.(m?js|cjs)$/.test(spec);
  if (!looksLikePath) {
    // A package name, resolved the way `require` would from that folder.
    try {
      return createRequire(path.join(cwd, 'noop.js')).resolve(spec);
    } catch {
      // Fall through to the message about the path.
    }
  }
  throw new ConfigError(`handler module ${JSON.stringify(spec)} was not found (looked for ${abs}); point ${setting} at an existing .mjs, .js or .cjs file`);
}

function collect(ns: Record<string, unknown>, shown: string): { exact: Map<EventType, Bound>; groups: Map<string, Bound>; fallback: Bound | null } {
  const exact = new Map<EventType, Bound>();
  const groups = new Map<string, Bound>();
  let fallback: Bound | null = null;

  const consider = (key: string, value: unknown, self: unknown): void => {
    const type: EventType | null = (EVENT_TYPES as readonly string[]).includes(key) ? (key as EventType) : eventTypeForExportName(key);
    const isGroup = GROUPS.has(key);
    const isFallback = key === '*' || key === 'onEvent';
    if (!type && !isGroup && !isFallback) {
      if (typeof value === 'function' && (key.includes('.') || /^on[A-Z]/.test(key))) {
        throw new ConfigError(
          `handler module ${shown} exports ${JSON.stringify(key)}, which is no event type; use one of ${EVENT_TYPES.join(', ')} (or onTraceCreated-style names, "trace.*", "*")`,
        );
      }
      return; // helpers and constants
    }
    if (typeof value !== 'function') {
      throw new ConfigError(`handler module ${shown}: ${JSON.stringify(key)} must be a function (event) => ..., got ${value === null ? 'null' : typeof value}`);
    }
    const bound: Bound = { fn: value as Fn, self, key };
    if (type) exact.set(type, bound);
    else if (isGroup) groups.set(key, bound);
    else fallback = bound;
  };

  const def = ns.default;
  if (typeof def === 'function') fallback = { fn: def as Fn, self: undefined, key: 'default' };
  else if (def && typeof def === 'object') for (const [k, v] of Object.entries(def)) consider(k, v, def);
  for (const [k, v] of Object.entries(ns)) if (k !== 'default' && k !== 'module.exports') consider(k, v, undefined);
  return { exact, groups, fallback };
}

export async function createHandlerSink(cfg: HandlerSinkConfig, opts: { cwd?: string } = {}): Promise<Sink> {
  const cwd = cfg.baseDir ?? opts.cwd ?? process.cwd();
  const setting = cfg.setting ?? `BRIDGE_HANDLERS (or the "module" of sink ${JSON.stringify(cfg.name)})`;
  const file = await locate(cfg.module, cwd, setting);
  const shown = cfg.module;
  let ns: Record<string, unknown>;
  try {
    ns = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`handler module ${shown} failed to load (${oneLine(err)}); fix the module or ${setting}`);
  }
  const { exact, groups, fallback } = collect(ns, shown);
  if (exact.size === 0 && groups.size === 0 && !fallback) {
    throw new ConfigError(
      `handler module ${shown} exports no handlers; export functions named by event type, e.g. export default { 'trace.created': async (event) => {} } or export async function onScoreCreated(event) {}`,
    );
  }

  const handlerFor = (type: EventType): Bound | null => exact.get(type) ?? groups.get(`${type.split('.')[0]}.*`) ?? fallback;
  const timeoutMs = cfg.timeoutSeconds * 1000;

  return {
    name: cfg.name,
    kind: handlerSink.kind,
    alerting: handlerSink.alerting,
    concurrency: cfg.concurrency,
    minIntervalMs: 0,

    events: EVENT_TYPES.filter((t) => matchesEventPatterns(cfg.events, t) && handlerFor(t) !== null),

    async deliver(delivery: Delivery, signal: AbortSignal): Promise<DeliveryResult> {
      const h = handlerFor(delivery.event.event);
      if (!h) return { ok: false, retry: false, reason: `handler module ${shown} has no handler for ${delivery.event.event}` };
      if (signal.aborted) return { ok: false, retry: true, reason: 'handler not called: shutting down' };

      const ac = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      let onAbort: () => void = () => {};
      const stopped = new Promise<'timeout' | 'aborted'>((resolve) => {
        onAbort = () => {
          ac.abort(signal.reason);
          resolve('aborted');
        };
        signal.addEventListener('abort', onAbort, { once: true });
        timer = setTimeout(() => {
          ac.abort(new Error(`handler timed out after ${cfg.timeoutSeconds}s`));
          resolve('timeout');
        }, timeoutMs);
      });
      const ctx: HandlerContext = { eventId: delivery.eventId, attempt: delivery.attempt, signal: ac.signal, sink: cfg.name };
      const run = (async () => h.fn.call(h.self, structuredClone(delivery.event), ctx))().then(
        () => ({ ok: true }) as const,
        (err: unknown) => ({ ok: false, err }) as const,
      );
      try {
        const outcome = await Promise.race([run, stopped]);
        if (outcome === 'timeout') return { ok: false, retry: true, reason: `handler for ${delivery.event.event} did not finish within ${cfg.timeoutSeconds}s` };
        if (outcome === 'aborted') return { ok: false, retry: true, reason: 'handler interrupted: shutting down' };
        if (outcome.ok) return { ok: true };
        return { ok: false, retry: true, reason: `handler threw: ${oneLine(outcome.err)}` };
      } finally {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      }
    },

    validate() {
      return [];
    },
  };
}
