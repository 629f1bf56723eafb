/**
 * Redis loses its data mid-run (every key of the queue prefix deleted, as a restart without
 * persistence or a failover would): the relay finds the open outbox rows whose jobs are gone and
 * enqueues them again, so every event is still delivered at least once.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bridgeEnv, spawnCli, statusJson } from '../helpers/cli.js';
import { eventKey, expectedEvents, keyDiff, type ParsedEvent } from '../helpers/sim.js';
import { waitFor } from '../helpers/wait.js';
import { REDIS_URL, cleanPrefix, useQueueSuite } from './helpers.js';
import { skipWithout } from '../helpers/requirements.js';

const HOUR = 3_600_000;

describe.skipIf(skipWithout('redis'))('Redis that loses its jobs', () => {
  const suite = useQueueSuite({ tag: 'lost', seed: 33, receiverDelayMs: 30 });

  it('re-enqueues the jobs Redis lost; every event arrives at least once', async () => {
    const { sim, redis, rx, tmp, prefix } = suite;
    const toMs = Date.now() - 60_000;
    const fromMs = toMs - 2 * HOUR;
    sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 100, errorRate: 0.1 });
    const expected = expectedEvents(sim, fromMs, toMs);
    const env = bridgeEnv({
      langfuseUrl: sim.url,
      database: path.join(tmp.dir, 'lost.db'),
      webhookUrl: rx.url,
      extra: { BRIDGE_REDIS_URL: REDIS_URL, BRIDGE_QUEUE_PREFIX: prefix },
    });
    const workers = [0, 1, 2].map(() => spawnCli(['worker', '--concurrency', '1'], env));
    await waitFor(() => workers.every((w) => /worker taking jobs/.test(w.stderr)), 15_000, 'three workers to connect');

    const bf = spawnCli(['backfill', '--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()], env);
    await waitFor(() => rx.hits.length >= 40, 30_000, 'some deliveries');
    // Everything Redis held for this bridge is gone: waiting jobs, completed ones, the event stream.
    const keys = await redis.keys(`${prefix}:*`);
    expect(keys.length).toBeGreaterThan(0);
    await cleanPrefix(redis, prefix);
    const lostAt = rx.hits.length;
    expect(lostAt).toBeLessThan(expected.size);

    const exit = await bf.wait(50_000);
    expect(exit.code, bf.describe()).toBe(0);
    expect(bf.stderr).toMatch(/jobs missing from Redis/);
    const got = new Set(rx.hits.map((h) => eventKey(JSON.parse(h.body) as ParsedEvent)));
    expect(keyDiff(expected.keys(), got)).toEqual({ missing: [], unexpected: [] });
    const st = await statusJson(env);
    expect(st.sinks.find((s) => s.name === 'webhook')).toMatchObject({ queued: 0, delivering: 0, dead: 0, delivered: expected.size });
    for (const w of workers) w.kill('SIGTERM');
    for (const w of workers) expect((await w.wait(12_000)).code, w.describe()).toBe(0);
  });
});
