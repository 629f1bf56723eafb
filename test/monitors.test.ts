/**
 * Monitors against a real SQLite file: config validation, facts, window evaluation, durable
 * severity and notifications through the outbox, removal while firing, and the Slack and PagerDuty
 * builders.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { configJsonSchema } from '../src/config/json-schema.js';
import { eventId } from '../src/events/index.js';
import type { ObservationRecord, ScoreRecord } from '../src/events/records.js';
import { compileMonitors, evaluateMonitor, factsOf, measureWindow, monitorStatuses, MonitorRunner, resolveRemoved, type MonitorSpec } from '../src/monitors/index.js';
import { checkMonitors } from '../src/monitors/check.js';
import type { MonitorEvent } from '../src/monitors/events.js';
import { buildMonitorPagerDutyEvent, buildMonitorSlackMessage } from '../src/monitors/notify.js';
import { renderDeliveries, renderEvent } from '../src/ops/console/pages.js';
import { createLogger } from '../src/ops/logger.js';
import { Metrics } from '../src/ops/metrics.js';
import { Store } from '../src/store/index.js';
import { configErrorOf } from './helpers/config-error.js';
import { sqlite } from './helpers/sqlite.js';

const P = 'proj-1';
const MIN = 60_000;
// A whole hour on the grid, so windows line up with round numbers.
const T0 = Date.parse('2026-11-27T10:00:00.000Z');

function spec(raw: Record<string, unknown>, sinks = ['hook']): MonitorSpec {
  return compileMonitors([{ name: 'm', sinks, op: '>', ...raw }], { sinks: ['hook', 'slack', 'pd'], streams: ['traces', 'generations', 'scores'] })[0]!;
}

let n = 0;
function obs(tsMs: number, o: Partial<ObservationRecord> = {}): ObservationRecord {
  n++;
  return {
    id: `o${n}`,
    traceId: `t${n}`,
    type: 'GENERATION',
    name: 'llm',
    level: 'DEFAULT',
    statusMessage: null,
    startTime: new Date(tsMs).toISOString(),
    endTime: new Date(tsMs + 1000).toISOString(),
    model: 'gpt-4o',
    promptTokens: 10,
    completionTokens: 5,
    totalTokens: 15,
    usageDetails: null,
    costDetails: null,
    totalCost: 0.01,
    updatedAt: null,
    environment: 'production',
    userId: null,
    sessionId: null,
    traceName: 'rag-query',
    tags: ['rag'],
    isRoot: true,
    ...o,
  };
}

function score(tsMs: number, value: number | boolean, name = 'faithfulness'): ScoreRecord {
  n++;
  return {
    id: `s${n}`,
    traceId: `t${n}`,
    observationId: null,
    sessionId: null,
    name,
    value,
    stringValue: null,
    dataType: typeof value === 'boolean' ? 'BOOLEAN' : 'NUMERIC',
    source: 'API',
    comment: null,
    timestamp: new Date(tsMs).toISOString(),
    updatedAt: null,
  };
}

describe('monitors', () => {
  let dir: string;
  let file: string;
  let store: Store;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bridge-monitors-'));
    file = join(dir, 'b.db');
    store = new Store(file);
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const record = (batch: Parameters<typeof factsOf>[0]): void => store.write(() => store.monitors.putFacts(P, factsOf(batch)));
  // As a poller that has read this source from long before the windows up to ms.
  const polledTo = (ms: number, source = 'observations'): void => {
    store.putCursor({ ...store.getCursor(P, source), cursorMs: ms });
    store.write(() => store.monitors.noteFactsRead(P, source, 0, ms));
  };
  // As a poll of the running process: a successful one, after the runner started.
  const polledByThisProcess = (ms: number, source = 'observations'): void => {
    polledTo(ms, source);
    store.putCursor({ ...store.getCursor(P, source), lastOkAt: Date.now() + 1 });
  };
  const runnerOf = (monitors: MonitorSpec[]): MonitorRunner =>
    new MonitorRunner({ store, monitors, sinkNames: ['hook'], projects: () => [{ projectId: P, langfuseBaseUrl: '' }], defaultLangfuseBaseUrl: '', logger: createLogger('silent') });
  const outbox = (): Array<{ event_id: string; sink: string; body: string; type: string }> =>
    sqlite(store).prepare('SELECT o.event_id, o.sink, e.body, e.type FROM outbox o JOIN events e ON e.seq = o.event_seq ORDER BY o.seq').all() as Array<{ event_id: string; sink: string; body: string; type: string }>;

  describe('config', () => {
    const base = { name: 'rag-errors', source: 'traces', metric: 'errorRate', window: '15m', op: '>', alert: 0.05, sinks: ['stdout'] };
    const load = (monitors: unknown[], env: Record<string, string> = {}): ReturnType<typeof loadConfig> => {
      const f = join(dir, 'c.json');
      writeFileSync(f, JSON.stringify({ monitors }), { mode: 0o600 });
      return loadConfig({ env: { LANGFUSE_PUBLIC_KEY: 'pk', LANGFUSE_SECRET_KEY: 'sk', ...env }, configFile: f });
    };

    it('refuses monitor events in a rule, pointing at monitors', () => {
      const f = join(dir, 'r.json');
      for (const events of [['monitor.*'], ['monitor.alert'], 'monitor']) {
        writeFileSync(f, JSON.stringify({ sinks: [{ type: 'slack', name: 'slack', url: 'https://hooks.slack.com/services/T/B/x' }], rules: [{ name: 'mon', events, sinks: ['slack'] }] }), { mode: 0o600 });
        expect(configErrorOf(() => loadConfig({ env: { LANGFUSE_PUBLIC_KEY: 'pk', LANGFUSE_SECRET_KEY: 'sk' }, configFile: f }))).toMatch(
          /^rules\[0\].*\.events has "monitor[.a-z*]*": monitor events are not routed by rules; name the sink in the monitor's "sinks" \(see "monitors"\)$/,
        );
      }
    });

    it('accepts any zero delay', () => {
      for (const delay of ['0', '0s', '0m', '0h', ' 00m ']) expect(load([{ ...base, delay }]).monitors[0]!.delayMs).toBe(0);
      expect(configErrorOf(() => load([{ ...base, delay: '-1m' }]))).toMatch(/\.delay must be a duration/);
    });

    it('fills in the contract defaults', () => {
      const [m] = load([base]).monitors;
      expect(m).toMatchObject({ everyMs: MIN, delayMs: 2 * MIN, windowMs: 15 * MIN, minSamples: 1, noData: 'ok', renotifyMinutes: null, warning: null, of: null });
    });

    it('names the monitor and the field in one line', () => {
      expect(configErrorOf(() => load([{ ...base, metric: 'median' }]))).toBe(
        'monitors[0] ("rag-errors").metric must be one of count, errorRate, avg, min, max, sum, p50, p90, p95, p99, got "median"',
      );
      expect(configErrorOf(() => load([{ ...base, window: '15 minutes' }]))).toMatch(/^monitors\[0\] \("rag-errors"\)\.window must be a duration/);
      expect(configErrorOf(() => load([{ ...base, where: { scoreName: 'x' } }]))).toMatch(/^monitors\[0\] \("rag-errors"\)\.where\.scoreName is not carried by traces/);
      expect(configErrorOf(() => load([{ ...base, sinks: ['nope'] }]))).toMatch(/^monitors\[0\] \("rag-errors"\)\.sinks names "nope", which is no configured sink/);
      expect(configErrorOf(() => load([{ ...base, metric: 'avg' }]))).toMatch(/\.of is required with metric "avg"/);
      expect(configErrorOf(() => load([{ ...base, metric: 'p95', of: 'value' }]))).toMatch(/\.of must be one of latency for traces, got "value"/);
      expect(configErrorOf(() => load([base], { BRIDGE_STREAMS: 'generations,scores' }))).toMatch(/^monitors\[0\] \("rag-errors"\)\.source is "traces", whose items come with the traces stream, which BRIDGE_STREAMS/);
      expect(configErrorOf(() => load([base, base]))).toMatch(/^monitors\[1\] \("rag-errors"\)\.name is used by an earlier monitor/);
      expect(configErrorOf(() => load([{ ...base, warning: 0.1 }]))).toMatch(/\.warning must be below alert \(0\.05\)/);
      expect(configErrorOf(() => load([{ ...base, colour: 'red' }]))).toMatch(/has unknown key "colour"; known keys: name, source/);
    });

    it('checks the source stream against every project the monitor applies to', () => {
      const f = join(dir, 'p.json');
      const projects = [
        { name: 'chat', publicKey: 'pk1', secretKey: 'sk1' },
        { name: 'evals', publicKey: 'pk2', secretKey: 'sk2', streams: ['scores'] },
      ];
      const withProjects = (monitor: Record<string, unknown>): ReturnType<typeof loadConfig> => {
        writeFileSync(f, JSON.stringify({ projects, monitors: [monitor] }), { mode: 0o600 });
        return loadConfig({ env: {}, configFile: f });
      };
      expect(configErrorOf(() => withProjects(base))).toBe(
        'monitors[0] ("rag-errors").source is "traces", whose items come with the traces stream, which project "evals" does not poll (projects[1].streams: scores); add traces there or limit the monitor with where.project',
      );
      expect(withProjects({ ...base, where: { project: 'chat' } }).monitors).toHaveLength(1);
      expect(withProjects({ ...base, source: 'scores', metric: 'count' }).monitors).toHaveLength(1);
    });

    it('with projects, takes the top-level streams as the projects\' defaults only: not checked against monitors themselves', () => {
      const f = join(dir, 'p.json');
      const projects = [
        { name: 'chat', publicKey: 'pk1', secretKey: 'sk1', streams: ['traces'] },
        { name: 'rag', publicKey: 'pk2', secretKey: 'sk2', streams: ['traces', 'scores'] },
      ];
      writeFileSync(f, JSON.stringify({ streams: ['scores'], projects, monitors: [base] }), { mode: 0o600 });
      expect(loadConfig({ env: {}, configFile: f }).monitors).toHaveLength(1);
    });

    it('is typed field by field in the JSON Schema', () => {
      const schema = configJsonSchema() as { properties: { monitors: { items: { properties: Record<string, { description?: string; enum?: string[] }> } } } };
      const props = schema.properties.monitors.items.properties;
      expect(props.metric!.enum).toContain('p95');
      expect(props.source!.description).toMatch(/traces, generations, observations, scores/);
      expect(Object.keys(props)).toEqual(expect.arrayContaining(['where', 'window', 'every', 'delay', 'op', 'alert', 'warning', 'minSamples', 'noData', 'renotifyMinutes', 'sinks']));
    });
  });

  it('keeps one compact row per item: an item read again replaces it, a trace keeps its highest level', () => {
    const o = obs(T0 + MIN, { id: 'o-1', traceId: 'tr-1', totalCost: 0.5 });
    record({ observations: [o] });
    record({ observations: [{ ...o, totalCost: 0.7 }] });
    record({ observations: [obs(T0 + 2 * MIN, { id: 'o-2', traceId: 'tr-1', level: 'ERROR' })] });
    record({ observations: [obs(T0 + 3 * MIN, { id: 'o-3', traceId: 'tr-1' })] });
    const gens = spec({ source: 'generations', metric: 'sum', of: 'cost', window: '1h', alert: 1 });
    expect(measureWindow(store, P, gens, T0 + 60 * MIN).aggregate).toEqual({ value: 0.7 + 0.01 + 0.01, samples: 3 });
    const traces = spec({ source: 'traces', metric: 'errorRate', window: '1h', alert: 0.5 });
    expect(measureWindow(store, P, traces, T0 + 60 * MIN).aggregate).toEqual({ value: 1, samples: 1 });
    const lat = spec({ source: 'traces', metric: 'max', of: 'latency', window: '1h', alert: 1 });
    // From the first observation's start to the last one's end.
    expect(measureWindow(store, P, lat, T0 + 60 * MIN).value).toBe(121);
  });

  it('counts tokens as rules do: the total, else prompt + completion, else usageDetails.total', () => {
    record({
      observations: [
        obs(T0 + 1000, { totalTokens: 15 }),
        obs(T0 + 2000, { totalTokens: null, promptTokens: 10, completionTokens: 5 }),
        obs(T0 + 3000, { totalTokens: null, promptTokens: null, completionTokens: null, usageDetails: { total: 7 } }),
      ],
    });
    const m = spec({ source: 'generations', metric: 'sum', of: 'totalTokens', window: '1h', alert: 1000 });
    expect(measureWindow(store, P, m, T0 + 60 * MIN).aggregate).toEqual({ value: 37, samples: 3 });
  });

  it('computes exact percentiles, means of scores (BOOLEAN as 1/0) and filters with the rule conditions', () => {
    record({ observations: Array.from({ length: 100 }, (_, i) => obs(T0 + i * 1000, { endTime: new Date(T0 + i * 1000 + (i + 1) * 100).toISOString(), model: i % 2 ? 'gpt-4o' : 'gpt-4o-mini' })) });
    const p95 = (model: string): MonitorSpec => spec({ source: 'generations', metric: 'p95', of: 'latency', window: '1h', alert: 8, where: { model } });
    // Latencies 0.1..10 s: every other one is gpt-4o (0.2, 0.4, ... 10.0): the 48th of 50 is 9.6.
    expect(measureWindow(store, P, p95('gpt-4o'), T0 + 60 * MIN).aggregate).toEqual({ value: 9.6, samples: 50 });
    expect(measureWindow(store, P, p95('gpt-4o*'), T0 + 60 * MIN).aggregate.samples).toBe(100);
    record({ scores: [score(T0, 0.5), score(T0, 1), score(T0, true, 'helpful'), score(T0, false, 'helpful')] });
    expect(measureWindow(store, P, spec({ source: 'scores', metric: 'avg', of: 'value', window: '1h', op: '<', alert: 0.7, where: { scoreName: 'faithfulness' } }), T0 + 60 * MIN).value).toBe(0.75);
    expect(measureWindow(store, P, spec({ source: 'scores', metric: 'avg', of: 'value', window: '1h', op: '<', alert: 0.7, where: { scoreName: 'helpful' } }), T0 + 60 * MIN).value).toBe(0.5);
    expect(measureWindow(store, P, spec({ source: 'generations', metric: 'count', window: '1h', alert: 1, where: { tags: ['rag', 'other'] } }), T0 + 60 * MIN).value).toBe(0);
  });

  it('fires exactly one alert for an error burst, resolves on recovery, and says so through the outbox with stable ids', () => {
    const m = spec({ name: 'rag-errors', source: 'traces', metric: 'errorRate', window: '5m', every: '1m', delay: '1m', alert: 0.3, minSamples: 5 });
    // Healthy minutes, then a burst of errors, then healthy again.
    for (let i = 0; i < 30; i++) {
      const t = T0 + i * MIN;
      const burst = i >= 10 && i < 13;
      record({ observations: Array.from({ length: 4 }, (_, k) => obs(t + k * 1000, { level: burst && k > 0 ? 'ERROR' : 'DEFAULT' })) });
    }
    const fired: Array<{ severity: string; at: number }> = [];
    for (let i = 5; i <= 30; i++) {
      polledTo(T0 + i * MIN + 61_000);
      const e = evaluateMonitor(store, P, m, 'https://lf.example');
      expect(e).not.toBeNull();
      if (e!.event) fired.push({ severity: e!.severity, at: e!.windowEndMs });
      // Evaluated once: a second look at the same window does nothing.
      expect(evaluateMonitor(store, P, m, 'https://lf.example')).toBeNull();
    }
    expect(fired.map((f) => f.severity)).toEqual(['alert', 'ok']);
    const rows = outbox();
    expect(rows.map((r) => r.type)).toEqual(['monitor.alert', 'monitor.resolved']);
    expect(rows.every((r) => r.sink === 'hook')).toBe(true);
    const alert = JSON.parse(rows[0]!.body) as MonitorEvent;
    expect(alert.id).toBe(eventId(P, 'monitor.alert', 'rag-errors', alert.timestamp));
    expect(alert.timestamp).toBe(new Date(fired[0]!.at).toISOString());
    expect(alert.data).toMatchObject({ projectId: P, monitor: 'rag-errors', severity: 'alert', previousSeverity: 'ok', threshold: 0.3, op: '>', metric: 'errorRate', of: null, samples: 20, window: '5m' });
    expect(alert.data.windowEnd).toBe(alert.timestamp);
    expect(Date.parse(alert.data.windowEnd) - Date.parse(alert.data.windowStart)).toBe(5 * MIN);
    expect(alert.data.url).toMatch(/^https:\/\/lf\.example\/project\/proj-1\/traces\?filter=/);
    expect(alert.data.recent.length).toBeGreaterThan(1);
  });

  it('keeps severity and the last notification across a restart: nothing notified twice, nothing lost', () => {
    const m = spec({ source: 'generations', metric: 'count', window: '1m', every: '1m', delay: '0s', alert: 2 });
    record({ observations: [obs(T0 + 1000), obs(T0 + 2000), obs(T0 + 3000)] });
    polledTo(T0 + MIN);
    expect(evaluateMonitor(store, P, m, '')!.severity).toBe('alert');
    store.close();
    store = new Store(file);
    expect(evaluateMonitor(store, P, m, '')).toBeNull();
    // After downtime, only the latest window: here healthy again, so one resolve.
    polledTo(T0 + 30 * MIN);
    const e = evaluateMonitor(store, P, m, '')!;
    expect(e.windowEndMs).toBe(T0 + 30 * MIN);
    expect(outbox().map((r) => r.type)).toEqual(['monitor.alert', 'monitor.resolved']);
  });

  it('waits for the poll to pass the window end plus the delay, counts late items until then, and never revisits a window', () => {
    const m = spec({ source: 'generations', metric: 'count', window: '1m', every: '1m', delay: '2m', alert: 1 });
    record({ observations: [obs(T0 + 10_000)] });
    polledTo(T0 + 2 * MIN + 59_000);
    expect(evaluateMonitor(store, P, m, '')!.windowEndMs).toBe(T0);
    // Late data for [T0, T0+1m) arrives before the poller passed T0+1m+2m.
    record({ observations: [obs(T0 + 20_000), obs(T0 + 30_000)] });
    polledTo(T0 + 3 * MIN);
    const e = evaluateMonitor(store, P, m, '')!;
    expect(e.windowEndMs).toBe(T0 + MIN);
    expect(e.value).toBe(3);
    expect(e.severity).toBe('alert');
    // Later still: the window is done.
    record({ observations: [obs(T0 + 40_000)] });
    expect(evaluateMonitor(store, P, m, '')).toBeNull();
    expect(store.monitors.getState(P, 'm')!.value).toBe(3);
  });

  it('a lagging poller delays evaluation rather than raising no-data', () => {
    const m = spec({ source: 'generations', metric: 'avg', of: 'latency', window: '5m', every: '5m', delay: '1m', alert: 100, noData: 'alert' });
    record({ observations: [obs(T0 - 4 * MIN), ...[1, 2, 3, 4].map((i) => obs(T0 + i * MIN))] });
    expect(evaluateMonitor(store, P, m, '')).toBeNull();
    // Polled up to just short of the end of [T0, T0+5m) plus the delay: that window waits.
    polledTo(T0 + 5 * MIN + 59_000);
    expect(evaluateMonitor(store, P, m, '')).toMatchObject({ windowEndMs: T0, value: 1, severity: 'ok' });
    expect(evaluateMonitor(store, P, m, '')).toBeNull();
    expect(store.monitors.getState(P, 'm')).toMatchObject({ windowEndMs: T0, severity: 'ok' });
    // Once past it, the window is evaluated on its items: no no-data alert was raised meanwhile.
    polledTo(T0 + 6 * MIN);
    expect(evaluateMonitor(store, P, m, '')).toMatchObject({ windowEndMs: T0 + 5 * MIN, value: 1, severity: 'ok', event: null, aggregate: { samples: 4 } });
    expect(outbox()).toEqual([]);
  });

  it('handles no data as configured: ok, keep, alert; a count of nothing is 0', () => {
    const mk = (noData: string, name: string): MonitorSpec => spec({ name, source: 'scores', metric: 'avg', of: 'value', window: '1m', delay: '0s', op: '<', alert: 0.7, noData, minSamples: 2 });
    record({ scores: [score(T0 + 1000, 0.1), score(T0 + 2000, 0.2)] });
    polledTo(T0 + MIN, 'scores');
    for (const name of ['ok', 'keep', 'alert']) expect(evaluateMonitor(store, P, mk(name, name), '')!.severity).toBe('alert');
    // The next minute has one score: fewer than minSamples is no data.
    record({ scores: [score(T0 + MIN + 1000, 0.1)] });
    polledTo(T0 + 2 * MIN, 'scores');
    expect(evaluateMonitor(store, P, mk('ok', 'ok'), '')).toMatchObject({ value: null, severity: 'ok' });
    expect(evaluateMonitor(store, P, mk('keep', 'keep'), '')).toMatchObject({ value: null, severity: 'alert', event: null });
    expect(evaluateMonitor(store, P, mk('alert', 'alert'), '')).toMatchObject({ value: null, severity: 'alert', event: null });
    const none = spec({ name: 'silence', source: 'traces', metric: 'count', window: '1m', delay: '0s', op: '<', alert: 1 });
    polledTo(T0 + 10 * MIN);
    expect(evaluateMonitor(store, P, none, '')).toMatchObject({ value: 0, severity: 'alert' });
  });

  it('notifies warnings, escalations and re-notifies while still firing after renotifyMinutes', () => {
    const m = spec({ source: 'generations', metric: 'count', window: '1m', delay: '0s', alert: 3, warning: 1, renotifyMinutes: 2 });
    const counts = [2, 4, 4, 4, 4, 0];
    counts.forEach((c, i) => record({ observations: Array.from({ length: c }, (_, k) => obs(T0 + i * MIN + k * 1000)) }));
    const seen: string[] = [];
    counts.forEach((_, i) => {
      polledTo(T0 + (i + 1) * MIN);
      const e = evaluateMonitor(store, P, m, '')!;
      if (e.event) seen.push(`${e.event.event}@${i}`);
    });
    expect(seen).toEqual(['monitor.warning@0', 'monitor.alert@1', 'monitor.alert@3', 'monitor.resolved@5']);
  });

  it('resolves a monitor removed while firing once, and forgets one removed while healthy', () => {
    const firing = spec({ name: 'firing', source: 'generations', metric: 'count', window: '1m', delay: '0s', alert: 0 }, ['hook', 'slack']);
    const quiet = spec({ name: 'quiet', source: 'generations', metric: 'count', window: '1m', delay: '0s', alert: 100 });
    record({ observations: [obs(T0 + 1000)] });
    polledTo(T0 + MIN);
    evaluateMonitor(store, P, firing, 'https://lf.example');
    evaluateMonitor(store, P, quiet, 'https://lf.example');
    // The slack sink went away with the monitor: the resolve goes to the sinks that remain.
    const first = resolveRemoved(store, [], ['hook'], () => 'https://lf.example');
    expect(first.map((e) => [e.event, e.data.monitor, e.data.removed])).toEqual([['monitor.resolved', 'firing', true]]);
    expect(resolveRemoved(store, [], ['hook'], () => 'https://lf.example')).toEqual([]);
    expect(store.monitors.states()).toEqual([]);
    expect(outbox().map((r) => `${r.type}:${r.sink}`)).toEqual(['monitor.alert:hook', 'monitor.alert:slack', 'monitor.resolved:hook']);
  });

  it('resolves a monitor edited while firing where it no longer notifies: on the sinks it dropped, or everywhere when it no longer applies to the project', () => {
    const firing = spec({ name: 'firing', source: 'generations', metric: 'count', window: '1m', delay: '0s', alert: 0 }, ['hook', 'slack']);
    record({ observations: [obs(T0 + 1000)] });
    polledTo(T0 + MIN);
    evaluateMonitor(store, P, firing, 'https://lf.example');
    const fewerSinks = { ...firing, sinks: ['hook'] };
    const first = resolveRemoved(store, [fewerSinks], ['hook', 'slack'], () => 'https://lf.example');
    expect(first.map((e) => [e.event, e.data.monitor, e.data.removed])).toEqual([['monitor.resolved', 'firing', undefined]]);
    expect(resolveRemoved(store, [fewerSinks], ['hook', 'slack'], () => 'https://lf.example')).toEqual([]);
    expect(store.monitors.getState(P, 'firing')).toMatchObject({ severity: 'alert' });
    const elsewhere = { ...fewerSinks, where: { project: ['other-project'] } };
    expect(resolveRemoved(store, [elsewhere], ['hook', 'slack'], () => 'https://lf.example')).toHaveLength(1);
    expect(store.monitors.getState(P, 'firing')).toBeNull();
    expect(outbox().map((r) => `${r.type}:${r.sink}`)).toEqual(['monitor.alert:hook', 'monitor.alert:slack', 'monitor.resolved:slack', 'monitor.resolved:hook']);
  });

  it('check evaluates each monitor per project polled, leaving out a project that never connected', () => {
    const m = spec({ name: 'gens', source: 'generations', metric: 'count', window: '1m', delay: '0s', alert: 5 });
    record({ observations: [obs(T0 + 1000)] });
    polledTo(T0 + MIN);
    store.putCursor({ ...store.getCursor('never-connected', 'observations'), lastOutcome: 'error', lastError: 'refused keys' });
    expect(checkMonitors(file, [m])).toEqual([`✔ monitor gens: count 1 (> 5 alerts) over 1m to ${new Date(T0 + MIN).toISOString()}, 1 item(s): ok`]);
  });

  it('where.project takes a configured project name as well as a project id: evaluated, and kept when the runner starts', () => {
    const byName = spec({ name: 'by-name', source: 'generations', metric: 'count', window: '1m', delay: '0s', alert: 0, where: { project: 'prod*' } });
    const byId = spec({ name: 'by-id', source: 'generations', metric: 'count', window: '1m', delay: '0s', alert: 0, where: { project: P } });
    const other = spec({ name: 'other', source: 'generations', metric: 'count', window: '1m', delay: '0s', alert: 0, where: { project: 'staging' } });
    record({ observations: [obs(Date.now() - 5 * MIN)] });
    const projectName = (id: string): string | null => (id === P ? 'production' : null);
    const runner = new MonitorRunner({ store, monitors: [byName, byId, other], sinkNames: ['hook'], projects: () => [{ projectId: P, langfuseBaseUrl: '' }], projectName, defaultLangfuseBaseUrl: '', logger: createLogger('silent') });
    polledByThisProcess(Date.now());
    expect(runner.tick().map((e) => e.monitor).sort()).toEqual(['by-id', 'by-name']);
    // Still applies by name: kept firing, not resolved as edited away.
    expect(resolveRemoved(store, [byName, byId], ['hook'], () => '', Date.now(), [], projectName)).toEqual([]);
  });

  it('check leaves out the projects a monitor does not apply to', () => {
    const m = spec({ name: 'gens', source: 'generations', metric: 'count', window: '1m', delay: '0s', alert: 5, where: { project: P } });
    record({ observations: [obs(T0 + 1000)] });
    polledTo(T0 + MIN);
    store.putCursor({ ...store.getCursor('proj-2', 'observations'), cursorMs: T0 + MIN });
    expect(checkMonitors(file, [m])).toEqual([`✔ monitor gens (project proj-1): count 1 (> 5 alerts) over 1m to ${new Date(T0 + MIN).toISOString()}, 1 item(s): ok`]);
    // By configured name: the id those keys had when last connected.
    store.meta.setProjectId('pk-prod', P);
    const byName = { ...m, name: 'by-name', where: { project: ['prod*'] } };
    const nowhere = { ...m, name: 'nowhere', where: { project: ['staging'] } };
    expect(checkMonitors(file, [byName, nowhere], Date.now(), [{ name: 'production', publicKey: 'pk-prod' }])).toEqual([
      `✔ monitor by-name (project proj-1): count 1 (> 5 alerts) over 1m to ${new Date(T0 + MIN).toISOString()}, 1 item(s): ok`,
      '✔ monitor nowhere: no data yet (no project read into this database matches where.project)',
    ]);
  });

  it('superseding reads the bodies of the sink\'s open monitor notifications only, not of the other events waiting', () => {
    // A body no JSON reader takes: read, it would fail the lookup.
    store.write(() => store.enqueue([{ id: 'ev-1', type: 'trace.created', ts: new Date(T0).toISOString(), body: 'not json', sinks: ['pd'] }], {}, T0));
    expect(store.write(() => store.monitors.supersedeNotifications(P, 'm', 'pd', 'by-1', T0))).toBe(0);
  });

  it('a superseded notification is not sent again by Resend: the console shows it superseded', () => {
    const at = new Date(T0).toISOString();
    store.write(() => store.enqueue([{ id: 'old-alert', type: 'monitor.alert', ts: at, body: JSON.stringify({ event: 'monitor.alert', data: { projectId: P, monitor: 'm' } }), sinks: ['pd'] }], {}, T0));
    store.write(() => store.monitors.supersedeNotifications(P, 'm', 'pd', 'new-resolve', T0));
    store.write(() => store.enqueue([{ id: 'sent', type: 'trace.created', ts: at, body: '{}', sinks: ['pd'] }], {}, T0));
    sqlite(store).prepare("UPDATE outbox SET status = 'delivered', delivered_at = ? WHERE event_id = 'sent'").run(T0);
    const deps = { store, logger: createLogger('silent'), status: async () => ({}) as never, sinkNames: () => ['pd'], wake: () => undefined };
    const list = renderDeliveries(deps, new URLSearchParams('status=delivered'), false);
    expect(list).toContain('data-action="resend" data-event="sent"');
    expect(list).not.toContain('data-event="old-alert"');
    expect(list).toMatch(/old-alert[\s\S]*superseded/);
    const page = renderEvent(deps, 'old-alert', false).html;
    expect(page).not.toContain('data-action="resend"');
    expect(page).toContain('superseded');
    expect(store.replayDeliveries({ deliveries: [{ eventId: 'old-alert', sink: 'pd' }], resend: true })).toBe(0);
    expect(store.replayDeliveries({ deliveries: [{ eventId: 'sent', sink: 'pd' }], resend: true })).toBe(1);
  });

  it('check on a database of an older schema says `run` upgrades it; status does not hide an error as no monitor run', () => {
    const m = spec({ name: 'gens', source: 'generations', metric: 'count', window: '1m', delay: '0s', alert: 5 });
    sqlite(store).exec('DROP TABLE monitor_state');
    expect(() => monitorStatuses(store, [m])).toThrow(/monitor_state/);
    const version = sqlite(store).pragma('user_version', { simple: true }) as number;
    sqlite(store).pragma(`user_version = ${version - 1}`);
    expect(checkMonitors(file, [m])).toEqual(['✔ monitor gens: not evaluated yet (the database has an older schema, which `langfuse-bridge run` upgrades)']);
  });

  it('check measures a window reaching back before what was read, and says run waits for a full one', () => {
    const m = spec({ name: 'hourly', source: 'generations', metric: 'count', window: '1h', every: '5m', delay: '0s', alert: 5 });
    record({ observations: [obs(T0 + 1000), obs(T0 + 2000)] });
    store.putCursor({ ...store.getCursor(P, 'observations'), cursorMs: T0 + 10 * MIN });
    store.write(() => store.monitors.noteFactsRead(P, 'observations', T0, T0 + 10 * MIN));
    expect(checkMonitors(file, [m])).toEqual([
      `✔ monitor hourly: count 2 (> 5 alerts) over 1h to ${new Date(T0 + 10 * MIN).toISOString()}, 2 item(s): ok; partial window: facts kept since ${new Date(T0).toISOString()}, so \`run\` evaluates windows ending from ${new Date(T0 + 60 * MIN).toISOString()} (\`backfill\` reads further back)`,
    ]);
    expect(evaluateMonitor(store, P, m, '')).toBeNull();
  });

  it('a monitor added later evaluates a full window at once from the facts already kept', () => {
    record({ observations: Array.from({ length: 60 }, (_, i) => obs(T0 + i * MIN, { level: i % 4 === 0 ? 'ERROR' : 'DEFAULT' })) });
    polledTo(T0 + 62 * MIN);
    const m = spec({ source: 'generations', metric: 'errorRate', window: '1h', delay: '2m', alert: 0.2 });
    const e = evaluateMonitor(store, P, m, '')!;
    expect(e).toMatchObject({ windowEndMs: T0 + 60 * MIN, value: 0.25, severity: 'alert' });
    expect(e.aggregate.samples).toBe(60);
  });

  it('the runner evaluates every project on its tick, wakes delivery and prunes facts beyond the horizon', () => {
    const m = spec({ source: 'generations', metric: 'count', window: '10m', delay: '0s', alert: 0 });
    record({ observations: [obs(Date.now() - 3 * 86_400_000), obs(Date.now() - 5 * MIN)] });
    const woke: number[] = [];
    const runner = new MonitorRunner({ store, monitors: [m], sinkNames: ['hook'], projects: () => [{ projectId: P, langfuseBaseUrl: '' }], defaultLangfuseBaseUrl: '', logger: createLogger('silent'), onQueued: (e) => woke.push(e.length) });
    polledByThisProcess(Date.now());
    const done = runner.tick();
    expect(done).toHaveLength(1);
    expect(runner.tick()).toHaveLength(0);
    // The generation and its trace of 5 minutes ago stay; those of 3 days ago are gone.
    expect(sqlite(store).prepare('SELECT kind FROM monitor_facts ORDER BY kind').pluck().all()).toEqual(['observation', 'trace']);
    expect(woke).toEqual([1]);
  });

  it('the runner evaluates a project only once this process has polled it: a cursor left by the previous run may be stale', () => {
    const m = spec({ source: 'generations', metric: 'count', window: '1m', delay: '0s', alert: 0 });
    record({ observations: [obs(T0 + 1000)] });
    polledTo(T0 + MIN);
    store.putCursor({ ...store.getCursor(P, 'observations'), lastOkAt: Date.now() - 1000 });
    const runner = runnerOf([m]);
    expect(runner.tick()).toEqual([]);
    polledByThisProcess(T0 + MIN);
    expect(runner.tick().map((e) => e.windowEndMs)).toEqual([T0 + MIN]);
  });

  it('while running, evaluates every window when every is shorter than a poll; after a start, only the latest', () => {
    const m = spec({ source: 'generations', metric: 'count', window: '10s', every: '10s', delay: '0s', alert: 0 });
    for (let i = 0; i < 12; i++) record({ observations: [obs(T0 + i * 10_000 + 1000)] });
    const runner = runnerOf([m]);
    polledByThisProcess(T0 + 30_000);
    // The first evaluation of this process: the latest window only (downtime).
    expect(runner.tick().map((e) => e.windowEndMs)).toEqual([T0 + 30_000]);
    // A poll every 30 s moves the cursor past three windows: each is evaluated.
    polledByThisProcess(T0 + 60_000);
    expect(runner.tick().map((e) => e.windowEndMs)).toEqual([T0 + 40_000, T0 + 50_000, T0 + 60_000]);
    expect(store.monitors.getState(P, 'm')!.recent).toEqual([1, 1, 1, 1]);
  });

  it('prunes facts counted back from where the polls are, for every project facts are kept for', () => {
    const m = spec({ source: 'generations', metric: 'count', window: '1h', alert: 1000 });
    // A lagging poller: its windows still need facts from before a day ago.
    record({ observations: [obs(T0 + 1000)] });
    polledTo(T0 + 10 * MIN);
    // A project not connected now (say, removed from the config) keeps no facts beyond the horizon.
    store.write(() => store.monitors.putFacts('gone', factsOf({ observations: [obs(Date.now() - 3 * 86_400_000)] })));
    runnerOf([m]).tick();
    const left = sqlite(store).prepare('SELECT project, kind FROM monitor_facts ORDER BY project, kind').all();
    expect(left).toEqual([
      { project: P, kind: 'observation' },
      { project: P, kind: 'trace' },
    ]);
  });

  it('/metrics exports each monitor\'s value and severity per project', async () => {
    const m = spec({ name: 'gen-count', source: 'generations', metric: 'count', window: '1m', delay: '0s', alert: 1, warning: 0 });
    record({ observations: [obs(T0 + 1000)] });
    polledTo(T0 + MIN);
    evaluateMonitor(store, P, m, '');
    const metrics = new Metrics();
    metrics.bindStore(store);
    const text = await metrics.render();
    expect(text).toContain('bridge_monitor_value{project="proj-1",monitor="gen-count"} 1');
    expect(text).toContain('bridge_monitor_severity{project="proj-1",monitor="gen-count"} 1');
  });

  describe('Slack and PagerDuty', () => {
    const event = (severity: 'alert' | 'warning'): MonitorEvent => {
      const m = spec({ name: 'gpt4o-p95', source: 'generations', metric: 'p95', of: 'latency', window: '15m', alert: 8, warning: 5, where: { model: 'gpt-4o' } });
      record({ observations: [obs(T0 + 1000, { endTime: new Date(T0 + 10_500).toISOString() })] });
      // The window [T0 - 3m, T0 + 12m) holds the one generation.
      polledTo(T0 + 14 * MIN);
      const e = evaluateMonitor(store, P, severity === 'warning' ? { ...m, name: 'gpt4o-p95-w', alert: 100 } : m, 'https://lf.example');
      return e!.event!;
    };

    it('PagerDuty: trigger critical on alert, warning on warning, resolve on recovery, one dedup_key per project and monitor', () => {
      const fired = event('alert');
      const a = buildMonitorPagerDutyEvent(fired, 'k'.repeat(32), 'https://lf.example');
      expect(a).toMatchObject({ event_action: 'trigger', dedup_key: 'langfuse-bridge:proj-1:monitor:gpt4o-p95', payload: { severity: 'critical', class: 'monitor.alert', component: 'gpt4o-p95' } });
      expect(a.payload!.summary).toBe('Langfuse monitor gpt4o-p95: p95 latency 9.50 s > 8.00 s over 15m (1 item)');
      expect(buildMonitorPagerDutyEvent(event('warning'), 'k'.repeat(32), 'https://lf.example').payload!.severity).toBe('warning');
      const r = buildMonitorPagerDutyEvent({ ...fired, event: 'monitor.resolved' } as MonitorEvent, 'k'.repeat(32), 'https://lf.example');
      expect(r).toEqual({ routing_key: 'k'.repeat(32), event_action: 'resolve', dedup_key: a.dedup_key });
    });

    it('Slack: value against threshold, the window, the trend and a link into Langfuse', () => {
      const msg = buildMonitorSlackMessage(event('alert'));
      expect(msg.text).toBe('🚨 Alert: gpt4o-p95 — p95 latency 9.50 s > 8.00 s over 15m (1 item)');
      const json = JSON.stringify(msg.blocks);
      expect(json).toContain('View in Langfuse');
      expect(json).toContain('*Threshold*');
      expect(json).toContain('https://lf.example/project/proj-1/observations?filter=');
    });
  });
});
