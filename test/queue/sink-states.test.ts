/**
 * A sink that pushes back or fails, in Redis mode: a 429 pauses the sink's queue for every worker
 * process until Retry-After has passed; failures are told as changes of state, not one line per
 * attempt (nor twice per dead letter); a dead letter reports the attempts the job actually made.
 */
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, bridgeEnv, killLiveChildren, runCli, spawnCli, statusJson, tempDir, type CliProcess } from '../helpers/cli.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { expectedEvents, startSim, type LangfuseSimulator } from '../helpers/sim.js';
import { waitFor } from '../helpers/wait.js';
import { REDIS_URL, cleanPrefix, redisClient, uniquePrefix } from './helpers.js';
import type { Redis } from 'ioredis';

const HOUR = 3_600_000;

describe('sink states with Redis workers', () => {
  let sim: LangfuseSimulator;
  let redis: Redis;
  let rx: Receiver;
  const tmp = tempDir('lfb-queue-');
  const prefixes: string[] = [];

  beforeAll(async () => {
    assertBuilt();
    redis = await redisClient();
    sim = await startSim({ seed: 41 });
    rx = await startReceiver();
  });
  afterEach(async () => {
    await killLiveChildren();
    rx.setResponder(null);
    rx.setMode(null);
    rx.setDelay(0);
  });
  afterAll(async () => {
    for (const p of prefixes) await cleanPrefix(redis, p);
    redis?.disconnect();
    await rx?.stop();
    await sim?.stop();
    tmp.cleanup();
  });

  function setup(tag: string, extra: Record<string, string> = {}): Record<string, string> {
    const prefix = uniquePrefix(tag);
    prefixes.push(prefix);
    return bridgeEnv({
      langfuseUrl: sim.url,
      database: path.join(tmp.dir, `${tag}.db`),
      webhookUrl: rx.url,
      extra: { BRIDGE_REDIS_URL: REDIS_URL, BRIDGE_QUEUE_PREFIX: prefix, ...extra },
    });
  }

  async function startWorkers(env: Record<string, string>, n: number, args: string[] = []): Promise<CliProcess[]> {
    const ws = Array.from({ length: n }, () => spawnCli(['worker', ...args], env));
    await waitFor(() => ws.every((w) => /worker taking jobs/.test(w.stderr)), 15_000, `${n} workers to connect`);
    return ws;
  }

  const warnLines = (p: CliProcess): Array<Record<string, unknown>> => p.logs().filter((l) => l.sink === 'webhook' && Number(l.level) >= 40);

  it('a 429 with Retry-After pauses the queue for every worker process: none calls before it has passed', async () => {
    const toMs = Date.now() - 60_000;
    const fromMs = toMs - 2 * HOUR;
    sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 60 });
    const expected = expectedEvents(sim, fromMs, toMs);
    const env = setup('pause');
    const workers = await startWorkers(env, 2, ['--concurrency', '2', '--log-level', 'debug']);
    rx.setDelay(20);
    let pausedAt = 0;
    rx.setResponder(() => {
      // Once both workers have delivered something: the receiver asks for 2 s of quiet.
      if (pausedAt === 0 && workers.every((w) => w.logs().some((l) => l.msg === 'delivered'))) {
        pausedAt = Date.now();
        return { status: 429, headers: { 'retry-after': '2' } };
      }
      return undefined;
    });
    const bf = await runCli(['backfill', '--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()], env, 60_000);
    expect(bf.exit?.code, bf.describe()).toBe(0);
    expect(pausedAt, 'the 429 came while both workers were delivering').toBeGreaterThan(0);
    const st = await statusJson(env);
    expect(st.sinks.find((s) => s.name === 'webhook')).toMatchObject({ state: 'ok', delivered: expected.size, dead: 0 });

    // The worker that met the 429 says so once, when it read the answer (under load, a while after the
    // receiver sent it: calls the other worker made meanwhile could not know); the other one says so
    // too if it held a job back. From then on, calls already under way land within a moment, and none
    // starts until Retry-After has passed.
    for (const w of workers) expect(warnLines(w).filter((l) => l.state === 'paused').length).toBeLessThanOrEqual(1);
    const paused = workers.flatMap((w) => warnLines(w).filter((l) => l.state === 'paused'));
    expect(paused.length).toBeGreaterThanOrEqual(1);
    const knownAt = Math.min(...paused.map((l) => Number(l.time)));
    const during = rx.requests.filter((r) => r.at > knownAt + 100 && r.at < pausedAt + 2_000);
    expect(during.map((r) => r.at - pausedAt), `calls during the pause (ms after the 429; known after ${knownAt - pausedAt} ms)`).toEqual([]);
    expect(Math.min(...rx.requests.filter((r) => r.at > knownAt + 100).map((r) => r.at)) - pausedAt).toBeGreaterThanOrEqual(2_000);
    const deliveredAfter = workers.map((w) => w.logs().filter((l) => l.msg === 'delivered' && Number(l.time) >= pausedAt + 2_000).length);
    expect(deliveredAfter.every((n) => n > 0), `deliveries per worker after the pause: ${deliveredAfter.join(', ')}`).toBe(true);
    for (const w of workers) w.kill('SIGTERM');
    for (const w of workers) expect((await w.wait(12_000)).code, w.describe()).toBe(0);
  });

  it('a sink answering 500: a handful of lines, not one per attempt; dead letters report the attempts made', async () => {
    const toMs = Date.now() - 60_000;
    const fromMs = toMs - 5 * HOUR;
    const toMs2 = fromMs + HOUR;
    sim.generate({ from: new Date(fromMs), to: new Date(toMs2), traces: 15 });
    const expected = expectedEvents(sim, fromMs, toMs2);
    const env = setup('fail', { BRIDGE_RETRY_MAX_ATTEMPTS: '3' });
    rx.setMode({ status: 500 });
    const [worker] = await startWorkers(env, 1);
    const before = rx.requests.length;
    const bf = await runCli(['backfill', '--from', new Date(fromMs).toISOString(), '--to', new Date(toMs2).toISOString()], env, 60_000);
    expect(bf.exit?.code, bf.describe()).toBe(3);
    expect(rx.requests.length - before).toBe(3 * expected.size);

    const st = await statusJson(env);
    // The worker's record of the sink's state is what status shows in Redis mode.
    expect(st.sinks.find((s) => s.name === 'webhook')).toMatchObject({ state: 'failing', pausedUntil: null, dead: expected.size, delivered: 0 });
    const dead = await runCli(['status', '--json'], env);
    const recent = (JSON.parse(dead.stdout) as { recentDead: Array<{ attempts: number }> }).recentDead;
    expect(recent.length).toBeGreaterThan(0);
    expect(recent.map((d) => d.attempts)).toEqual(recent.map(() => 3));

    // The worker: failing once, then dead letters counted (the first told at once); the relay: one line.
    const lines = warnLines(worker!);
    expect(lines.length, worker!.stderr.slice(-3000)).toBeLessThanOrEqual(3);
    expect(lines[0]).toMatchObject({ state: 'failing' });
    const relayed = bf.logs().filter((l) => l.sink === 'webhook' && Number(l.level) >= 40);
    expect(relayed.length, bf.stderr.slice(-3000)).toBeLessThanOrEqual(2);
    worker!.kill('SIGTERM');
    expect((await worker!.wait(12_000)).code, worker!.describe()).toBe(0);
  });
});
