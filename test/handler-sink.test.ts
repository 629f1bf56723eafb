import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/errors.js';
import { EVENT_TYPES, type AnyBridgeEvent, type EventType } from '../src/events/types.js';
import { defineHandlers, handlerExportName } from '../src/handlers.js';
import { loadConfig } from '../src/config/index.js';
import { buildMonitorEvent } from '../src/monitors/events.js';
import { silentLogger } from '../src/ops/logger.js';
import { createSinks } from '../src/sinks/index.js';
import { createHandlerSink, type HandlerSinkConfig } from '../src/sinks/handler.js';
import type { Delivery } from '../src/sinks/types.js';
import { takes } from './helpers/routes.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lfb-handlers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Call = { via: string; event: AnyBridgeEvent; attempt?: number };
const g = globalThis as unknown as { __handlerCalls: Call[] };
beforeEach(() => {
  g.__handlerCalls = [];
});

let n = 0;
function write(source: string, ext = 'mjs'): string {
  const name = `handlers-${++n}.${ext}`;
  writeFileSync(path.join(dir, name), source);
  return name;
}

function cfg(module: string, over: Partial<HandlerSinkConfig> = {}): HandlerSinkConfig {
  return { type: 'handler', name: 'handler', module, events: ['*'], timeoutSeconds: 5, concurrency: 4, ...over };
}

const DATA: Record<EventType, Record<string, unknown>> = {
  'trace.created': { traceId: 't1', name: 'checkout', userId: null, sessionId: null, environment: 'default', tags: [], level: 'DEFAULT', statusMessage: null },
  'trace.updated': { traceId: 't1', name: 'checkout', userId: null, sessionId: null, environment: 'default', tags: [], level: 'ERROR', statusMessage: 'boom' },
  'generation.created': {
    observationId: 'o1',
    traceId: 't1',
    name: 'chat',
    model: 'gpt-4o',
    level: 'DEFAULT',
    statusMessage: null,
    startTime: '2026-11-27T01:00:00.000Z',
    endTime: null,
    usage: { promptTokens: 1, completionTokens: 2, totalTokens: 3 },
    usageDetails: null,
    costDetails: null,
    totalCost: 0.001,
  },
  'generation.updated': {
    observationId: 'o1',
    traceId: 't1',
    name: 'chat',
    model: 'gpt-4o',
    level: 'DEFAULT',
    statusMessage: null,
    startTime: '2026-11-27T01:00:00.000Z',
    endTime: '2026-11-27T01:00:01.000Z',
    usage: { promptTokens: 1, completionTokens: 2, totalTokens: 3 },
    usageDetails: null,
    costDetails: null,
    totalCost: 0.001,
  },
  'score.created': { scoreId: 's1', traceId: 't1', observationId: null, sessionId: null, name: 'accuracy', value: 0.3, stringValue: null, dataType: 'NUMERIC', source: 'API', comment: null },
  'score.updated': { scoreId: 's1', traceId: 't1', observationId: null, sessionId: null, name: 'accuracy', value: 0.4, stringValue: null, dataType: 'NUMERIC', source: 'API', comment: null },
  'prompt.created': { prompt: { name: 'qa', version: 1, labels: ['production'], tags: [] } },
  'prompt.updated': { prompt: { name: 'qa', version: 1, labels: ['latest'], tags: [] } },
  test: { message: 'hello' },
};

function event(type: EventType): AnyBridgeEvent {
  return { id: `evt_${type}`, event: type, timestamp: '2026-11-27T01:00:00.000Z', data: { projectId: 'p1', ...DATA[type] } } as AnyBridgeEvent;
}

function delivery(e: AnyBridgeEvent, attempt = 1): Delivery {
  return { eventId: e.id, eventType: e.event, body: JSON.stringify(e), event: e, route: null, attempt };
}

const signal = new AbortController().signal;

