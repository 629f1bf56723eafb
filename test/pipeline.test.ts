import { execFile } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { Dispatcher } from '../src/delivery/index.js';
import { backoffMs } from '../src/delivery/retry.js';
import { LangfuseSimulator } from '../demo/simulator.js';
import { createClient } from '../src/commands/shared.js';
import { silentLogger } from '../src/ops/logger.js';
import { Poller } from '../src/poll/index.js';
import { Store } from '../src/store/index.js';
import { memorySink } from './helpers/memory-sink.js';
import { delay, waitFor } from './helpers/wait.js';
import { sqlite } from './helpers/sqlite.js';

const log = silentLogger();
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function tempDb(): string {
  return join(mkdtempSync(join(tmpdir(), 'bridge-test-')), 'b.db');
}

function enqueue(store: Store, n: number, sinks: string[], prefix = 'e'): void {
  store.write(() =>
    store.enqueue(
      Array.from({ length: n }, (_, i) => ({
        id: `${prefix}${i}`,
        type: 'trace.created',
        ts: new Date(0).toISOString(),
        body: JSON.stringify({ id: `${prefix}${i}`, event: 'trace.created', timestamp: new Date(0).toISOString(), data: { projectId: 'p' } }),
        sinks,
      })),
    ),
  );
}

