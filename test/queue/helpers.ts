/**
 * Helpers for the Redis-mode tests: the real Redis on 127.0.0.1:6379 (REDIS_URL to override), a
 * unique key prefix per test, its keys deleted afterwards, and a receiver that can take its time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { deletePrefix } from '../../src/queue/redis.js';
import { assertBuilt, killLiveChildren, tempDir } from '../helpers/cli.js';
import { REDIS_URL } from '../helpers/requirements.js';
import { startSim, type LangfuseSimulator } from '../helpers/sim.js';

export { REDIS_URL };

/** A port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** A Redis of the test's own, to stop and start again (the shared one stays up for other suites). */
export function startRedis(port: number, dir: string): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
}

export async function stopRedis(p: ChildProcess | null): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
}

export function uniquePrefix(tag: string): string {
  return `lfbtest-${tag}-${randomBytes(4).toString('hex')}`;
}

/** A client for assertions and cleanup; fails the test early with a clear message if Redis is not up. */
export async function redisClient(): Promise<Redis> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    throw new Error(`these tests need Redis at ${REDIS_URL} (${(err as Error).message}); start it: redis-server --daemonize yes --port 6379 --save "" --appendonly no`);
  }
  return client;
}

export async function cleanPrefix(client: Redis, prefix: string): Promise<void> {
  await deletePrefix(client, prefix);
}

export interface Hit {
  at: number;
  body: string;
  id: string;
}

/** Records each request; answers 200 after `delayMs` (or what `answer` says). */
export class SlowReceiver {
  readonly hits: Hit[] = [];
  delayMs = 0;
  answer: ((hit: Hit) => number) | null = null;
  private server: http.Server | null = null;
  url = '';

  async start(): Promise<string> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let id = '';
        try {
          id = String((JSON.parse(body) as { id?: string }).id ?? '');
        } catch {
          /* not JSON */
        }
        const hit: Hit = { at: Date.now(), body, id };
        this.hits.push(hit);
        const status = this.answer?.(hit) ?? 200;
        const reply = (): void => {
          res.writeHead(status, { 'content-type': 'text/plain' });
          res.end(status < 300 ? 'ok' : 'no');
        };
        if (this.delayMs > 0) setTimeout(reply, this.delayMs);
        else reply();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    this.server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
    return this.url;
  }

  ids(): string[] {
    return this.hits.map((h) => h.id);
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }
}

/** Counts of each id; returns [ids seen more than once]. */
export function duplicates(ids: string[]): string[] {
  const seen = new Map<string, number>();
  for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1);
  return [...seen].filter(([, n]) => n > 1).map(([id, n]) => `${id}×${n}`);
}

export interface QueueSuite {
  sim: LangfuseSimulator;
  redis: Redis;
  /** The webhook (or Slack) receiver. */
  rx: SlowReceiver;
  tmp: { dir: string; cleanup: () => void };
  /** This suite's key prefix, deleted afterwards. */
  prefix: string;
}

/**
 * The set-up most Redis-mode suites share: a simulated Langfuse, a Redis client, one receiver and a
 * key prefix, created before the suite and removed after it; CLI children are killed after each test.
 * Call inside `describe`; read the fields inside the tests.
 */
export function useQueueSuite(o: { tag: string; seed: number; receiverDelayMs?: number }): QueueSuite {
  const suite = { tmp: tempDir('lfb-queue-'), prefix: uniquePrefix(o.tag) } as QueueSuite;
  beforeAll(async () => {
    assertBuilt();
    suite.redis = await redisClient();
    suite.sim = await startSim({ seed: o.seed });
    suite.rx = new SlowReceiver();
    if (o.receiverDelayMs !== undefined) suite.rx.delayMs = o.receiverDelayMs;
    await suite.rx.start();
  });
  afterEach(async () => killLiveChildren());
  afterAll(async () => {
    if (suite.redis) await cleanPrefix(suite.redis, suite.prefix);
    suite.redis?.disconnect();
    await suite.rx?.stop();
    await suite.sim?.stop();
    suite.tmp.cleanup();
  });
  return suite;
}
