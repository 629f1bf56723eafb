// queue-scale: Redis mode, does delivery scale out with worker processes?
//
// A handler sink that takes 50 ms per event, N events written to the SQLite outbox, relayed to Redis
// by the real relay, delivered by `langfuse-bridge worker --concurrency 1` child processes: first one
// worker, then three. Shows deliveries/s for each and the ratio (target ≥ 2.5×). Needs a Redis
// (BENCH_REDIS_URL, default redis://127.0.0.1:6379); without one it is skipped, and says so.
//   BENCH_QUEUE_EVENTS=1200 BENCH_QUEUE_WORKERS=4 BENCH_REDIS_URL=redis://host:6379 node bench/run.mjs queue-scale
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST, fix, log, removeDir, status, tempDir } from '../lib/index.mjs';

const { loadConfig } = await import(join(DIST, 'config', 'index.js'));
const { Store } = await import(join(DIST, 'store', 'index.js'));
const { Relay } = await import(join(DIST, 'queue', 'relay.js'));
const { deletePrefix, plainClient } = await import(join(DIST, 'queue', 'redis.js'));
const { silentLogger } = await import(join(DIST, 'ops', 'logger.js'));

const N = Number(process.env.BENCH_QUEUE_EVENTS ?? 600);
const MANY = Number(process.env.BENCH_QUEUE_WORKERS ?? 3);
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const HANDLER_MS = 50;

function envFor(handler, prefix, db) {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LANGFUSE_PUBLIC_KEY: 'pk-lf-bench',
    LANGFUSE_SECRET_KEY: 'sk-lf-bench',
    LANGFUSE_BASE_URL: 'http://127.0.0.1:9',
    BRIDGE_DATABASE: db,
    BRIDGE_HANDLERS: handler,
    BRIDGE_REDIS_URL: REDIS_URL,
    BRIDGE_QUEUE_PREFIX: prefix,
    LOG_LEVEL: 'warn',
  };
}

function startWorker(env) {
  const child = spawn(process.execPath, [join(DIST, 'cli.js'), 'worker', '--concurrency', '1', '--log-level', 'info'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise((r) => child.on('close', (code) => r(code)));
  const ready = new Promise((resolve, reject) => {
    const t = setInterval(() => {
      if (/worker taking jobs/.test(err)) {
        clearInterval(t);
        resolve();
      }
    }, 20);
    exited.then((code) => {
      clearInterval(t);
      reject(new Error(`worker exited ${code}: ${err.slice(-1000)}`));
    });
  });
  return { child, ready, exited, stderr: () => err };
}

function events(tag) {
  const out = [];
  for (let i = 0; i < N; i++) {
    const id = `evt_${createHash('sha1').update(`${tag}:${i}`).digest('hex').slice(0, 32)}`;
    const ev = { id, event: 'trace.created', timestamp: new Date().toISOString(), data: { projectId: 'bench', traceId: `t${i}` } };
    out.push({ id, type: ev.event, ts: ev.timestamp, body: JSON.stringify(ev), sinks: ['handler'] });
  }
  return out;
}

/** Whether a Redis answers at REDIS_URL within a second: null if it does, else why not. */
async function redisProblem() {
  const config = loadConfig({ env: { LANGFUSE_PUBLIC_KEY: 'pk-lf-bench', LANGFUSE_SECRET_KEY: 'sk-lf-bench', BRIDGE_REDIS_URL: REDIS_URL } });
  const client = plainClient(config.queue, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1_000 });
  // connect() rejects with "Connection is closed"; the cause (ECONNREFUSED…) comes as an error event.
  let cause;
  client.on('error', (err) => (cause ??= err));
  try {
    await client.connect();
    await client.ping();
    return null;
  } catch (err) {
    const e = cause ?? err;
    return e?.code ?? e?.message ?? String(e);
  } finally {
    client.disconnect();
  }
}

async function round(dir, handler, workers) {
  const prefix = `lfb-bench-${randomBytes(4).toString('hex')}`;
  const db = join(dir, `${prefix}.db`);
  const env = envFor(handler, prefix, db);
  const config = loadConfig({ env });
  const store = new Store(db);
  store.write(() => store.enqueue(events(prefix)));
  const procs = Array.from({ length: workers }, () => startWorker(env));
  await Promise.all(procs.map((p) => p.ready));
  await new Promise((r) => setTimeout(r, 500)); // BullMQ connections settle
  const relay = new Relay(store, ['handler'], { config, logger: silentLogger(), reconcileMs: 1_000 });
  const began = performance.now();
  relay.start();
  await relay.drain(undefined, 20);
  const ms = performance.now() - began;
  await relay.stop();
  const c = store.counts().get('handler');
  store.close();
  for (const p of procs) p.child.kill('SIGTERM');
  await Promise.all(procs.map((p) => p.exited));
  const client = plainClient(config.queue);
  await deletePrefix(client, prefix);
  client.disconnect();
  if (!c || c.delivered !== N) throw new Error(`expected ${N} delivered, got ${JSON.stringify(c)}`);
  return { workers, ms, perSecond: (N / ms) * 1000 };
}

export async function runQueueScale() {
  const problem = await redisProblem();
  if (problem) {
    log(`queue-scale: no Redis at ${REDIS_URL} (${problem}): skipped`);
    return { name: 'queue-scale', ok: true, skipped: true, line: `queue-scale  skipped: no Redis at ${REDIS_URL} (${problem}); start one, or point BENCH_REDIS_URL at one` };
  }
  const dir = tempDir('queue');
  const handler = join(dir, 'slow-handler.mjs');
  writeFileSync(handler, `export default async () => new Promise((r) => setTimeout(r, ${HANDLER_MS}));\n`);
  try {
    log(`queue-scale: ${N} events, handler ${HANDLER_MS} ms each, worker --concurrency 1, Redis ${REDIS_URL}`);
    const one = await round(dir, handler, 1);
    log(`queue-scale: 1 worker: ${fix(one.ms / 1000)} s, ${fix(one.perSecond, 1)} deliveries/s (ideal ${1000 / HANDLER_MS}/s)`);
    const many = await round(dir, handler, MANY);
    log(`queue-scale: ${MANY} workers: ${fix(many.ms / 1000)} s, ${fix(many.perSecond, 1)} deliveries/s (ideal ${(MANY * 1000) / HANDLER_MS}/s)`);
    const ratio = many.perSecond / one.perSecond;
    const target = MANY === 3 ? 2.5 : MANY * 0.83;
    const ok = ratio >= target;
    return {
      name: 'queue-scale',
      ok,
      events: N,
      workers: MANY,
      onePerSecond: one.perSecond,
      manyPerSecond: many.perSecond,
      ratio,
      line:
        `queue-scale  ${MANY} workers ${fix(ratio)}× one  (1 worker ${fix(one.perSecond, 1)}/s, ${MANY} workers ${fix(many.perSecond, 1)}/s; ` +
        `${N} events, handler ${HANDLER_MS} ms, --concurrency 1)  target ≥${fix(target, 1)}×  ${status(ok)}`,
    };
  } finally {
    removeDir(dir);
  }
}
