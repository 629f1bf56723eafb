/**
 * A bridge (`run`, the built CLI) with its ops server on a free port, the console's world: a simulated
 * Langfuse with a few traces and a receiver that refuses some of them for good.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { CliProcess } from './cli.js';
import type { Harness } from './harness.js';
import { waitFor } from './wait.js';

/** The ops server's address, from the bridge's own log line. */
export async function opsUrl(p: CliProcess, timeoutMs = 20_000): Promise<string> {
  return waitFor(
    () => {
      if (!p.running) throw new Error(`the bridge exited: ${p.describe()}`);
      const line = p.logs().find((l) => typeof l.url === 'string' && String(l.msg).startsWith('ops server listening'));
      return line ? String(line.url) : null;
    },
    timeoutMs,
    'the ops server to listen',
    50,
  );
}

export interface ConsoleWorld {
  bridge: CliProcess;
  url: string;
  env: Record<string, string>;
  /** `--config <file>` when the world has a config file (monitors), else nothing: for `status` and `check`. */
  configArgs: string[];
  /** Trace ids whose events the receiver refuses with 500 and an answer. */
  refused: string[];
  delivered: string[];
}

/**
 * Two monitors over the world's traces, counted over the last hour on a 10 s grid with no delay, so
 * both are evaluated within seconds of the first poll: one healthy (`< 1` alerts), one firing (`> 1`).
 */
export const TRACE_MONITORS = [
  { name: 'traces-arrive', source: 'traces', metric: 'count', window: '1h', every: '10s', delay: '0s', op: '<', alert: 1, sinks: ['webhook'] },
  { name: 'trace-flood', source: 'traces', metric: 'count', window: '1h', every: '10s', delay: '0s', op: '>', alert: 1, warning: 0, sinks: ['webhook'] },
];

export const REFUSAL = '{"error":"ticket system unavailable","code":"E_UPSTREAM"}';

/**
 * Starts `run` against h's simulator and receiver: `good` traces delivered, `bad` ones dead after two
 * attempts (the receiver answers 500 and REFUSAL), one trace named `hostileName`; `monitors` go into a
 * config file given with `--config` (they may notify the environment's sink, named `webhook`).
 */
export async function startConsoleWorld(
  h: Harness,
  o: { good?: number; bad?: number; hostileName?: string; monitors?: unknown[]; extra?: Record<string, string | undefined> } = {},
): Promise<ConsoleWorld> {
  const t0 = Date.now() - 60_000;
  const refused: string[] = [];
  const delivered: string[] = [];
  // A trace with one span: with BRIDGE_STREAMS=traces, one trace.created event each.
  const trace = (name: string, ms: number): string => {
    const t = h.sim.addTrace({ name, timestamp: new Date(ms).toISOString() });
    h.sim.addObservation({ traceId: t.id, type: 'SPAN', name: 'root', startTime: new Date(ms).toISOString(), endTime: new Date(ms + 500).toISOString() });
    return t.id;
  };
  for (let i = 0; i < (o.good ?? 3); i++) delivered.push(trace(i === 0 && o.hostileName ? o.hostileName : `rag-answer-${i}`, t0 + i * 1000));
  for (let i = 0; i < (o.bad ?? 2); i++) refused.push(trace(`refused-${i}`, t0 + 10_000 + i * 1000));
  h.rx.setResponder((req) => (refused.some((id) => req.body.includes(id)) ? { status: 500, body: REFUSAL, headers: { 'content-type': 'application/json' } } : undefined));
  const env = h.env({
    BRIDGE_STREAMS: 'traces',
    BRIDGE_POLL_INTERVAL_SECONDS: '1',
    // Monitors evaluate only whole windows of what was read: with them, read back past their 1 h window.
    BRIDGE_START_FROM: new Date(t0 - (o.monitors ? 2 * 3_600_000 : 1000)).toISOString(),
    BRIDGE_RETRY_MAX_ATTEMPTS: '2',
    BRIDGE_HTTP_PORT: '0',
    BRIDGE_HTTP_HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    ...o.extra,
  });
  const configArgs: string[] = [];
  if (o.monitors) {
    const file = path.join(h.dir, 'bridge.json');
    writeFileSync(file, JSON.stringify({ monitors: o.monitors }), { mode: 0o600 });
    configArgs.push('--config', file);
  }
  const bridge = h.spawn(['run', ...configArgs], env);
  const url = await opsUrl(bridge);
  return { bridge, url, env, configArgs, refused, delivered };
}
