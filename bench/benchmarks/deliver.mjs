// deliver: N events through the signed webhook sink to a receiver in a child process.
//   baseline   plain undici.request POSTs of the same bodies at the same concurrency (32): the client the
//              sink itself uses, with no signature and no outbox. The target is set against it.
//   bridge     the outbox: events written with store.enqueue, then the Dispatcher draining them through the
//              sink; both timed (a delivery is not done before it was written).
//   sink       the webhook sink's deliver() at that concurrency (signing + its HTTP client, no outbox): shown
//   fetch      Node's global fetch() POSTs, as a team's own forwarder would be written: shown
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { syntheticEvents } from '../lib/events.mjs';
import { DIST, fix, forkHelper, int, log, median, removeDir, secs, silentLogger, status, tempDir } from '../lib/index.mjs';

const { Store } = await import(join(DIST, 'store/index.js'));
const { Dispatcher } = await import(join(DIST, 'delivery/index.js'));
const { createWebhookSink } = await import(join(DIST, 'sinks/webhook.js'));

const SECRET = `whsec_${Buffer.from('langfuse-bridge-bench-secret-32b').toString('base64')}`;

async function pool(n, concurrency, fn) {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) await fn(i);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

export async function runDeliver() {
  const n = Number(process.env.BENCH_DELIVER_EVENTS ?? 20_000);
  const runs = Math.max(1, Number(process.env.BENCH_DELIVER_RUNS ?? 2));
  const receiver = forkHelper('receiver.mjs', {});
  const logger = await silentLogger();
  const dirs = [];
  try {
    const { url } = await receiver.ready;
    const events = syntheticEvents(n);
    const avgBytes = events.reduce((a, e) => a + Buffer.byteLength(e.body), 0) / n;
    const sinkConfig = { type: 'webhook', name: 'webhook', url, secret: SECRET, signature: 'standard', events: ['*'], timeoutSeconds: 10, concurrency: 32 };
    const concurrency = sinkConfig.concurrency;
    log(`deliver: ${int(n)} events, ${int(avgBytes)} bytes average, concurrency ${concurrency}, receiver ${url}`);

    const received = async () => (await receiver.ask({ cmd: 'stats', reset: true }));
    const check = (what, r, signed) => {
      if (r.requests !== n) throw new Error(`${what}: the receiver got ${r.requests} requests, expected ${n}`);
      if (signed && r.signed !== n) throw new Error(`${what}: ${r.signed} of ${n} requests were signed`);
    };

    const baseline = async (count = n) => {
      const agent = new Agent({ connections: concurrency, pipelining: 1, keepAliveTimeout: 30_000 });
      const origin = new URL(url).origin;
      const path = new URL(url).pathname;
      const t = performance.now();
      await pool(count, concurrency, async (i) => {
        const res = await request(`${origin}${path}`, {
          method: 'POST',
          dispatcher: agent,
          headers: { 'content-type': 'application/json', 'user-agent': 'bench-baseline' },
          body: events[i].body,
        });
        await res.body.dump();
        if (res.statusCode !== 200) throw new Error(`baseline: HTTP ${res.statusCode}`);
      });
      const ms = performance.now() - t;
      await agent.close();
      return ms;
    };

    // Node's global fetch, as a team's own forwarder would be written.
    const viaFetch = async (count = n) => {
      const t = performance.now();
      await pool(count, concurrency, async (i) => {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'bench-fetch' }, body: events[i].body });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`fetch: HTTP ${res.status}`);
      });
      return performance.now() - t;
    };

    const bare = async (count = n) => {
      const sink = createWebhookSink(sinkConfig, { userAgent: 'langfuse-bridge/bench' });
      const signal = new AbortController().signal;
      const t = performance.now();
      await pool(count, concurrency, async (i) => {
        const e = events[i];
        const r = await sink.deliver({ eventId: e.id, eventType: e.type, body: e.body, event: e.event, route: null, attempt: 1 }, signal);
        if (!r.ok) throw new Error(`sink: ${r.reason}`);
      });
      const ms = performance.now() - t;
      await sink.close();
      return ms;
    };

    const outbox = async () => {
      const dir = tempDir('deliver');
      dirs.push(dir);
      const store = new Store(join(dir, 'bridge.db'));
      let t = performance.now();
      for (let i = 0; i < n; i += 1000) {
        const batch = events.slice(i, i + 1000).map((e) => ({ id: e.id, type: e.type, ts: e.ts, body: e.body, sinks: ['webhook'] }));
        store.write(() => store.enqueue(batch, { origin: 'bench' }));
      }
      const enqueueMs = performance.now() - t;
      const sink = createWebhookSink(sinkConfig, { userAgent: 'langfuse-bridge/bench' });
      const dispatcher = new Dispatcher(store, [sink], { retry: { maxAttempts: 10, baseSeconds: 5 }, logger, origin: 'bench' });
      t = performance.now();
      dispatcher.start();
      await dispatcher.drain(); // as runBackfill does (polls every 100 ms)
      const ms = performance.now() - t;
      await dispatcher.stop(1000);
      await sink.close();
      const left = store.pending();
      const delivered = store.counts().get('webhook')?.delivered ?? 0;
      store.close();
      removeDir(dir);
      if (left !== 0 || delivered !== n) throw new Error(`outbox: ${delivered} delivered, ${left} pending`);
      return { ms, enqueueMs };
    };

    // Warm-up (JIT, connection pools), on at most the events there are.
    const warm = Math.min(2000, n);
    await viaFetch(warm);
    await baseline(warm);
    await bare(warm);
    await received();

    const F = [];
    const B = [];
    const S = [];
    const O = [];
    for (let i = 0; i < runs; i++) {
      F.push(await viaFetch());
      check('fetch', await received(), false);
      B.push(await baseline());
      check('baseline', await received(), false);
      S.push(await bare());
      check('sink', await received(), true);
      O.push(await outbox());
      check('outbox', await received(), true);
      log(`deliver: run ${i + 1}: fetch ${secs(F[i])}, undici ${secs(B[i])}, sink ${secs(S[i])}, outbox+dispatcher ${secs(O[i].ms)} (+ enqueue ${secs(O[i].enqueueMs)})`);
    }
    const f = Math.min(...F);
    const b = Math.min(...B);
    const s = Math.min(...S);
    // The bridge's time: writing the events to the outbox and delivering them, the best run.
    const best = O.reduce((a, x) => (x.enqueueMs + x.ms < a.enqueueMs + a.ms ? x : a));
    const o = best.enqueueMs + best.ms;
    const ratio = o / b;
    const perSec = n / (o / 1000);
    const result = {
      name: 'deliver',
      ratio,
      fetchRatio: o / f,
      fetchMs: f,
      sinkRatio: s / b,
      baselineMs: b,
      sinkMs: s,
      outboxMs: o,
      drainMs: best.ms,
      enqueueMs: best.enqueueMs,
      perSec,
      baselinePerSec: n / (b / 1000),
      sinkPerSec: n / (s / 1000),
      ok: ratio <= 1.3 && perSec >= 3000,
    };
    result.lines = [
      `deliver  ratio ${fix(ratio)} over undici.request POSTs  (outbox ${secs(o)} = enqueue ${secs(best.enqueueMs)} + drain ${secs(best.ms)}; undici ${secs(b)})  ` +
        `${int(perSec)} signed deliveries/s (undici ${int(result.baselinePerSec)}/s)  target ≤1.3, ≥3,000/s  ${status(result.ok)}`,
      `         bare sink (signing + the same client, no outbox) ${secs(s)} = ${fix(s / b)}× undici; fetch() POSTs ${secs(f)}, ${int(n / (f / 1000))}/s = ${fix(o / f)}× for the outbox  not a target`,
    ];
    return result;
  } finally {
    await receiver.stop();
    for (const d of dirs) removeDir(d);
  }
}
