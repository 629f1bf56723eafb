/**
 * The ops port (BRIDGE_HTTP_PORT) as the CLI serves it: a port that cannot be bound is a setting
 * error (exit 2, one line naming it) in `run` and `worker`, said before anything else starts; and
 * `/metrics` carries the process and runtime metrics next to the bridge's own.
 */
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, bridgeEnv, killLiveChildren, runCli, spawnCli, tempDir } from '../helpers/cli.js';
import { startSim, type LangfuseSimulator } from '../helpers/sim.js';
import { waitFor } from '../helpers/wait.js';

let sim: LangfuseSimulator;
let holder: net.Server;
let taken = 0;
const tmp = tempDir('lfb-ops-');

beforeAll(async () => {
  assertBuilt();
  sim = await startSim({ seed: 5 });
  holder = net.createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  taken = (holder.address() as net.AddressInfo).port;
});
afterEach(async () => killLiveChildren());
afterAll(async () => {
  await new Promise<void>((r) => holder.close(() => r()));
  await sim?.stop();
  tmp.cleanup();
});

function env(name: string, extra: Record<string, string>): Record<string, string> {
  return bridgeEnv({ langfuseUrl: sim.url, database: path.join(tmp.dir, `${name}.db`), extra: { BRIDGE_POLL_INTERVAL_SECONDS: '1', ...extra } });
}

function expectOneLine(stderr: string, port: number): void {
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^langfuse-bridge: BRIDGE_HTTP_PORT ${port} is already in use on 127\\.0\\.0\\.1`));
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe('a taken ops port', () => {
  it('`run` exits 2 with one line naming the port', async () => {
    const p = await runCli(['run', '--log-level', 'warn'], env('run-taken', { BRIDGE_HTTP_PORT: String(taken) }), 30_000);
    expect(p.exit?.code, p.describe()).toBe(2);
    expectOneLine(p.stderr, taken);
    // Nothing polled: the port is checked before anything starts.
    expect(p.stdout).toBe('');
  });

  it('`worker` exits 2 with one line naming the port, before it waits for Redis', async () => {
    // A Redis that never answers, waited for 60 s: the port is said at once, not after the wait.
    const p = await runCli(
      ['worker', '--log-level', 'warn'],
      env('worker-taken', { BRIDGE_HTTP_PORT: String(taken), BRIDGE_REDIS_URL: 'redis://127.0.0.1:1', BRIDGE_REDIS_WAIT_SECONDS: '60' }),
      30_000,
    );
    expect(p.exit?.code, p.describe()).toBe(2);
    expectOneLine(p.stderr, taken);
  });
});

describe('`/metrics` of `run`', () => {
  it('carries the process and runtime metrics next to the bridge’s', async () => {
    const d = spawnCli(['run'], env('run-metrics', { BRIDGE_HTTP_PORT: '0', BRIDGE_STDOUT: 'true' }));
    const url = await waitFor(() => /"url":"(http:[^"]+)"/.exec(d.stderr)?.[1], 20_000, 'the ops server to listen');
    const scrape = async (): Promise<string> => (await fetch(`${url}/metrics`)).text();
    const text = await waitFor(async () => {
      const t = await scrape();
      return /^bridge_polls_total\{source="[a-z]+",outcome="ok"\} [1-9]/m.test(t) && t;
    }, 20_000, 'a first successful poll in /metrics');
    for (const name of ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'bridge_last_successful_poll_age_seconds']) {
      expect(text).toMatch(new RegExp(`^${name}(\\{[^}]*\\})? [0-9.e+-]+$`, 'm'));
    }
    d.kill('SIGTERM');
    expect((await d.wait(15_000)).code, d.describe()).toBe(0);
  });
});
