/**
 * The console's JSON API and its access rules, against the built CLI (`run`) with a real database, a
 * simulated Langfuse and a real receiver.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, killLiveChildren, runCli } from '../helpers/cli.js';
import { REFUSAL, TRACE_MONITORS, startConsoleWorld, type ConsoleWorld } from '../helpers/console.js';
import { harness, type Harness } from '../helpers/harness.js';
import { delay, waitFor } from '../helpers/wait.js';
import type { MonitorStatus } from '../../src/monitors/status.js';
import type { DeliveryItem as Item } from '../../src/store/console.js';

async function json<T>(url: string, init: RequestInit = {}): Promise<{ status: number; body: T; headers: Headers }> {
  const r = await fetch(url, init);
  return { status: r.status, body: (await r.json()) as T, headers: r.headers };
}

/** The answer once `ok` holds, or the last one after `ms`: the assertions that follow then say what is wrong. */
async function settled<T>(get: () => Promise<T>, ok: (v: T) => boolean, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v) || Date.now() >= deadline) return v;
    await delay(100);
  }
}

beforeAll(() => assertBuilt());
afterAll(async () => killLiveChildren());

describe('console API without a token, on loopback', () => {
  let h: Harness;
  let w: ConsoleWorld;
  const deliveries = async (q = ''): Promise<{ items: Item[]; nextCursor: string | null }> => (await json<{ items: Item[]; nextCursor: string | null }>(`${w.url}/api/v1/deliveries${q}`)).body;

  beforeAll(async () => {
    h = await harness();
    w = await startConsoleWorld(h, { good: 3, bad: 2 });
    await waitFor(async () => {
      const all = (await deliveries()).items;
      return all.length === 5 && all.filter((d) => d.status === 'dead').length === 2 && all.filter((d) => d.status === 'delivered').length === 3;
    }, 30_000, 'three delivered and two dead');
  }, 60_000);
  afterAll(async () => h?.close());

  it('status is what `status --json` prints; monitors is an empty list', async () => {
    const api = (await json<{ sinks: Array<{ name: string; dead: number; delivered: number }> }>(`${w.url}/api/v1/status`)).body;
    const cli = await runCli(['status', '--json'], w.env, 20_000);
    const printed = JSON.parse(cli.stdout) as { sinks: unknown; database: string };
    expect(Object.keys(api).sort()).toEqual(Object.keys(printed).sort());
    expect(api.sinks).toEqual(printed.sinks);
    expect(api.sinks).toEqual([expect.objectContaining({ name: 'webhook', dead: 2, delivered: 3 })]);
    expect((await json(`${w.url}/api/v1/monitors`)).body).toEqual({ monitors: [] });
  });

  it('deliveries: newest first, filters, cursor paging', async () => {
    const all = (await deliveries()).items;
    expect(all).toHaveLength(5);
    // Newest first: the refused traces were written after the good ones (timestamps later).
    const dead = (await deliveries('?status=dead')).items;
    expect(dead.map((d) => d.traceId).sort()).toEqual([...w.refused].sort());
    for (const d of dead) expect(d).toMatchObject({ sink: 'webhook', status: 'dead', attempts: 2, lastStatusCode: 500, event: 'trace.created', nextAttemptAt: null });
    expect(dead[0]!.lastError).toMatch(/HTTP 500/);
    expect((await deliveries(`?traceId=${w.delivered[1]}`)).items.map((d) => d.traceId)).toEqual([w.delivered[1]]);
    expect((await deliveries('?event=trace.*&status=delivered')).items).toHaveLength(3);
    expect((await deliveries('?event=score.created')).items).toHaveLength(0);
    expect((await deliveries('?sink=nope')).items).toHaveLength(0);
    const p1 = await deliveries('?limit=2');
    const p2 = await deliveries(`?limit=2&cursor=${p1.nextCursor}`);
    const p3 = await deliveries(`?limit=2&cursor=${p2.nextCursor}`);
    expect(p3.nextCursor).toBeNull();
    expect([...p1.items, ...p2.items, ...p3.items].map((d) => d.eventId)).toEqual(all.map((d) => d.eventId));
    const bad = await json<{ error: string }>(`${w.url}/api/v1/deliveries?status=lost`);
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain('status must be one of');
  });

  it('one event: its body as sent and every attempt with the receiver answer', async () => {
    const dead = (await deliveries('?status=dead')).items[0]!;
    const ev = await json<{ id: string; body: string; sinks: Array<{ sink: string; status: string; attempts: Array<{ at: string; durationMs: number; outcome: string; statusCode: number; error: string; response: string }> }> }>(
      `${w.url}/api/v1/events/${dead.eventId}`,
    );
    expect(ev.status).toBe(200);
    const sent = h.rx.requests.filter((r) => r.body.includes(dead.eventId));
    expect(sent.length).toBe(2);
    expect(ev.body.body).toBe(sent[0]!.body);
    expect(ev.body.sinks).toHaveLength(1);
    expect(ev.body.sinks[0]!.attempts.map((a) => [a.outcome, a.statusCode, a.response])).toEqual([
      ['retrying', 500, REFUSAL],
      ['dead', 500, REFUSAL],
    ]);
    expect((await json(`${w.url}/api/v1/events/evt_nothing`)).status).toBe(404);
  });

  it('replay: a cross-origin POST is refused; one dead letter is delivered again and the replay is logged', async () => {
    const [first, second] = (await deliveries('?status=dead')).items;
    const body = JSON.stringify({ deliveries: [{ eventId: first!.eventId, sink: 'webhook' }] });
    const foreign = await json<{ error: string }>(`${w.url}/api/v1/replay`, { method: 'POST', headers: { 'content-type': 'application/json', origin: 'http://evil.example' }, body });
    expect(foreign.status).toBe(403);
    expect((await deliveries('?status=dead')).items).toHaveLength(2);

    h.rx.setResponder(null); // the receiver is fixed
    const ok = await json<{ replayed: number }>(`${w.url}/api/v1/replay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(ok).toMatchObject({ status: 200, body: { replayed: 1 } });
    await waitFor(async () => (await deliveries(`?traceId=${first!.traceId}`)).items[0]?.status === 'delivered', 15_000, 'the replayed delivery');
    expect((await deliveries('?status=dead')).items.map((d) => d.eventId)).toEqual([second!.eventId]);
    const line = w.bridge.logs().find((l) => l.msg === 'console: dead letters replayed');
    expect(line).toMatchObject({ replayed: 1, deliveries: [{ eventId: first!.eventId, sink: 'webhook' }], from: '127.0.0.1' });

    // Every dead letter of the sink since a time; a bad request is one line.
    const all = await json<{ replayed: number }>(`${w.url}/api/v1/replay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sink: 'webhook', since: new Date(Date.now() - 3_600_000).toISOString() }) });
    expect(all.body.replayed).toBe(1);
    await waitFor(async () => (await deliveries('?status=delivered')).items.length === 5, 15_000, 'all five delivered');
    const wrong = await json<{ error: string }>(`${w.url}/api/v1/replay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sink: 'nope' }) });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toContain('configured sink');
  });

  it('resend sends a delivered event again with the same id', async () => {
    const d = (await deliveries(`?traceId=${w.delivered[0]}`)).items[0]!;
    const before = h.rx.requests.filter((r) => r.body.includes(d.eventId)).length;
    const r = await json<{ replayed: number }>(`${w.url}/api/v1/replay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ resend: true, deliveries: [{ eventId: d.eventId, sink: 'webhook' }] }) });
    expect(r.body.replayed).toBe(1);
    await waitFor(() => h.rx.requests.filter((q) => q.body.includes(d.eventId)).length === before + 1, 15_000, 'the resend');
    const again = h.rx.requests.filter((q) => q.body.includes(d.eventId));
    expect(again.at(-1)!.headers['webhook-id']).toBe(d.eventId);
    // Without resend, a delivered one is left alone.
    const r2 = await json<{ replayed: number }>(`${w.url}/api/v1/replay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deliveries: [{ eventId: d.eventId, sink: 'webhook' }] }) });
    expect(r2.body.replayed).toBe(0);
  });

  it('answers only to a loopback host name (no DNS rebinding)', async () => {
    const status = (host: string): Promise<number> =>
      new Promise((resolve, reject) => {
        http.get(`${w.url}/api/v1/monitors`, { headers: { host } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject);
      });
    expect(await status('attacker.example')).toBe(403);
    expect(await status(`localhost:${new URL(w.url).port}`)).toBe(200);
  });
});

describe('console API with monitors', () => {
  let h: Harness;
  let w: ConsoleWorld;
  const monitors = async (): Promise<MonitorStatus[]> => (await json<{ monitors: MonitorStatus[] }>(`${w.url}/api/v1/monitors`)).body.monitors;
  // Each test waits through the answer it checks, so a broken one fails that test, not the suite.
  const evaluated = (all: MonitorStatus[] | undefined): boolean => all?.length === 2 && all.every((m) => m.lastEvaluation !== null && m.value === 2);

  beforeAll(async () => {
    h = await harness();
    w = await startConsoleWorld(h, { good: 2, bad: 0, monitors: TRACE_MONITORS });
  }, 60_000);
  afterAll(async () => h?.close());

  it('/api/v1/monitors lists each monitor with its severity, value, thresholds, window and last evaluation', async () => {
    const all = await settled(monitors, evaluated, 30_000);
    const iso = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) as string;
    const expected: MonitorStatus[] = [
      { monitor: 'traces-arrive', projectId: 'demo-project', severity: 'ok', value: 2, valueText: '2', metric: 'count', of: null, op: '<', alert: 1, warning: null, thresholdText: '< 1', window: '1h', samples: 2, windowEnd: iso, lastEvaluation: iso, configured: true },
      { monitor: 'trace-flood', projectId: 'demo-project', severity: 'alert', value: 2, valueText: '2', metric: 'count', of: null, op: '>', alert: 1, warning: 0, thresholdText: '> 1 (warning 0)', window: '1h', samples: 2, windowEnd: iso, lastEvaluation: iso, configured: true },
    ];
    expect(all).toEqual(expected);
    for (const m of all) {
      const end = Date.parse(m.windowEnd!);
      expect(end % 10_000, 'window ends on the 10 s grid').toBe(0);
      expect(Date.parse(m.lastEvaluation!)).toBeGreaterThanOrEqual(end);
      expect(Date.now() - end).toBeLessThan(60_000);
    }
  });

  it('/api/v1/status carries the monitors as `status --json` prints them', async () => {
    // Windows are evaluated every 10 s: compare with the CLI between two equal answers of the API.
    const api = async (): Promise<MonitorStatus[] | undefined> => (await json<{ monitors?: MonitorStatus[] }>(`${w.url}/api/v1/status`)).body.monitors;
    const seen = await settled(
      async () => {
        const before = await api();
        const p = await runCli(['status', '--json', ...w.configArgs], w.env, 20_000);
        return { before, after: await api(), printed: (JSON.parse(p.stdout) as { monitors: MonitorStatus[] }).monitors };
      },
      (s) => evaluated(s.after) && JSON.stringify(s.before) === JSON.stringify(s.after),
      40_000,
    );
    expect(seen.after?.map((m) => [m.monitor, m.severity, m.value])).toEqual([
      ['traces-arrive', 'ok', 2],
      ['trace-flood', 'alert', 2],
    ]);
    expect(seen.after).toEqual(seen.printed);
  });
});

describe('console access rules', () => {
  it('with BRIDGE_HTTP_TOKEN: bearer or the login cookie; probes stay open', async () => {
    const h = await harness();
    try {
      const token = 'console-token-0123456789abcdef';
      const w = await startConsoleWorld(h, { good: 1, bad: 0, extra: { BRIDGE_HTTP_TOKEN: token, BRIDGE_HTTP_HOST: '0.0.0.0' } });
      const url = w.url;
      expect((await fetch(`${url}/api/v1/status`)).status).toBe(401);
      expect((await fetch(`${url}/api/v1/status`, { headers: { authorization: 'Bearer wrong-token-000000000000' } })).status).toBe(401);
      expect((await fetch(`${url}/api/v1/status`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      const page = await fetch(`${url}/`);
      expect(page.status).toBe(401);
      expect(await page.text()).toContain('name="token"');
      expect((await fetch(`${url}/healthz`)).status).not.toBe(401);
      expect((await fetch(`${url}/metrics`)).status).toBe(200);

      const wrong = await fetch(`${url}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=nope' });
      expect(wrong.status).toBe(401);
      const login = await fetch(`${url}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${token}` });
      expect(login.status).toBe(303);
      const cookie = login.headers.get('set-cookie')!;
      expect(cookie).toMatch(/HttpOnly/);
      expect(cookie).toMatch(/SameSite=Strict/);
      expect(cookie).not.toContain(token);
      const pair = cookie.split(';')[0]!;
      expect((await fetch(`${url}/`, { headers: { cookie: pair } })).status).toBe(200);
      // A POST from another origin is refused even with the cookie.
      const csrf = await fetch(`${url}/api/v1/replay`, { method: 'POST', headers: { cookie: pair, origin: 'http://evil.example', 'content-type': 'application/json' }, body: '{"eventIds":["x"]}' });
      expect(csrf.status).toBe(403);
      const same = await fetch(`${url}/api/v1/replay`, { method: 'POST', headers: { cookie: pair, origin: url, 'content-type': 'application/json' }, body: '{"eventIds":["x"]}' });
      expect(same.status).toBe(200);
    } finally {
      await h.close();
    }
  }, 60_000);

  it('without a token on a non-loopback address: 403 with one line saying to set the token; probes open', async () => {
    const h = await harness();
    try {
      const w = await startConsoleWorld(h, { good: 1, bad: 0, extra: { BRIDGE_HTTP_HOST: '0.0.0.0' } });
      for (const path of ['/', '/api/v1/status', '/deliveries']) {
        const r = await fetch(`${w.url}${path}`);
        expect(r.status).toBe(403);
        const text = await r.text();
        expect(text.trimEnd().split('\n')).toHaveLength(1);
        expect(text).toContain('BRIDGE_HTTP_TOKEN');
      }
      expect((await fetch(`${w.url}/metrics`)).status).toBe(200);
      expect([200, 503]).toContain((await fetch(`${w.url}/healthz`)).status);
      // Said once at start, in the log.
      expect(w.bridge.logs().filter((l) => String(l.msg).startsWith('the console is off on this address'))).toHaveLength(1);
    } finally {
      await h.close();
    }
  }, 60_000);

  it('a short BRIDGE_HTTP_TOKEN exits 2 with one line', async () => {
    const h = await harness();
    try {
      const p = await h.run(['run'], h.env({ BRIDGE_HTTP_TOKEN: 'short', BRIDGE_HTTP_PORT: '0' }));
      expect(p.exit?.code, p.describe()).toBe(2);
      expect(p.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(p.stderr).toContain('BRIDGE_HTTP_TOKEN');
    } finally {
      await h.close();
    }
  });
});
