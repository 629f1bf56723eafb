// Redis mode: does delivery scale out with worker processes?
//
// A handler sink that takes 50 ms per event, N events written to the SQLite outbox, relayed to Redis
// by the real relay, delivered by `langfuse-bridge worker --concurrency 1` child processes: first one
// worker, then three. Prints deliveries/s for each and the ratio (target ≥ 2.5×).
//
//   npm run build && node bench/benchmarks/queue-scale.mjs # N=600, Redis at redis://127.0.0.1:6379
//   BENCH_N=1200 BENCH_REDIS_URL=redis://host:6379 BENCH_WORKERS=4 node bench/benchmarks/queue-scale.mjs
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const DIST = join(ROOT, 'dist');
const { loadConfig } = await import(join(DIST, 'config.js'));
const { Store } = await import(join(DIST, 'store', 'index.js'));
const { Relay } = await import(join(DIST, 'queue', 'relay.js'));
const { deletePrefix, plainClient } = await import(join(DIST, 'queue', 'redis.js'));
const { silentLogger } = await import(join(DIST, 'ops', 'logger.js'));

const N = Number(process.env.BENCH_N ?? 600);
const MANY = Number(process.env.BENCH_WORKERS ?? 3);
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const HANDLER_MS = 50;

const dir = mkdtempSync(join(tmpdir(), 'lfb-bench-queue-'));
const handler = join(dir, 'slow-handler.mjs');
writeFileSync(handler, `export default async () => new Promise((r) => setTimeout(r, ${HANDLER_MS}));\n`);

function envFor(prefix, db) {
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

async function round(workers) {
  const prefix = `lfb-bench-${randomBytes(4).toString('hex')}`;
  const db = join(dir, `${prefix}.db`);
  const env = envFor(prefix, db);
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

try {
  console.log(`queue-scale: ${N} events, handler ${HANDLER_MS} ms each, worker --concurrency 1, Redis ${REDIS_URL}`);
  const one = await round(1);
  console.log(`  1 worker : ${(one.ms / 1000).toFixed(2)} s  ${one.perSecond.toFixed(1)} deliveries/s  (ideal ${(1000 / HANDLER_MS).toFixed(0)}/s)`);
  const many = await round(MANY);
  console.log(`  ${MANY} workers: ${(many.ms / 1000).toFixed(2)} s  ${many.perSecond.toFixed(1)} deliveries/s  (ideal ${((MANY * 1000) / HANDLER_MS).toFixed(0)}/s)`);
  const ratio = many.perSecond / one.perSecond;
  const target = MANY === 3 ? 2.5 : MANY * 0.83;
  console.log(`  ratio ${ratio.toFixed(2)}× (target ≥ ${target.toFixed(1)}×) ${ratio >= target ? 'OK' : 'BELOW TARGET'}`);
  process.exitCode = ratio >= target ? 0 : 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