describe('outbox and dispatcher', () => {
  it('two processes on one database never deliver the same row twice', async () => {
    const file = tempDb();
    const a = new Store(file);
    const b = new Store(file);
    cleanups.push(() => a.close(), () => b.close());
    enqueue(a, 500, ['s']);
    const sa = memorySink('s');
    const sb = memorySink('s');
    const da = new Dispatcher(a, [sa], { retry: { maxAttempts: 3, baseSeconds: 0.01 }, logger: log, idleMs: 20 });
    const db = new Dispatcher(b, [sb], { retry: { maxAttempts: 3, baseSeconds: 0.01 }, logger: log, idleMs: 20 });
    da.start();
    db.start();
    await da.drain();
    await da.stop();
    await db.stop();
    const ids = [...sa.got, ...sb.got].map((d) => d.eventId);
    expect(ids).toHaveLength(500);
    expect(new Set(ids).size).toBe(500);
    expect(sa.got.length).toBeGreaterThan(0);
    expect(sb.got.length).toBeGreaterThan(0);
    expect(a.counts().get('s')).toMatchObject({ delivered: 500, queued: 0, dead: 0 });
  });

  it('retries on the schedule, honours Retry-After, dead-letters after the last attempt, and replay requeues', async () => {
    const store = new Store(tempDb());
    cleanups.push(() => store.close());
    enqueue(store, 3, ['flaky', 'gone']);
    let calls = 0;
    const flaky = memorySink('flaky', () => (++calls <= 6 ? { ok: false, retry: true, reason: 'HTTP 503' } : { ok: true }));
    const gone = memorySink('gone', () => ({ ok: false, retry: false, reason: 'HTTP 410' }));
    const d = new Dispatcher(store, [flaky, gone], { retry: { maxAttempts: 5, baseSeconds: 0.01 }, logger: log, idleMs: 10 });
    d.start();
    await d.drain();
    await d.stop();
    expect(store.counts().get('flaky')).toMatchObject({ delivered: 3, dead: 0 });
    expect(gone.got).toHaveLength(3); // one attempt each: 410 is final
    expect(store.counts().get('gone')).toMatchObject({ dead: 3 });
    expect(store.deadLetters('gone', null)[0]).toMatchObject({ sink: 'gone', lastError: 'HTTP 410', attempts: 1 });

    expect(store.replay('gone', null)).toBe(3);
    expect(store.counts().get('gone')).toMatchObject({ queued: 3, dead: 0 });
  });

  it('a delivery that keeps failing is dead after maxAttempts', async () => {
    const store = new Store(tempDb());
    cleanups.push(() => store.close());
    enqueue(store, 1, ['down']);
    const down = memorySink('down', () => ({ ok: false, retry: true, reason: 'ECONNREFUSED' }));
    const d = new Dispatcher(store, [down], { retry: { maxAttempts: 4, baseSeconds: 0.005 }, logger: log, idleMs: 5 });
    d.start();
    await d.drain();
    await d.stop();
    expect(down.got.map((x) => x.attempt)).toEqual([1, 2, 3, 4]);
    expect(store.counts().get('down')).toMatchObject({ dead: 1 });
  });

  it('waits at least Retry-After', async () => {
    const store = new Store(tempDb());
    cleanups.push(() => store.close());
    enqueue(store, 1, ['slow']);
    const times: number[] = [];
    const slow = memorySink('slow', () => {
      times.push(Date.now());
      return times.length === 1 ? { ok: false, retry: true, retryAfterMs: 400, reason: 'HTTP 429' } : { ok: true };
    });
    const d = new Dispatcher(store, [slow], { retry: { maxAttempts: 3, baseSeconds: 0.001 }, logger: log, idleMs: 10 });
    d.start();
    await d.drain();
    await d.stop();
    expect(times).toHaveLength(2);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(390);
  });

  it('backoff grows exponentially with jitter', () => {
    const p = { maxAttempts: 10, baseSeconds: 5 };
    expect(backoffMs(p, 1, () => 1)).toBe(5000);
    expect(backoffMs(p, 3, () => 1)).toBe(20000);
    expect(backoffMs(p, 3, () => 0)).toBe(10000);
    expect(backoffMs(p, 30, () => 1)).toBe(3_600_000);
  });

  it('prunes delivered rows and seen versions past the retention, never pending or dead ones', () => {
    const store = new Store(tempDb());
    cleanups.push(() => store.close());
    enqueue(store, 3, ['s']);
    const day = 86_400_000;
    const old = Date.now() - 40 * day;
    sqlite(store).prepare(`UPDATE outbox SET status = 'delivered', delivered_at = ? WHERE event_id = 'e0'`).run(old);
    sqlite(store).prepare(`UPDATE outbox SET status = 'dead', dead_at = ? WHERE event_id = 'e1'`).run(old);
    sqlite(store).prepare(`UPDATE events SET created_at = ?`).run(old);
    store.putSeen('p', { kind: 'trace', id: 'old', version: null, level: 1, created: 1, detail: null }, old);
    store.putSeen('p', { kind: 'trace', id: 'new', version: null, level: 1, created: 1, detail: null });
    expect(store.prune(30)).toEqual({ outbox: 1, events: 1, seen: 1, attempts: 0 });
    expect(store.counts().get('s')).toMatchObject({ delivered: 0, dead: 1, queued: 1 });
    expect(store.getSeen('p', 'trace', 'new')).toBeDefined();
    expect(store.getSeen('p', 'trace', 'old')).toBeUndefined();
    expect(store.meta.prunedBefore()).toBeGreaterThan(old);
  });

  it('an attempt slower than its lease keeps its row: another process does not take it back and send it again', async () => {
    const file = tempDb();
    const store = new Store(file);
    cleanups.push(() => store.close());
    enqueue(store, 1, ['slow']);
    // The attempt lasts until the test lets it end: it is surely still running when the other process looks.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let startedAt = 0;
    const slow = memorySink('slow', async () => {
      startedAt = Date.now();
      await released;
      return { ok: true };
    });
    const leaseMs = 400;
    const d = new Dispatcher(store, [slow], { retry: { maxAttempts: 3, baseSeconds: 0.01 }, logger: log, idleMs: 10, leaseMs });
    d.start();
    await waitFor(() => startedAt > 0, 10_000, 'the attempt to start');
    await delay(startedAt + 2.5 * leaseMs - Date.now()); // well past the lease the row was claimed with
    // Another process on the file looks for stalled deliveries, as every dispatcher does every few seconds.
    const built = pathToFileURL(resolve('dist/store/index.js')).href;
    const other = await promisify(execFile)(process.execPath, [
      '--input-type=module',
      '-e',
      `const { Store } = await import(${JSON.stringify(built)}); const { default: Database } = await import('better-sqlite3');
       const s = new Store(${JSON.stringify(file)}); const recovered = s.recoverStalled(); s.close();
       const raw = new Database(${JSON.stringify(file)}, { readonly: true });
       const row = raw.prepare('SELECT status, lease_until FROM outbox').get(); raw.close();
       console.log(JSON.stringify({ recovered, status: row.status, leaseAhead: row.lease_until > Date.now() }));`,
    ]);
    // It found the row in flight, its lease renewed into the future, and left it alone.
    expect(JSON.parse(other.stdout) as unknown).toEqual({ recovered: 0, status: 'delivering', leaseAhead: true });
    expect(Date.now() - startedAt, 'the other process looked while the attempt ran').toBeGreaterThan(2 * leaseMs);
    release();
    await d.drain();
    await d.stop();
    expect(slow.got).toHaveLength(1);
    expect(store.counts().get('slow')).toMatchObject({ delivered: 1, retrying: 0, delivering: 0 });
  });

  it('takes back deliveries whose owner died', () => {
    const store = new Store(tempDb());
    cleanups.push(() => store.close());
    enqueue(store, 2, ['s']);
    // Pretend a process on this host, long gone, claimed them.
    sqlite(store).prepare(`UPDATE outbox SET status = 'delivering', owner = ?, lease_until = ?`).run(`${hostname()}:999999:x`, Date.now() + 3_600_000);
    expect(store.recoverStalled()).toBe(2);
    expect(store.counts().get('s')).toMatchObject({ retrying: 2, delivering: 0 });
  });
});

