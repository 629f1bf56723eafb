/**
 * Redis mode end to end (the built CLI): a backfill relays its outbox rows to Redis and waits until
 * three `worker` processes delivered them — exactly once when nothing fails, at least once when a
 * worker is SIGKILLed in the middle.
 */
import path from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, bridgeEnv, killLiveChildren, runCli, spawnCli, statusJson, tempDir, type CliProcess } from '../helpers/cli.js';
import { eventKey, expectedEvents, keyDiff, startSim, type LangfuseSimulator, type ParsedEvent } from '../helpers/sim.js';
import { waitFor } from '../helpers/wait.js';
import { REDIS_URL, SlowReceiver, cleanPrefix, duplicates, redisClient, uniquePrefix } from './helpers.js';
import { skipWithout } from '../helpers/requirements.js';

const HOUR = 3_600_000;

interface QueueStatusJson {
  reachable: boolean;
  sinks: Array<{ name: string; waiting: number; active: number; delayed: number; completed: number; failed: number; workers: number }>;
}

describe.skipIf(skipWithout('redis'))('backfill with Redis and three worker processes', () => {
  let sim: LangfuseSimulator;
  let redis: Redis;
  const tmp = tempDir('lfb-queue-');
  const prefixes: string[] = [];

  beforeAll(async () => {
    assertBuilt();
    redis = await redisClient();
    sim = await startSim({ seed: 21 });
  });
  afterEach(async () => {
    await killLiveChildren();
  });
  afterAll(async () => {
    for (const p of prefixes) await cleanPrefix(redis, p);
    redis?.disconnect();
    await sim?.stop();
    tmp.cleanup();
  });

  function setup(tag: string, fromMs: number, toMs: number, rx: SlowReceiver, extra: Record<string, string> = {}) {
    const prefix = uniquePrefix(tag);
    prefixes.push(prefix);
    const env = bridgeEnv({
      langfuseUrl: sim.url,
      database: path.join(tmp.dir, `${tag}.db`),
      webhookUrl: rx.url,
      extra: { BRIDGE_REDIS_URL: REDIS_URL, BRIDGE_QUEUE_PREFIX: prefix, ...extra },
    });
    const range = ['--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()];
    return { prefix, env, range };
  }

  async function startWorkers(env: Record<string, string>, args: string[] = []): Promise<CliProcess[]> {
    const ws = [0, 1, 2].map(() => spawnCli(['worker', ...args], env));
    await waitFor(() => ws.every((w) => /worker taking jobs/.test(w.stderr)), 15_000, 'three workers to connect');
    return ws;
  }

  async function stopWorkers(ws: CliProcess[]): Promise<void> {
    for (const w of ws) w.kill('SIGTERM');
    for (const w of ws) {
      if (!w.running) continue;
      const exit = await w.wait(12_000);
      expect(exit.code, w.describe()).toBe(0);
    }
  }

  it('delivers every event exactly once when nothing fails; status shows the queues', async () => {
    const rx = new SlowReceiver();
    await rx.start();
    try {
      const toMs = Date.now() - 60_000;
      const fromMs = toMs - 2 * HOUR;
      sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 120, errorRate: 0.1, warningRate: 0.1 });
      const expected = expectedEvents(sim, fromMs, toMs);
      const { env, range } = setup('once', fromMs, toMs, rx);
      const workers = await startWorkers(env);

      const bf = await runCli(['backfill', ...range], env, 40_000);
      expect(bf.exit?.code, bf.describe()).toBe(0);
      // The backfill returned only after every row was closed, so everything has arrived.
      const events = rx.hits.map((h) => JSON.parse(h.body) as ParsedEvent);
      expect(keyDiff(expected.keys(), events.map(eventKey))).toEqual({ missing: [], unexpected: [] });
      expect(duplicates(rx.ids()), 'events delivered more than once').toEqual([]);
      expect(rx.hits.length).toBe(expected.size);

      const st = (await statusJson(env)) as Awaited<ReturnType<typeof statusJson>> & { queues?: QueueStatusJson };
      const sink = st.sinks.find((s) => s.name === 'webhook')!;
      expect(sink).toMatchObject({ queued: 0, delivering: 0, retrying: 0, dead: 0, delivered: expected.size });
      expect(st.queues?.reachable).toBe(true);
      expect(st.queues?.sinks[0]).toMatchObject({ name: 'webhook', waiting: 0, active: 0, delayed: 0, completed: expected.size, failed: 0, workers: 3 });

      // A second pass finds nothing new to send.
      const again = await runCli(['backfill', ...range], env, 30_000);
      expect(again.exit?.code, again.describe()).toBe(0);
      expect(rx.hits.length).toBe(expected.size);
      await stopWorkers(workers);
    } finally {
      await rx.stop();
    }
  });

  it('a worker SIGKILLed mid-run loses nothing: every event is delivered at least once', async () => {
    const rx = new SlowReceiver();
    rx.delayMs = 25;
    await rx.start();
    try {
      const toMs = Date.now() - 3 * HOUR;
      const fromMs = toMs - 2 * HOUR;
      sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 120, errorRate: 0.1 });
      const expected = expectedEvents(sim, fromMs, toMs);
      // Short locks, so the stalled-job check hands the killed worker's jobs to the others quickly.
      const { env, range } = setup('kill', fromMs, toMs, rx, { BRIDGE_WORKER_LOCK_SECONDS: '2' });
      const workers = await startWorkers(env, ['--concurrency', '4']);

      const bf = spawnCli(['backfill', ...range], env);
      await waitFor(() => rx.hits.length >= expected.size / 4, 30_000, 'a quarter of the deliveries');
      const victim = workers[0]!;
      victim.kill('SIGKILL');
      await victim.exited;
      const exit = await bf.wait(45_000);
      expect(exit.code, bf.describe()).toBe(0);

      const got = new Set(rx.hits.map((h) => eventKey(JSON.parse(h.body) as ParsedEvent)));
      expect(keyDiff(expected.keys(), got)).toEqual({ missing: [], unexpected: [] });
      const st = await statusJson(env);
      expect(st.sinks.find((s) => s.name === 'webhook')).toMatchObject({ queued: 0, delivering: 0, dead: 0, delivered: expected.size });
      await stopWorkers(workers.slice(1));
    } finally {
      await rx.stop();
    }
  });
});
