/**
 * `worker` with BRIDGE_HTTP_PORT: `/healthz` answers 200 while Redis answers and its workers run,
 * 503 while Redis is gone, 200 again when it is back; `/metrics` counts its deliveries and carries
 * the process and runtime metrics. A private redis-server, so that it can be killed.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, bridgeEnv, killLiveChildren, runCli, spawnCli, tempDir } from '../helpers/cli.js';
import { startSim, type LangfuseSimulator } from '../helpers/sim.js';
import { skipWithout } from '../helpers/requirements.js';
import { waitFor } from '../helpers/wait.js';
import { SlowReceiver, freePort, startRedis, stopRedis } from './helpers.js';

async function get(url: string): Promise<{ status: number; body: string }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return { status: r.status, body: await r.text() };
}

const HOUR = 3_600_000;

describe.skipIf(skipWithout('redis-server'))('worker health and metrics', () => {
  let sim: LangfuseSimulator;
  let rx: SlowReceiver;
  let redis: ChildProcess | null = null;
  const tmp = tempDir('lfb-queue-');

  beforeAll(async () => {
    assertBuilt();
    sim = await startSim({ seed: 13 });
    rx = new SlowReceiver();
    await rx.start();
  });
  afterEach(async () => killLiveChildren());
  afterAll(async () => {
    await stopRedis(redis);
    await rx?.stop();
    await sim?.stop();
    tmp.cleanup();
  });

  it('answers /healthz by Redis and its workers, and counts its deliveries in /metrics', async () => {
    const redisPort = await freePort();
    redis = startRedis(redisPort, tmp.dir);
    const opsPort = await freePort();
    const env = bridgeEnv({
      langfuseUrl: sim.url,
      database: path.join(tmp.dir, 'w.db'),
      webhookUrl: rx.url,
      extra: { BRIDGE_REDIS_URL: `redis://127.0.0.1:${redisPort}`, BRIDGE_REDIS_WAIT_SECONDS: '10', BRIDGE_QUEUE_PREFIX: 'ops' },
    });
    const worker = spawnCli(['worker'], { ...env, BRIDGE_HTTP_PORT: String(opsPort) });
    const ops = `http://127.0.0.1:${opsPort}`;
    await waitFor(() => /worker taking jobs/.test(worker.stderr), 20_000, 'the worker to connect');

    const up = await get(`${ops}/healthz`);
    expect(up.status, up.body).toBe(200);
    expect(JSON.parse(up.body)).toMatchObject({ status: 'ok', reason: expect.stringMatching(/connected to Redis; 1 worker\(s\) running: webhook/) });

    // A backfill relays to Redis; the worker delivers, and says so in its metrics.
    const toMs = Date.now() - 60_000;
    const fromMs = toMs - HOUR;
    sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 5, errorRate: 0, warningRate: 0 });
    const b = await runCli(['backfill', '--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()], env, 60_000);
    expect(b.exit?.code, b.describe()).toBe(0);
    const metrics = (await get(`${ops}/metrics`)).body;
    const delivered = /^bridge_deliveries_total\{sink="webhook",outcome="delivered",event="trace.created"\} (\d+)$/m.exec(metrics);
    expect(Number(delivered?.[1]), metrics).toBe(5);
    for (const name of ['process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds']) expect(metrics).toMatch(new RegExp(`^${name}(\\{[^}]*\\})? [0-9.e+-]+$`, 'm'));
    expect(metrics).not.toMatch(/bridge_last_successful_poll_age_seconds/);

    // Redis gone: unhealthy. Back: healthy again.
    await stopRedis(redis);
    redis = null;
    const down = await waitFor(async () => {
      const h = await get(`${ops}/healthz`);
      return h.status === 503 && h;
    }, 15_000, '/healthz to answer 503');
    expect(JSON.parse(down.body)).toMatchObject({ status: 'unhealthy', reason: expect.stringMatching(/Redis/) });
    redis = startRedis(redisPort, tmp.dir);
    await waitFor(async () => (await get(`${ops}/healthz`)).status === 200, 20_000, '/healthz to answer 200 again');

    worker.kill('SIGTERM');
    expect((await worker.wait(15_000)).code, worker.describe()).toBe(0);
    // The port is free again.
    await expect(fetch(`${ops}/healthz`)).rejects.toThrow();
  });
});