async function configError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).not.toContain('\n');
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('handler sink', () => {
  it('calls the handler of every event type, from a default object', async () => {
    const entries = EVENT_TYPES.map((t) => `  ${JSON.stringify(t)}: async (event, ctx) => { globalThis.__handlerCalls.push({ via: ${JSON.stringify(t)}, event, attempt: ctx.attempt }); },`);
    const file = write(`export default {\n${entries.join('\n')}\n};\n`);
    const sink = await createHandlerSink(cfg(file), { cwd: dir });
    expect(sink).toMatchObject({ name: 'handler', kind: 'handler', alerting: false, concurrency: 4 });
    for (const t of EVENT_TYPES) {
      expect(takes(sink, event(t))).toBe(true);
      expect(await sink.deliver(delivery(event(t), 3), signal)).toEqual({ ok: true });
    }
    expect(g.__handlerCalls.map((c) => c.via)).toEqual([...EVENT_TYPES]);
    for (const c of g.__handlerCalls) {
      expect(c.event).toEqual(event(c.event.event));
      expect(c.attempt).toBe(3);
    }
  });

  it('finds camelCase named exports, group keys and a fallback', async () => {
    const file = write(
      [
        `export async function onTraceCreated(event) { globalThis.__handlerCalls.push({ via: 'onTraceCreated', event }); }`,
        `export const onScoreCreated = (event) => { globalThis.__handlerCalls.push({ via: 'onScoreCreated', event }); };`,
        `export const helperValue = 42;`,
        `export function formatThing() {}`,
        `export default { 'generation.*': (event) => { globalThis.__handlerCalls.push({ via: 'generation.*', event }); },`,
        `  '*': (event) => { globalThis.__handlerCalls.push({ via: '*', event }); } };`,
      ].join('\n'),
    );
    const sink = await createHandlerSink(cfg(file), { cwd: dir });
    for (const t of ['trace.created', 'score.created', 'generation.updated', 'prompt.created'] as const) await sink.deliver(delivery(event(t)), signal);
    expect(g.__handlerCalls.map((c) => c.via)).toEqual(['onTraceCreated', 'onScoreCreated', 'generation.*', '*']);
  });

  it('sends only handled types that the sink’s events allow', async () => {
    const file = write(`export function onTraceUpdated() {}\nexport function onScoreCreated() {}\n`);
    const sink = await createHandlerSink(cfg(file, { events: ['trace.*'] }), { cwd: dir });
    expect(takes(sink, event('trace.updated'))).toBe(true);
    expect(takes(sink, event('trace.created'))).toBe(false); // no handler
    expect(takes(sink, event('score.created'))).toBe(false); // not in events
  });

  it('gives every event to a default-exported function, also from CommonJS', async () => {
    const esm = write(`export default async function (event) { globalThis.__handlerCalls.push({ via: 'esm', event }); }\n`);
    const cjs = write(`module.exports = { 'score.created': (event) => { globalThis.__handlerCalls.push({ via: 'cjs', event }); } };\n`, 'cjs');
    const a = await createHandlerSink(cfg(esm), { cwd: dir });
    const b = await createHandlerSink(cfg(path.join(dir, cjs)));
    expect(takes(a, event('prompt.updated'))).toBe(true);
    await a.deliver(delivery(event('prompt.updated')), signal);
    expect(takes(b, event('trace.created'))).toBe(false);
    await b.deliver(delivery(event('score.created')), signal);
    expect(g.__handlerCalls.map((c) => c.via)).toEqual(['esm', 'cjs']);
  });

  it('hands each call its own copy of the event', async () => {
    const file = write(`export default { 'trace.created': (event) => { event.data.name = 'changed'; } };\n`);
    const sink = await createHandlerSink(cfg(file), { cwd: dir });
    const d = delivery(event('trace.created'));
    await sink.deliver(d, signal);
    expect((d.event.data as { name: string }).name).toBe('checkout');
  });

  it('turns a throw, a rejection or a timeout into a retry', async () => {
    const file = write(
      [
        `export function onTraceCreated() { throw new Error('database is locked\\n    at somewhere'); }`,
        `export async function onTraceUpdated() { throw 'plain string'; }`,
        `export function onScoreCreated() { return new Promise(() => {}); }`,
      ].join('\n'),
    );
    const sink = await createHandlerSink(cfg(file, { timeoutSeconds: 0.05 }), { cwd: dir });
    expect(await sink.deliver(delivery(event('trace.created')), signal)).toEqual({ ok: false, retry: true, reason: 'handler threw: database is locked' });
    expect(await sink.deliver(delivery(event('trace.updated')), signal)).toEqual({ ok: false, retry: true, reason: 'handler threw: plain string' });
    expect(await sink.deliver(delivery(event('score.created')), signal)).toEqual({
      ok: false,
      retry: true,
      reason: 'handler for score.created did not finish within 0.05s',
    });
  });

  it('refuses a missing module, one without handlers, a misspelled handler and a broken one', async () => {
    expect(await configError(createHandlerSink(cfg('./nope/handlers.mjs'), { cwd: dir }))).toMatch(
      /^handler module "\.\/nope\/handlers\.mjs" was not found \(looked for .*nope\/handlers\.mjs\); point BRIDGE_HANDLERS \(or the "module" of sink "handler"\) at an existing \.mjs, \.js or \.cjs file$/,
    );
    expect(await configError(createHandlerSink(cfg(write(`export const x = 1;\n`)), { cwd: dir }))).toMatch(/^handler module handlers-\d+\.mjs exports no handlers; /);
    expect(await configError(createHandlerSink(cfg(write(`export function onTraceCreatd() {}\n`)), { cwd: dir }))).toMatch(
      /^handler module handlers-\d+\.mjs exports "onTraceCreatd", which is no event type; /,
    );
    expect(await configError(createHandlerSink(cfg(write(`export default { 'trace.created': 5 };\n`)), { cwd: dir }))).toMatch(
      /"trace\.created" must be a function \(event\) => \.\.\., got number$/,
    );
    expect(await configError(createHandlerSink(cfg(write(`export default {\n`)), { cwd: dir }))).toMatch(/^handler module handlers-\d+\.mjs failed to load \(/);
  });

  it('types handler maps', () => {
    const h = defineHandlers({
      'trace.updated': (e) => e.data.level,
      onScoreCreated: (e) => e.data.value,
      '*': (e) => e.id,
    });
    expect(Object.keys(h)).toEqual(['trace.updated', 'onScoreCreated', '*']);
    expect(handlerExportName('generation.updated')).toBe('onGenerationUpdated');
  });

  describe('named by a monitor', () => {
    const configWith = (module: string, events?: string[]): ReturnType<typeof loadConfig> => {
      const file = path.join(dir, `monitor-${++n}.json`);
      const monitor = { name: 'rag-errors', source: 'traces', metric: 'errorRate', window: '5m', op: '>', alert: 0.1, sinks: ['h'] };
      writeFileSync(file, JSON.stringify({ sinks: [{ type: 'handler', name: 'h', module, ...(events ? { events } : {}) }], monitors: [monitor] }), { mode: 0o600 });
      return loadConfig({ env: { LANGFUSE_PUBLIC_KEY: 'pk', LANGFUSE_SECRET_KEY: 'sk' }, configFile: file });
    };

    it('receives the monitor events through its handlers', async () => {
      const file = path.join(dir, write(`export async function onMonitorAlert(event) { globalThis.__handlerCalls.push({ via: 'onMonitorAlert', event }); }\nexport default { 'monitor.*': (event) => { globalThis.__handlerCalls.push({ via: 'monitor.*', event }); } };\n`));
      const config = configWith(file);
      const { sinks } = await createSinks(config, silentLogger());
      const sink = sinks.find((s) => s.name === 'h')!;
      const [spec] = config.monitors;
      const outcome = { projectId: 'p1', spec: spec!, previousSeverity: 'ok' as const, value: 0.5, samples: 10, windowEndMs: Date.parse('2026-11-27T01:00:00.000Z'), recent: [0.5], langfuseBaseUrl: 'https://lf.example' };
      const alert = buildMonitorEvent({ ...outcome, severity: 'alert' });
      const resolved = buildMonitorEvent({ ...outcome, severity: 'ok', previousSeverity: 'alert' });
      for (const e of [alert, resolved]) {
        expect(takes(sink, e)).toBe(true);
        expect(await sink.deliver(delivery(e), signal)).toEqual({ ok: true });
      }
      expect(g.__handlerCalls.map((c) => `${c.via} ${c.event.event}`)).toEqual(['onMonitorAlert monitor.alert', 'monitor.* monitor.resolved']);
    });

    it('is refused at start, in one line, when its module has no handler for monitor events', async () => {
      const file = path.join(dir, write(`export function onTraceCreated() {}\n`));
      expect(await configError(createSinks(configWith(file), silentLogger()))).toBe(
        `monitors[0] ("rag-errors").sinks names "h", whose handler module ${file} has no handler for monitor.alert, monitor.resolved; export one (e.g. 'monitor.*' or onMonitorAlert) or name another sink`,
      );
    });

    it('is refused at config load when its events leave monitor events out', () => {
      const file = path.join(dir, write(`export default () => {};\n`));
      expect(() => configWith(file, ['trace.*'])).toThrow(
        'monitors[0] ("rag-errors").sinks names "h", whose events (trace.*) leave out monitor.alert, monitor.resolved; add "monitor.*" to that sink\'s events or name another sink',
      );
    });
  });
});

