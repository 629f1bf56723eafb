// deliver: N events through the signed webhook sink to a receiver in a child process.
//   fetch      plain fetch() POSTs of the same bodies at the same concurrency: the baseline the target is set against
//   baseline   plain undici.request POSTs, the same again: a stricter floor (no signature, no outbox, the fastest client)
//   sink       the webhook sink's deliver() at that concurrency (signing + its HTTP client, no outbox)
//   bridge     the outbox: events written with store.enqueue, the Dispatcher draining them through the sink
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { syntheticEvents } from './events.mjs';
import { DIST, fix, forkHelper, int, log, median, removeDir, secs, silentLogger, status, tempDir } from './lib.mjs';

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
        const r = await sink.deliver({ eventId: e.id, eventType: e.type, body: e.body, event: e.event, attempt: 1 }, signal);
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

    // Warm-up (JIT, connection pools).
    await viaFetch(2000);
    await baseline(2000);
    await bare(2000);
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
    const o = Math.min(...O.map((x) => x.ms));
    const ratio = o / f;
    const strictRatio = o / b;
    const perSec = n / (o / 1000);
    const result = {
      name: 'deliver',
      ratio,
      strictRatio,
      fetchMs: f,
      sinkRatio: s / b,
      baselineMs: b,
      sinkMs: s,
      outboxMs: o,
      enqueueMs: median(O.map((x) => x.enqueueMs)),
      perSec,
      baselinePerSec: n / (b / 1000),
      sinkPerSec: n / (s / 1000),
      ok: ratio <= 1.3 && perSec >= 3000,
    };
    result.lines = [
      `deliver  ratio ${fix(ratio)} over fetch POSTs  (outbox ${secs(o)}, fetch ${secs(f)})  ${int(perSec)} signed deliveries/s (fetch ${int(n / (f / 1000))}/s)  target ≤1.3, ≥3,000/s  ${status(result.ok)}`,
      `         ratio ${fix(strictRatio)} over undici.request POSTs, the stricter floor  (bare sink ${secs(s)} = ${fix(s / b)}×, undici ${secs(b)}, ` +
        `${int(result.baselinePerSec)}/s; enqueue ${int(n / (result.enqueueMs / 1000))}/s)  not a target; ≤1.3 here: ${status(strictRatio <= 1.3)}`,
    ];
    return result;
  } finally {
    await receiver.stop();
    for (const d of dirs) removeDir(d);
  }
}
