/**
 * Redis going away while the daemon runs: polling goes on into the SQLite outbox, the relay logs and
 * retries, and catches up when Redis is back — here a private redis-server, killed and started again
 * empty (no persistence), so the jobs handed over before the outage are gone too and are re-enqueued.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, bridgeEnv, killLiveChildren, spawnCli, statusJson, tempDir } from '../helpers/cli.js';
import { startSim, type LangfuseSimulator } from '../helpers/sim.js';
import { delay, waitFor } from '../helpers/wait.js';
import { skipWithout } from '../helpers/requirements.js';
import { SlowReceiver, freePort, startRedis, stopRedis } from './helpers.js';

beforeAll(() => assertBuilt());
afterEach(async () => killLiveChildren());

describe.skipIf(skipWithout('redis-server'))('Redis going away while running', () => {
  let sim: LangfuseSimulator;
  let rx: SlowReceiver;
  let redis: ChildProcess | null = null;
  const tmp = tempDir('lfb-queue-');

  beforeAll(async () => {
    sim = await startSim({ seed: 8 });
    rx = new SlowReceiver();
    await rx.start();
  });
  afterAll(async () => {
    await stopRedis(redis);
    await rx?.stop();
    await sim?.stop();
    tmp.cleanup();
  });

  it('keeps polling into the outbox, then relays and delivers everything when Redis is back', async () => {
    const port = await freePort();
    redis = startRedis(port, tmp.dir);
    const env = bridgeEnv({
      langfuseUrl: sim.url,
      database: path.join(tmp.dir, 'outage.db'),
      webhookUrl: rx.url,
      extra: {
        BRIDGE_REDIS_URL: `redis://127.0.0.1:${port}`,
        BRIDGE_REDIS_WAIT_SECONDS: '10',
        BRIDGE_POLL_INTERVAL_SECONDS: '1',
        BRIDGE_LOOKBACK_SECONDS: '0',
        BRIDGE_START_FROM: new Date(Date.now() - 5 * 60_000).toISOString(),
      },
    });
    const daemon = spawnCli(['run', '--with-worker'], env);
    const stopTrickle = sim.startTrickle({ intervalMs: 100, lateRate: 0 });
    try {
      await waitFor(() => rx.hits.length >= 10, 20_000, 'deliveries through Redis');

      await stopRedis(redis);
      redis = null;
      const before = (await statusJson(env)).sinks.find((s) => s.name === 'webhook')!;
      await delay(3_000);
      // Polling went on: more events wait in the outbox, queued for Redis.
      const during = (await statusJson(env)).sinks.find((s) => s.name === 'webhook')!;
      // (queued, or handed to a Redis client that buffers them until the server is back; the relay
      // closes such rows only when their jobs end)
      expect(during.queued + during.delivering, JSON.stringify({ before, during })).toBeGreaterThan(before.queued + before.delivering);
      expect(daemon.running).toBe(true);
      expect(daemon.stderr).toMatch(/Redis unreachable: events keep going into the outbox/);

      // Back, empty: what it held before the outage is lost and re-enqueued, the rest relayed.
      redis = startRedis(port, tmp.dir);
      stopTrickle();
      // The last rows of the trickle may still be polled after a first drain: wait until the outbox
      // is drained and agrees with the receiver, both read in one snapshot (nothing arrived meanwhile).
      type SinkStatus = { dead: number; delivered: number };
      let st: SinkStatus = { dead: -1, delivered: -1 };
      let idsAtDrain = -1;
      await waitFor(async () => {
        const idsBefore = new Set(rx.ids()).size;
        const s = (await statusJson(env)).sinks.find((x) => x.name === 'webhook')!;
        const idsAfter = new Set(rx.ids()).size;
        if (idsBefore !== idsAfter) return false;
        st = s;
        idsAtDrain = idsAfter;
        return s.queued + s.delivering + s.retrying === 0 && s.delivered > during.delivered && idsAfter === s.delivered;
      }, 30_000, 'the outbox to drain after Redis came back');
      expect(st.dead).toBe(0);
      expect(idsAtDrain).toBe(st.delivered);
      expect(daemon.stderr).toMatch(/Redis reachable again/);
    } finally {
      stopTrickle();
      daemon.kill('SIGTERM');
    }
    const exit = await daemon.wait(12_000);
    expect(exit.code, daemon.describe()).toBe(0);
  });
});