describe('the request ceiling', () => {
  it('is shared by every process on one database, and a 429 pause holds for all of them', () => {
    const file = tempDb();
    const a = new Store(file);
    const b = new Store(file);
    cleanups.push(() => a.close(), () => b.close());
    const own = { max: 3, explicit: true, role: 'live' as const };
    const la = a.callLedger('https://lf|pk', own);
    const lb = b.callLedger('https://lf|pk', own);
    const other = b.callLedger('https://lf|pk-other', own);
    const t0 = 1_000_000;
    expect(la.reserve(60_000, t0).waitMs).toBe(0);
    expect(lb.reserve(60_000, t0 + 10).waitMs).toBe(0);
    expect(la.reserve(60_000, t0 + 20).waitMs).toBe(0);
    // The fourth call in the window waits until the first one leaves it, whichever process asks.
    expect(lb.reserve(60_000, t0 + 30)).toMatchObject({ waitMs: 60_000 - 30 + 1, reason: 'ceiling' });
    expect(other.reserve(60_000, t0 + 30).waitMs).toBe(0); // another project has its own ceiling
    expect(lb.reserve(60_000, t0 + 60_001).waitMs).toBe(0);
    la.pause(t0 + 120_000);
    expect(lb.reserve(60_000, t0 + 100_000)).toMatchObject({ waitMs: 20_000, reason: 'pause' });
  });
});

/** Pretends the last late-data sweep was long ago, so the next poll starts one. */
function dueForSweep(store: Store, project: string, source: string): void {
  store.putCursor({ ...store.getCursor(project, source), lastSweepDoneAt: 0 });
}

