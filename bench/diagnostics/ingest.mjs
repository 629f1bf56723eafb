// Diagnostic (not part of `npm run bench`): runs one backfill in-process against a simulator child and
// reports where the wall time goes per Store method (calls, total ms), plus SQLite transaction counts.
// What-if knobs, for evidence only (they patch nothing in src/, only this process's objects):
//   DIAG_SYNC=FULL          open the bridge's database with another synchronous setting than its own (NORMAL)
//   DIAG_PRAGMAS='cache_size=-65536'  extra pragmas run when the bridge opens its database
//   DIAG_NO_DELIVERY=1      do not deliver (the Dispatcher does not start): reading + detection + enqueue only
//   DIAG_TRACES=20000       data size (× 5 observations + 1 score)
//   DIAG_KEEP=1             keep the database and print where it is
// Usage: node bench/diagnostics/ingest.mjs
import { Writable } from 'node:stream';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DIST, PUBLIC_KEY, SECRET_KEY, forkHelper, int, removeDir, tempDir, silentLogger } from '../lib/index.mjs';

const HOUR = 3_600_000;
const traces = Number(process.env.DIAG_TRACES ?? 20_000);
const to = Math.floor(Date.now() / HOUR) * HOUR - HOUR;
const from = to - 24 * HOUR;

const { Store } = await import(join(DIST, 'store/index.js'));
const { runBackfill } = await import(join(DIST, 'commands/backfill.js'));
const { loadConfig } = await import(join(DIST, 'config', 'index.js'));

const { Dispatcher } = await import(join(DIST, 'delivery/index.js'));
if (process.env.DIAG_NO_DELIVERY === '1') {
  // Reading, change detection and the outbox writes only: the dispatcher never starts.
  Dispatcher.prototype.start = function () {};
  Dispatcher.prototype.drain = async function () {};
  Dispatcher.prototype.stop = async function () {};
}
const stats = new Map();
function wrap(obj, name, label = name) {
  const orig = obj[name];
  obj[name] = function (...args) {
    const t = performance.now();
    try {
      return orig.apply(this, args);
    } finally {
      const s = stats.get(label) ?? { calls: 0, ms: 0 };
      s.calls++;
      s.ms += performance.now() - t;
      stats.set(label, s);
    }
  };
}
const { Poller } = await import(join(DIST, 'poll/index.js'));
const { LangfuseClient } = await import(join(DIST, 'langfuse/client.js'));
wrap(Poller.prototype, 'commit', 'Poller.commit (detect + write)');
{
  const orig = LangfuseClient.prototype.get;
  LangfuseClient.prototype.get = async function (...args) {
    const t = performance.now();
    try {
      return await orig.apply(this, args);
    } finally {
      const s = stats.get('LangfuseClient.get (async)') ?? { calls: 0, ms: 0 };
      s.calls++;
      s.ms += performance.now() - t;
      stats.set('LangfuseClient.get (async)', s);
    }
  };
}
{
  const orig = Store.prototype.callLedger;
  if (orig) {
    Store.prototype.callLedger = function (...args) {
      const l = orig.apply(this, args);
      wrap(l, 'reserve', 'Store.callLedger.reserve');
      return l;
    };
  }
}
for (const m of ['claim', 'settle', 'enqueue', 'counts', 'pending', 'getSeen', 'putSeen', 'putCursor', 'getCursor', 'nextDueAt', 'recoverStalled', 'write']) wrap(Store.prototype, m, `Store.${m}`);
if (process.env.DIAG_SYNC || process.env.DIAG_PRAGMAS) {
  const pragma = Database.prototype.pragma;
  Database.prototype.pragma = function (src, o) {
    if (/^synchronous\s*=/.test(src)) {
      if (process.env.DIAG_SYNC) src = `synchronous = ${process.env.DIAG_SYNC}`;
      for (const extra of (process.env.DIAG_PRAGMAS ?? '').split(';').filter(Boolean)) pragma.call(this, extra.trim());
    }
    return pragma.call(this, src, o);
  };
}

const sim = forkHelper('sim-server.mjs', { generation: 'v4', publicKey: PUBLIC_KEY, secretKey: SECRET_KEY, batches: [{ from, to, traces, observationsPerTrace: 5, scoresPerTrace: 1 }] });
const ready = await sim.ready;
const dir = tempDir('diag');
try {
  const config = loadConfig({
    env: { LANGFUSE_PUBLIC_KEY: PUBLIC_KEY, LANGFUSE_SECRET_KEY: SECRET_KEY, LANGFUSE_BASE_URL: ready.url, BRIDGE_DATABASE: join(dir, 'b.db'), BRIDGE_MAX_REQUESTS_PER_MINUTE: '100000' },
  });
  const devnull = new Writable({ write: (_c, _e, cb) => cb() });
  let progress = 0;
  const peak = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], m[k]);
  }, 50);
  const t0 = performance.now();
  let pollDone = 0;
  const r = await runBackfill(config, await silentLogger(), {
    fromMs: from,
    toMs: to,
    redeliver: false,
    sink: null,
    alerts: false,
    onProgress: (p) => {
      progress++;
      if (p.source === 'scores' && p.doneMs === p.totalMs) pollDone = performance.now() - t0;
    },
  }, { stdout: devnull });
  const total = performance.now() - t0;
  clearInterval(sampler);
  console.log(`backfill in-process: ${(total / 1000).toFixed(2)} s (reading + committing done at ${(pollDone / 1000).toFixed(2)} s, then draining the outbox), ${int(r.events)} events, ${int(r.delivered)} delivered, ${progress} slices`);
  console.log(`peak memory (sampled every 50 ms): ${Object.entries(peak).map(([k, v]) => `${k} ${(v / 1048576).toFixed(0)} MB`).join(', ')}; maxRSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
  console.log(`synchronous=${process.env.DIAG_SYNC ?? 'NORMAL (the store\'s own)'}${process.env.DIAG_PRAGMAS ? `; ${process.env.DIAG_PRAGMAS}` : ''}`);
  for (const [k, s] of [...stats.entries()].sort((a, b) => b[1].ms - a[1].ms)) {
    console.log(`${k.padEnd(32)} ${String(s.calls).padStart(8)} calls ${s.ms.toFixed(0).padStart(8)} ms  ${(s.ms / s.calls).toFixed(3).padStart(9)} ms/call`);
  }
  const db = new Database(join(dir, 'b.db'), { readonly: true });
  const plan = db
    .prepare(`EXPLAIN QUERY PLAN SELECT event_id, sink FROM outbox WHERE sink = 'stdout' AND status IN ('queued', 'retrying') AND next_at <= 1 AND (NULL IS NULL OR origin = 'x') ORDER BY next_at, seq LIMIT 100`)
    .all();
  console.log('claim subquery plan:', plan.map((p) => p.detail).join(' | '));
  db.close();
} finally {
  await sim.stop();
  if (process.env.DIAG_KEEP) console.log(`kept ${dir}`); else removeDir(dir);
}
