/**
 * Dead letters in Redis mode: a job that failed for good closes its outbox row as dead and stays in
 * the queue's failed set; `status` shows both; `replay` retries failed jobs in place and requeues
 * dead rows whose job Redis no longer has; `run --with-worker` then delivers them all.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bridgeEnv, runCli, spawnCli, statusJson } from '../helpers/cli.js';
import { eventKey, expectedEvents, keyDiff, type ParsedEvent } from '../helpers/sim.js';
import { waitFor } from '../helpers/wait.js';
import { REDIS_URL, useQueueSuite } from './helpers.js';
import { skipWithout } from '../helpers/requirements.js';

interface WithQueues {
  sinks: Array<{ name: string; queued: number; delivering: number; retrying: number; delivered: number; dead: number }>;
  queues?: { reachable: boolean; sinks: Array<{ name: string; failed: number; completed: number }> };
  recentDead: Array<{ eventId: string; attempts: number; lastError: string | null }>;
}

describe.skipIf(skipWithout('redis'))('dead letters and replay with Redis', () => {
  const suite = useQueueSuite({ tag: 'replay', seed: 9 });

  it('410 dead-letters; status shows failed jobs; replay retries them and requeues the rest', async () => {
    const { sim, redis, rx, tmp, prefix } = suite;
    const toMs = Date.now() - 60_000;
    const fromMs = toMs - 10 * 60_000;
    sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 12 });
    const expected = expectedEvents(sim, fromMs, toMs);
    const env = bridgeEnv({
      langfuseUrl: sim.url,
      database: path.join(tmp.dir, 'replay.db'),
      webhookUrl: rx.url,
      extra: {
        BRIDGE_REDIS_URL: REDIS_URL,
        BRIDGE_QUEUE_PREFIX: prefix,
        BRIDGE_POLL_INTERVAL_SECONDS: '1',
        BRIDGE_START_FROM: new Date(fromMs).toISOString(),
      },
    });
    const status = async (): Promise<WithQueues> => (await statusJson(env)) as unknown as WithQueues;
    rx.answer = () => 410; // gone: dead-lettered at once
    const daemon = spawnCli(['run', '--with-worker'], env);
    try {
      await waitFor(async () => (await status()).sinks.find((s) => s.name === 'webhook')?.dead === expected.size, 30_000, 'every delivery dead-lettered');
      let st = await status();
      expect(st.sinks.find((s) => s.name === 'webhook')).toMatchObject({ queued: 0, delivering: 0, delivered: 0, dead: expected.size });
      expect(st.queues?.sinks.find((s) => s.name === 'webhook')?.failed).toBe(expected.size);
      expect(st.recentDead[0]?.lastError).toMatch(/410/);
      expect(st.recentDead[0]?.attempts).toBe(1);
      const text = await runCli(['status'], env);
      expect(text.stdout).toMatch(/failed jobs are dead letters: `langfuse-bridge replay` retries them/);

      // Redis forgets three of the failed jobs (trimmed, or lost): their rows are requeued instead.
      const failedKey = `${prefix}:sink-webhook:failed`;
      const forgotten = (await redis.zrange(failedKey, 0, 2)) as string[];
      for (const id of forgotten) {
        await redis.zrem(failedKey, id);
        await redis.del(`${prefix}:sink-webhook:${id}`);
      }

      expect((await runCli(['replay', '--since', new Date(Date.now() + 3_600_000).toISOString()], env)).stdout).toMatch(/^0 dead-lettered/);
      rx.answer = null;
      const hitsBefore = rx.hits.length;
      const replay = await runCli(['replay'], env);
      expect(replay.exit?.code, replay.describe()).toBe(0);
      expect(replay.stdout).toMatch(new RegExp(`^${expected.size} dead-lettered deliveries queued again`));

      await waitFor(async () => (await status()).sinks.find((s) => s.name === 'webhook')?.delivered === expected.size, 30_000, 'every replayed delivery delivered');
      st = await status();
      expect(st.sinks.find((s) => s.name === 'webhook')).toMatchObject({ queued: 0, delivering: 0, dead: 0, delivered: expected.size });
      expect(st.queues?.sinks.find((s) => s.name === 'webhook')?.failed).toBe(0);
      const replayed = rx.hits.slice(hitsBefore).filter((h) => h.at > 0);
      const got = replayed.map((h) => eventKey(JSON.parse(h.body) as ParsedEvent));
      expect(keyDiff(expected.keys(), got)).toEqual({ missing: [], unexpected: [] });
      expect(got.length).toBe(expected.size);
    } finally {
      daemon.kill('SIGTERM');
    }
    const exit = await daemon.wait(12_000);
    expect(exit.code, daemon.describe()).toBe(0);
  });
});