describe('polling against the simulated Langfuse', () => {
  async function setup(env: Record<string, string> = {}, gen: 'v4' | 'v2' = 'v4') {
    const sim = new LangfuseSimulator({ generation: gen, seed: 7 });
    const url = await sim.start();
    const store = new Store(tempDb());
    const config = loadConfig({
      env: { LANGFUSE_PUBLIC_KEY: 'pk-lf-demo', LANGFUSE_SECRET_KEY: 'sk-lf-demo', LANGFUSE_BASE_URL: url, BRIDGE_MAX_REQUESTS_PER_MINUTE: '600', ...env },
    });
    const client = createClient(config, log);
    const sink = memorySink('mem');
    const poller = new Poller(store, client, config, [sink], log);
    cleanups.push(async () => {
      store.close();
      await client.close();
      await sim.stop();
    });
    return { sim, store, config, client, sink, poller };
  }

  it('an idle poll costs one call per API resource', async () => {
    const { sim, poller, store } = await setup();
    sim.generate({ from: new Date(Date.now() - 600_000), to: new Date(Date.now() - 1000), traces: 20 });
    await poller.pollOnce();
    expect(store.pending()).toBeGreaterThan(0);
    sim.resetStats();
    await poller.pollOnce();
    const paths = sim.requests.map((r) => r.path.split('?')[0]);
    expect(paths.sort()).toEqual(['/api/public/v2/observations', '/api/public/v3/scores']);
  });

  it('reads the newest data first and sweeps the lookback with the budget left, resuming where it stopped', async () => {
    // Budget: 4 calls a minute at a 30 s interval → 2 calls a poll → 1 per source.
    const { sim, poller, store, client } = await setup({ BRIDGE_MAX_REQUESTS_PER_MINUTE: '4', BRIDGE_LOOKBACK_SECONDS: '1200', BRIDGE_STREAMS: 'traces,generations' });
    // The ceiling itself is tested elsewhere; lift it so only the per-poll budget applies here.
    client.limiter.ceiling = 1000;
    await poller.pollOnce(); // nothing there yet: the cursor moves to now
    const now = Date.now();
    // 3,000 observations land late, all older than the cursor: three pages of 1000 to sweep.
    sim.generate({ from: new Date(now - 1_100_000), to: new Date(now - 60_000), traces: 600, observationsPerTrace: 5, scoresPerTrace: 0 });
    dueForSweep(store, poller.projectId!, 'observations');
    await poller.pollOnce();
    const c1 = store.getCursor(poller.projectId!, 'observations');
    expect(c1.cursorMs).toBeGreaterThanOrEqual(now);
    expect(c1.sweepPosMs).not.toBeNull(); // sweep paused by the budget
    let polls = 1;
    while (store.getCursor(poller.projectId!, 'observations').sweepPosMs !== null && polls < 10) {
      await poller.pollOnce();
      polls++;
    }
    expect(polls).toBeGreaterThan(1);
    expect(store.getCursor(poller.projectId!, 'observations').lastSweepDoneAt).not.toBeNull();
    const traces = sqlite(store).prepare(`SELECT COUNT(*) AS n FROM events WHERE type = 'trace.created'`).get() as { n: number };
    expect(traces.n).toBe(600);
  });

  it('delivers late data that appears within the lookback, once', async () => {
    const { sim, poller, store } = await setup({ BRIDGE_LOOKBACK_SECONDS: '600' });
    await poller.pollOnce();
    // A trace whose timestamp is 5 minutes old but which only now becomes visible.
    const ts = new Date(Date.now() - 300_000).toISOString();
    const t = sim.addTrace({ id: 'late-trace', timestamp: ts, name: 'late' });
    sim.addObservation({ traceId: t.id, id: 'late-obs', type: 'GENERATION', startTime: ts, level: 'ERROR', statusMessage: 'late error' });
    sim.addScore({ id: 'late-score', traceId: t.id, name: 'acc', dataType: 'NUMERIC', value: 0.1, timestamp: ts });
    await poller.pollOnce();
    // Not yet: the poll read only what is newer than its cursor.
    expect((sqlite(store).prepare(`SELECT COUNT(*) AS n FROM events WHERE body LIKE '%late-%'`).get() as { n: number }).n).toBe(0);
    dueForSweep(store, poller.projectId!, 'observations');
    dueForSweep(store, poller.projectId!, 'scores');
    await poller.pollOnce();
    await poller.pollOnce();
    const rows = sqlite(store).prepare(`SELECT type, body FROM events ORDER BY type`).all() as Array<{ type: string; body: string }>;
    const late = rows.filter((r) => r.body.includes('late-'));
    expect(late.map((r) => r.type).sort()).toEqual(['generation.created', 'score.created', 'trace.created', 'trace.updated']);
  });

  it('BRIDGE_START_FROM: the first poll starts there and nothing older is delivered', async () => {
    const start = Date.now() - 120_000;
    const { sim, poller, store } = await setup({ BRIDGE_START_FROM: new Date(start).toISOString(), BRIDGE_LOOKBACK_SECONDS: '600' });
    const at = (ms: number) => new Date(ms).toISOString();
    sim.addTrace({ id: 'before', timestamp: at(start - 60_000) });
    sim.addObservation({ traceId: 'before', id: 'before-obs', type: 'GENERATION', startTime: at(start - 60_000) });
    sim.addTrace({ id: 'after', timestamp: at(start + 60_000) });
    sim.addObservation({ traceId: 'after', id: 'after-obs', type: 'GENERATION', startTime: at(start + 60_000) });
    await poller.pollOnce();
    dueForSweep(store, poller.projectId!, 'observations');
    await poller.pollOnce(); // a late-data sweep must not reach past the start either
    const bodies = (sqlite(store).prepare('SELECT body FROM events').all() as Array<{ body: string }>).map((r) => r.body).join('\n');
    expect(bodies).toContain('after-obs');
    expect(bodies).not.toContain('before');
  });

  it('calls Langfuse through HTTP_PROXY when one is set', async () => {
    const seen: string[] = [];
    // A minimal forward proxy: takes absolute-form requests and passes them on.
    const proxy = http.createServer((req, res) => {
      seen.push(req.url ?? '');
      const target = new URL(req.url ?? '');
      const up = http.request({ host: target.hostname, port: target.port, path: `${target.pathname}${target.search}`, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const saved = { HTTP_PROXY: process.env.HTTP_PROXY, NO_PROXY: process.env.NO_PROXY, no_proxy: process.env.no_proxy };
    process.env.HTTP_PROXY = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    delete process.env.NO_PROXY;
    delete process.env.no_proxy;
    cleanups.push(() => {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
      else process.env[k] = v;
      proxy.closeAllConnections();
      proxy.close();
    });
    const { poller } = await setup(); // the client is built after the proxy is set
    await poller.pollOnce();
    expect(seen.some((u) => u.includes('/api/public/v2/observations'))).toBe(true);
    expect(seen.some((u) => u.includes('/api/public/v3/scores'))).toBe(true);
  });

  it('a poll that fails leaves the cursor where it was', async () => {
    const { sim, poller, store, client } = await setup({ BRIDGE_STREAMS: 'scores' });
    (client as unknown as { opts: { maxAttempts: number; backoffBaseMs: number } }).opts.maxAttempts = 2;
    (client as unknown as { opts: { maxAttempts: number; backoffBaseMs: number } }).opts.backoffBaseMs = 5;
    await poller.pollOnce();
    const before = store.getCursor(poller.projectId!, 'scores');
    sim.injectFaults({ kind: '500' }, { kind: '502-html' }, '/api/public/v3/scores');
    const r = await poller.pollOnce();
    expect(r.failed).toEqual(['scores']);
    const after = store.getCursor(poller.projectId!, 'scores');
    expect(after.cursorMs).toBe(before.cursorMs);
    expect(after.lastOutcome).toBe('error');
    expect(after.lastError).toMatch(/HTTP 502/);
  });

  it('speaks legacy to a v2 server: v1 scores, trace list, BOOLEAN as true/false', async () => {
    const { sim, poller, store } = await setup({}, 'v2');
    const shape = await poller.connect();
    expect(shape).toMatchObject({ generation: 'legacy', scoresPath: '/api/public/scores' });
    const ts = new Date(Date.now() - 60_000).toISOString();
    sim.addTrace({ id: 'tr', timestamp: ts, name: 'n' });
    sim.addObservation({ traceId: 'tr', id: 'ob', type: 'GENERATION', startTime: ts, level: 'WARNING' });
    sim.addScore({ id: 'sc', traceId: 'tr', name: 'ok', dataType: 'BOOLEAN', value: true, timestamp: ts });
    await poller.pollOnce();
    const bodies = (sqlite(store).prepare(`SELECT body FROM events`).all() as Array<{ body: string }>).map((r) => JSON.parse(r.body));
    expect(bodies.map((b) => b.event).sort()).toEqual(['generation.created', 'score.created', 'trace.created', 'trace.updated']);
    expect(bodies.find((b) => b.event === 'score.created').data).toMatchObject({ value: true, stringValue: 'True', dataType: 'BOOLEAN' });
  });
});
