import { describe, it, expect } from 'vitest';
import { LangfuseSimulator, type SimulatorOptions } from '../demo/simulator.js';

const AUTH = `Basic ${Buffer.from('pk-lf-demo:sk-lf-demo').toString('base64')}`;
const T0 = Date.parse('2026-11-27T00:00:00.000Z');
const HOUR = 3_600_000;

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

async function get(sim: LangfuseSimulator, path: string, auth: string | null = AUTH): Promise<Answer> {
  const res = await fetch(sim.url + path, { headers: auth ? { authorization: auth } : {} });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

async function withSim(opts: SimulatorOptions, fn: (sim: LangfuseSimulator) => Promise<void>): Promise<void> {
  const sim = new LangfuseSimulator(opts);
  await sim.start();
  try {
    await fn(sim);
  } finally {
    await sim.stop();
  }
}

/** newest first, then id descending */
function expectDescOrder(items: Array<{ id: string; t: string }>): void {
  for (let i = 1; i < items.length; i++) {
    const a = items[i - 1]!;
    const b = items[i]!;
    const ta = Date.parse(a.t);
    const tb = Date.parse(b.t);
    const ok = ta > tb || (ta === tb && a.id > b.id);
    if (!ok) throw new Error(`order broken at ${i}: ${a.t}/${a.id} then ${b.t}/${b.id}`);
  }
}

async function pageAll(sim: LangfuseSimulator, base: string): Promise<{ items: any[]; pages: number; cursors: string[] }> {
  const items: any[] = [];
  const cursors: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const sep = base.includes('?') ? '&' : '?';
    const r = await get(sim, cursor ? `${base}${sep}cursor=${encodeURIComponent(cursor)}` : base);
    expect(r.status).toBe(200);
    items.push(...r.json.data);
    cursor = r.json.meta.cursor ?? undefined;
    if (cursor) cursors.push(cursor);
    pages++;
  } while (cursor);
  return { items, pages, cursors };
}

const CORE = ['id', 'traceId', 'startTime', 'endTime', 'projectId', 'parentObservationId', 'type'];
const BASIC = [
  'name',
  'level',
  'statusMessage',
  'version',
  'environment',
  'bookmarked',
  'public',
  'userId',
  'sessionId',
  'isRootObservation',
];
const SCORE_V3_CORE = [
  'id',
  'projectId',
  'name',
  'value',
  'dataType',
  'source',
  'timestamp',
  'environment',
  'createdAt',
  'updatedAt',
];
// key lists as a real v2.95.12 server answered (reference/langfuse-v2-responses)
const V2_TRACE_KEYS = [
  'id', 'htmlPath', 'timestamp', 'name', 'input', 'output', 'projectId', 'sessionId', 'metadata', 'externalId',
  'userId', 'release', 'version', 'bookmarked', 'createdAt', 'updatedAt', 'public', 'tags', 'totalCost', 'latency',
  'observations', 'scores',
];
const V2_OBS_KEYS = [
  'id', 'name', 'startTime', 'endTime', 'parentObservationId', 'type', 'metadata', 'model', 'input', 'output', 'level',
  'statusMessage', 'completionStartTime', 'version', 'projectId', 'traceId', 'modelParameters', 'modelId', 'inputPrice',
  'outputPrice', 'totalPrice', 'calculatedInputCost', 'calculatedOutputCost', 'calculatedTotalCost', 'latency',
  'promptId', 'promptName', 'promptVersion', 'createdAt', 'updatedAt', 'timeToFirstToken', 'unit', 'promptTokens',
  'completionTokens', 'totalTokens', 'usage',
];
const V2_SCORE_KEYS = [
  'id', 'timestamp', 'projectId', 'name', 'source', 'authorUserId', 'comment', 'traceId', 'observationId', 'configId',
  'createdAt', 'updatedAt', 'queueId', 'value', 'stringValue', 'dataType', 'trace',
];

function expect404Html(r: Answer): void {
  expect(r.status).toBe(404);
  expect(r.headers.get('content-type')).toMatch(/^text\/html/);
  expect(r.text).toContain('This page could not be found.');
}

describe('v4 cursor endpoints', () => {
  it('pages /v2/observations exactly once, newest startTime first, with inclusive from / exclusive to', async () => {
    await withSim({ seed: 1 }, async (sim) => {
      const g = sim.generate({ from: new Date(T0), to: new Date(T0 + HOUR), traces: 200 });
      expect(g.observations).toBe(1000);
      const { items, pages, cursors } = await pageAll(sim, '/api/public/v2/observations?fields=core&limit=77');
      expect(items.length).toBe(1000);
      expect(new Set(items.map((o) => o.id)).size).toBe(1000);
      expect(pages).toBe(13);
      for (const c of cursors) expect(c).toMatch(/^[A-Za-z0-9+/=]+$/);
      expectDescOrder(items.map((o) => ({ id: o.id, t: o.startTime })));
      for (const o of items.slice(0, 20)) expect(Object.keys(o).sort()).toEqual([...CORE].sort());

      // window: from an item's exact startTime (included) to another's (excluded)
      const from = items[700]!.startTime as string;
      const to = items[300]!.startTime as string;
      const expected = items.filter((o) => o.startTime >= from && o.startTime < to).map((o) => o.id);
      const win = await pageAll(
        sim,
        `/api/public/v2/observations?fields=core&limit=100&fromStartTime=${from}&toStartTime=${to}`,
      );
      expect(win.items.map((o) => o.id)).toEqual(expected);
      expect(win.items.some((o) => o.startTime === from)).toBe(true);
      expect(win.items.some((o) => o.startTime === to)).toBe(false);

      // default limit 50, > 1000 rejected
      const def = await get(sim, '/api/public/v2/observations');
      expect(def.json.data.length).toBe(50);
      expect(typeof def.json.meta.cursor).toBe('string');
      const big = await get(sim, '/api/public/v2/observations?limit=1001');
      expect(big.status).toBe(400);
      expect(big.json.message).toBeTypeOf('string');
      const bad = await get(sim, '/api/public/v2/observations?fromStartTime=yesterday');
      expect(bad.status).toBe(400);
      expect(bad.json).toMatchObject({ message: expect.any(String), error: expect.anything() });

      // filters
      const gens = await pageAll(sim, '/api/public/v2/observations?type=GENERATION&limit=1000');
      expect(gens.items.length).toBe(g.generations);
      expect(gens.items.every((o) => o.type === 'GENERATION')).toBe(true);
      const errors = await pageAll(sim, '/api/public/v2/observations?level=ERROR&limit=1000');
      expect(errors.items.length).toBe(g.errorTraces);
      expect(errors.items.every((o) => o.level === 'ERROR' && typeof o.statusMessage === 'string')).toBe(true);
      const traceId = items[0]!.traceId as string;
      const one = await get(sim, `/api/public/v2/observations?traceId=${traceId}&limit=1000`);
      expect(one.json.data.length).toBe(5);
      expect(one.json.meta.cursor ?? undefined).toBeUndefined();
    });
  });

  it('returns exactly the requested field groups', async () => {
    await withSim({ seed: 2 }, async (sim) => {
      const trace = sim.addTrace({ name: 'chat', timestamp: new Date(T0).toISOString(), tags: ['a'], release: 'r1', userId: 'u1' });
      sim.addObservation({
        traceId: trace.id,
        type: 'GENERATION',
        name: 'llm',
        startTime: new Date(T0 + 10).toISOString(),
        endTime: new Date(T0 + 1010).toISOString(),
        model: 'gpt-4o-mini',
        promptTokens: 100,
        completionTokens: 20,
        input: [{ role: 'user', content: 'hi' }],
        output: { role: 'assistant', content: 'hello' },
      });
      const def = await get(sim, '/api/public/v2/observations');
      expect(Object.keys(def.json.data[0]).sort()).toEqual([...CORE, ...BASIC].sort());
      expect(def.json.data[0]).toMatchObject({ userId: 'u1', isRootObservation: true, projectId: 'demo-project' });

      const all = await get(
        sim,
        '/api/public/v2/observations?fields=core,usage,model,trace_context,io,time,metrics,prompt,metadata',
      );
      const o = all.json.data[0];
      expect(o.name).toBeUndefined();
      expect(o.level).toBeUndefined();
      expect(o.usageDetails).toEqual({ input: 100, output: 20, total: 120 });
      expect(o.costDetails.total).toBeCloseTo(100 * 1.5e-7 + 20 * 6e-7, 12);
      expect(o.totalCost).toBeCloseTo(o.costDetails.total, 12);
      expect(o).toMatchObject({ providedModelName: 'gpt-4o-mini', tags: ['a'], release: 'r1', traceName: 'chat' });
      expect(typeof o.internalModelId).toBe('string');
      expect(o.modelParameters).toBeTypeOf('object');
      expect(JSON.parse(o.input)).toEqual([{ role: 'user', content: 'hi' }]);
      expect(typeof o.output).toBe('string');
      expect(typeof o.createdAt).toBe('string');
      expect(typeof o.updatedAt).toBe('string');
      expect('completionStartTime' in o).toBe(true);
      expect(o.latency).toBe(1);

      const usageOnly = await get(sim, '/api/public/v2/observations?fields=usage');
      const u = usageOnly.json.data[0];
      for (const k of ['input', 'output', 'tags', 'providedModelName', 'createdAt', 'name']) expect(k in u).toBe(false);
      expect(Object.keys(u).sort()).toEqual([...CORE, 'usageDetails', 'costDetails', 'totalCost', 'usagePricingTierName'].sort());

      expect((await get(sim, '/api/public/v2/observations?fields=core,bogus')).status).toBe(400);
    });
  });

  it('pages /v3/scores exactly once, newest first, with field groups and a base64url cursor', async () => {
    await withSim({ seed: 3 }, async (sim) => {
      const g = sim.generate({ from: new Date(T0), to: new Date(T0 + HOUR), traces: 200, scoresPerTrace: 2 });
      expect(g.scores).toBe(400);
      const { items, pages, cursors } = await pageAll(sim, '/api/public/v3/scores?limit=100');
      expect(items.length).toBe(400);
      expect(new Set(items.map((s) => s.id)).size).toBe(400);
      expect(pages).toBe(4);
      for (const c of cursors) expect(c).toMatch(/^[A-Za-z0-9_-]+$/);
      expectDescOrder(items.map((s) => ({ id: s.id, t: s.timestamp })));
      for (const s of items) {
        expect(Object.keys(s).sort()).toEqual([...SCORE_V3_CORE].sort());
        if (s.dataType === 'NUMERIC') expect(typeof s.value).toBe('number');
        if (s.dataType === 'BOOLEAN') expect(typeof s.value).toBe('boolean');
        if (s.dataType === 'CATEGORICAL') expect(typeof s.value).toBe('string');
      }
      expect(new Set(items.map((s) => s.dataType)).size).toBe(3);

      const from = items[300]!.timestamp as string;
      const to = items[100]!.timestamp as string;
      const win = await pageAll(sim, `/api/public/v3/scores?fromTimestamp=${from}&toTimestamp=${to}`);
      expect(win.items.map((s) => s.id)).toEqual(items.filter((s) => s.timestamp >= from && s.timestamp < to).map((s) => s.id));

      const big = await get(sim, '/api/public/v3/scores?limit=101');
      expect(big.status).toBe(400);
      expect(big.headers.get('content-type')).toMatch(/json/);

      const detailed = await get(sim, '/api/public/v3/scores?fields=details,subject&limit=100');
      for (const s of detailed.json.data) {
        expect('comment' in s && 'configId' in s && 'metadata' in s).toBe(true);
        expect(['trace', 'observation']).toContain(s.subject.kind);
        if (s.subject.kind === 'observation') expect(typeof s.subject.traceId).toBe('string');
      }
      expect((await get(sim, '/api/public/v3/scores?fields=details,nope')).status).toBe(400);
    });
  });

  it('answers legacy endpoints with Next.js 404 HTML', async () => {
    await withSim({}, async (sim) => {
      for (const p of ['/api/public/traces', '/api/public/observations', '/api/public/v2/scores', '/api/public/scores', '/api/public/sessions']) {
        expect404Html(await get(sim, p));
      }
      expect((await get(sim, '/api/public/health', null)).json).toEqual({ status: 'OK', version: '4.16.0' });
    });
  });
});

describe('v3 legacy endpoints', () => {
  it('serves page-based traces with limits like a real server', async () => {
    await withSim({ generation: 'v3', seed: 4 }, async (sim) => {
      sim.generate({ from: new Date(T0), to: new Date(T0 + HOUR), traces: 35, scoresPerTrace: 2 });
      const q = `fromTimestamp=${new Date(T0).toISOString()}&toTimestamp=${new Date(T0 + HOUR).toISOString()}`;
      const desc: any[] = [];
      for (let page = 1; page <= 4; page++) {
        const r = await get(sim, `/api/public/traces?${q}&limit=10&page=${page}`);
        expect(r.json.meta).toEqual({ page, limit: 10, totalItems: 35, totalPages: 4 });
        desc.push(...r.json.data);
      }
      expect(desc.length).toBe(35);
      expect(new Set(desc.map((t) => t.id)).size).toBe(35);
      expectDescOrder(desc.map((t) => ({ id: t.id, t: t.timestamp })));
      const past = await get(sim, `/api/public/traces?${q}&limit=10&page=5`);
      expect(past.json).toEqual({ data: [], meta: { page: 5, limit: 10, totalItems: 35, totalPages: 4 } });

      const asc = await get(sim, `/api/public/traces?${q}&orderBy=timestamp.asc&limit=100`);
      expect(asc.json.data.map((t: any) => t.id)).toEqual(desc.map((t) => t.id).reverse());

      const t = desc[0];
      expect(t.environment).toBeTypeOf('string');
      expect(t.htmlPath).toBe(`/project/demo-project/traces/${t.id}`);
      expect(t.observations.length).toBe(5);
      expect(t.scores.length).toBe(2);
      for (const k of V2_TRACE_KEYS) expect(k in t).toBe(true);

      const over = await get(sim, `/api/public/traces?${q}&limit=101`);
      expect(over.status).toBe(400);
      expect(over.json.error[0]).toMatchObject({ code: 'too_big', maximum: 100, path: ['limit'] });
      expect((await get(sim, `/api/public/traces?${q}&page=0`)).status).toBe(500);
      const zero = await get(sim, `/api/public/traces?${q}&limit=0`);
      expect(zero.json).toEqual({ data: [], meta: { page: 1, limit: 0, totalItems: 35, totalPages: null } });
      const bad = await get(sim, '/api/public/traces?fromTimestamp=notadate');
      expect(bad.status).toBe(400);
      expect(bad.json.error[0]).toMatchObject({ code: 'invalid_string', path: ['fromTimestamp'] });
      const offset = await get(sim, `/api/public/traces?fromTimestamp=2026-11-27T00:00:00%2B00:00&limit=1`);
      expect(offset.json.meta.totalItems).toBe(35);
    });
  });

  it('serves v1 observations (level ignored), v2 scores and v3 scores; v2 observations 404', async () => {
    await withSim({ generation: 'v3', seed: 5 }, async (sim) => {
      const g = sim.generate({ from: new Date(T0), to: new Date(T0 + HOUR), traces: 30, scoresPerTrace: 3 });
      const all = await get(sim, '/api/public/observations?limit=100&page=1');
      const errorsIgnored = await get(sim, '/api/public/observations?limit=100&page=1&level=ERROR');
      expect(all.json.meta.totalItems).toBe(g.observations);
      expect(errorsIgnored.json.meta.totalItems).toBe(g.observations);
      expectDescOrder(all.json.data.map((o: any) => ({ id: o.id, t: o.startTime })));
      const gen = all.json.data.find((o: any) => o.type === 'GENERATION');
      for (const k of [...V2_OBS_KEYS, 'usageDetails', 'costDetails', 'environment']) expect(k in gen).toBe(true);
      expect(gen.usage).toEqual({ unit: 'TOKENS', input: gen.promptTokens, output: gen.completionTokens, total: gen.totalTokens });
      expect(typeof gen.calculatedTotalCost).toBe('number');
      const onlyGen = await get(sim, '/api/public/observations?type=GENERATION&limit=100');
      expect(onlyGen.json.meta.totalItems).toBe(g.generations);

      const scores = await get(sim, '/api/public/v2/scores?limit=100');
      expect(scores.json.meta.totalItems).toBe(90);
      for (const s of scores.json.data) {
        if (s.dataType === 'BOOLEAN') {
          expect([0, 1]).toContain(s.value);
          expect(s.stringValue).toBe(s.value === 1 ? 'True' : 'False');
        } else if (s.dataType === 'CATEGORICAL') {
          expect(s.value).toBeNull();
          expect(typeof s.stringValue).toBe('string');
        } else {
          expect(typeof s.value).toBe('number');
          expect(s.stringValue).toBeNull();
        }
        expect(s.environment).toBeTypeOf('string');
      }
      expect((await get(sim, '/api/public/v3/scores')).status).toBe(200);
      expect404Html(await get(sim, '/api/public/v2/observations'));
      expect((await get(sim, '/api/public/health', null)).json.version).toBe('3.120.0');
    });
  });
});

describe('v2 server shapes', () => {
  it('matches the captured v2.95 bodies and 404s the newer endpoints', async () => {
    await withSim({ generation: 'v2', seed: 6 }, async (sim) => {
      sim.generate({ from: new Date(T0), to: new Date(T0 + HOUR), traces: 20, scoresPerTrace: 3 });
      const traces = await get(sim, '/api/public/traces?limit=5');
      expect(Object.keys(traces.json.data[0])).toEqual(V2_TRACE_KEYS);
      expect(traces.json.meta).toEqual({ page: 1, limit: 5, totalItems: 20, totalPages: 4 });
      const obs = await get(sim, '/api/public/observations?limit=100');
      for (const o of obs.json.data) {
        expect(Object.keys(o)).toEqual(V2_OBS_KEYS);
        expect(['SPAN', 'GENERATION', 'EVENT']).toContain(o.type);
        if (o.type === 'EVENT') {
          expect(o.endTime).toBeNull();
          expect(o.latency).toBeNull();
        }
      }
      const scores = await get(sim, '/api/public/scores?limit=100');
      expect(scores.json.meta.totalItems).toBe(60);
      for (const s of scores.json.data) {
        expect(Object.keys(s)).toEqual(V2_SCORE_KEYS);
        expect(Object.keys(s.trace)).toEqual(['userId', 'tags']);
      }
      expect((await get(sim, '/api/public/scores?limit=1000')).status).toBe(400);
      for (const p of ['/api/public/v2/scores', '/api/public/v3/scores', '/api/public/v2/observations']) {
        expect404Html(await get(sim, p));
      }
      expect((await get(sim, '/api/public/health', null)).json).toEqual({ status: 'OK', version: '2.95.12' });
    });
  });
});

describe('auth, rate limit, visibility', () => {
  it('answers 401 without or with wrong credentials; health needs none', async () => {
    await withSim({ publicKey: 'pk-lf-x', secretKey: 'sk-lf-x' }, async (sim) => {
      const none = await get(sim, '/api/public/v2/observations', null);
      expect(none.status).toBe(401);
      expect(none.json).toEqual({ message: 'No authorization header' });
      const wrong = await get(sim, '/api/public/v2/observations', AUTH);
      expect(wrong.status).toBe(401);
      expect(wrong.json).toEqual({ message: "Invalid credentials. Confirm that you've configured the correct host." });
      const ok = await get(sim, '/api/public/v3/scores', `Basic ${Buffer.from('pk-lf-x:sk-lf-x').toString('base64')}`);
      expect(ok.status).toBe(200);
      expect((await get(sim, '/api/public/health', null)).status).toBe(200);
    });
  });

  it('answers 429 with Retry-After over rateLimitPerMinute', async () => {
    await withSim({ rateLimitPerMinute: 3 }, async (sim) => {
      const remaining: Array<string | null> = [];
      for (let i = 0; i < 3; i++) {
        const r = await get(sim, '/api/public/v2/observations');
        expect(r.status).toBe(200);
        remaining.push(r.headers.get('x-ratelimit-remaining'));
      }
      expect(remaining).toEqual(['2', '1', '0']);
      expect((await get(sim, '/api/public/health', null)).status).toBe(200);
      expect((await get(sim, '/api/public/v2/prompts')).status).toBe(200);
      const r = await get(sim, '/api/public/v3/scores');
      expect(r.status).toBe(429);
      const retry = Number(r.headers.get('retry-after'));
      expect(Number.isInteger(retry)).toBe(true);
      expect(retry).toBeGreaterThanOrEqual(59);
      expect(retry).toBeLessThanOrEqual(60);
      expect(r.headers.get('x-ratelimit-limit')).toBe('3');
      expect(r.headers.get('x-ratelimit-remaining')).toBe('0');
      expect(Number.isNaN(Date.parse(r.headers.get('x-ratelimit-reset') ?? ''))).toBe(false);
      expect(r.json).toMatchObject({ message: 'Rate limit exceeded', code: 'rate_limited', details: { retryAfterSeconds: retry } });
    });
  });

  it('hides rows whose visibleAt is in the future; ingestionDelayMs delays everything', async () => {
    await withSim({ generation: 'v3' }, async (sim) => {
      const later = { visibleAt: new Date(Date.now() + 60_000) };
      const ts = new Date(T0).toISOString();
      const late = sim.addTrace({ id: 'late', timestamp: ts }, later);
      sim.addObservation({ traceId: late.id, id: 'late-obs', startTime: ts }, later);
      sim.addScore({ id: 'late-score', traceId: late.id, timestamp: ts }, later);
      const now = sim.addTrace({ id: 'now', timestamp: ts });
      sim.addObservation({ traceId: now.id, id: 'now-obs', startTime: ts });
      sim.addScore({ id: 'now-score', traceId: now.id, timestamp: ts, value: 0.5 });
      const ids = async (path: string): Promise<string[]> => (await get(sim, path)).json.data.map((x: any) => x.id);
      expect(await ids('/api/public/traces')).toEqual(['now']);
      expect(await ids('/api/public/observations')).toEqual(['now-obs']);
      expect(await ids('/api/public/v2/scores')).toEqual(['now-score']);
      expect(await ids('/api/public/v3/scores')).toEqual(['now-score']);
      expect((await get(sim, '/api/public/traces')).json.data[0].observations).toEqual(['now-obs']);
    });
    await withSim({ ingestionDelayMs: 150 }, async (sim) => {
      const t = sim.addTrace({});
      sim.addObservation({ traceId: t.id });
      expect((await get(sim, '/api/public/v2/observations')).json.data).toEqual([]);
      await new Promise((r) => setTimeout(r, 200));
      expect((await get(sim, '/api/public/v2/observations')).json.data.length).toBe(1);
    });
  });
});

describe('faults', () => {
  it('serves queued faults to matching requests, in order', async () => {
    await withSim({}, async (sim) => {
      sim.generate({ from: new Date(T0), to: new Date(T0 + HOUR), traces: 10 });
      const obs = '/api/public/v2/observations';
      sim.injectFaults(
        { kind: '500' },
        { kind: '502-html' },
        { kind: 'garbage' },
        { kind: '422' },
        { kind: '524' },
        { kind: '429', retryAfterSeconds: 7 },
        { kind: 'malformed-item' },
        obs,
      );
      // another endpoint and /health are not affected
      expect((await get(sim, '/api/public/v3/scores')).status).toBe(200);
      expect((await get(sim, '/api/public/health', null)).status).toBe(200);

      const e500 = await get(sim, obs);
      expect(e500.status).toBe(500);
      expect(e500.json.message).toBeTypeOf('string');
      const e502 = await get(sim, obs);
      expect(e502.status).toBe(502);
      expect(e502.headers.get('content-type')).toMatch(/text\/html/);
      const garbage = await get(sim, obs);
      expect(garbage.status).toBe(200);
      expect(garbage.json).toBeUndefined();
      expect((await get(sim, obs)).status).toBe(422);
      expect((await get(sim, obs)).status).toBe(524);
      const r429 = await get(sim, obs);
      expect(r429.status).toBe(429);
      expect(r429.headers.get('retry-after')).toBe('7');
      const malformed = await get(sim, `${obs}?limit=10`);
      expect(malformed.status).toBe(200);
      expect(malformed.json.data.length).toBe(10);
      expect(malformed.json.data.filter((o: any) => typeof o.id !== 'string').length).toBe(1);
      expect(sim.pendingFaults).toBe(0);
      expect((await get(sim, obs)).status).toBe(200);

      sim.injectFaults({ kind: 'hang', ms: 150 });
      const started = Date.now();
      expect((await get(sim, obs)).status).toBe(200);
      expect(Date.now() - started).toBeGreaterThanOrEqual(140);

      const statuses = sim.requests.filter((r) => r.path.startsWith(obs)).map((r) => r.status);
      expect(statuses).toEqual([500, 502, 200, 422, 524, 429, 200, 200, 200]);
    });
  });
});

describe('prompts', () => {
  it('lists prompt metadata and returns versions', async () => {
    await withSim({ generation: 'v2' }, async (sim) => {
      sim.addPromptVersion({ name: 'greeter', prompt: 'Hi {{name}}', labels: ['production'], tags: ['web'] });
      sim.addPromptVersion({ name: 'greeter', prompt: 'Hello {{name}}', labels: ['staging'] });
      sim.addPromptVersion({ name: 'router', type: 'chat', prompt: [{ role: 'system', content: 'route' }] });
      const list = await get(sim, '/api/public/v2/prompts');
      expect(list.json.meta).toEqual({ page: 1, limit: 10, totalItems: 2, totalPages: 1 });
      const greeter = list.json.data.find((p: any) => p.name === 'greeter');
      expect(greeter).toMatchObject({ type: 'text', versions: [1, 2], tags: ['web'] });
      expect([...greeter.labels].sort()).toEqual(['latest', 'production', 'staging']);
      const staged = await get(sim, '/api/public/v2/prompts?label=staging');
      expect(staged.json.data.map((p: any) => p.name)).toEqual(['greeter']);
      expect(staged.json.data[0].versions).toEqual([2]);
      expect((await get(sim, '/api/public/v2/prompts?tag=web')).json.data.length).toBe(1);

      const v1 = await get(sim, '/api/public/v2/prompts/greeter?version=1');
      expect(v1.json).toMatchObject({ name: 'greeter', version: 1, type: 'text', prompt: 'Hi {{name}}', labels: ['production'] });
      expect((await get(sim, '/api/public/v2/prompts/greeter')).json.version).toBe(1);
      sim.setPromptLabels('greeter', 2, ['production']);
      expect((await get(sim, '/api/public/v2/prompts/greeter')).json.version).toBe(2);
      const missing = await get(sim, '/api/public/v2/prompts/nope?version=1');
      expect(missing.status).toBe(404);
      expect(missing.json.message).toBeTypeOf('string');
      expect((await get(sim, '/api/public/v2/prompts?limit=101')).status).toBe(400);
    });
  });
});

describe('data', () => {
  it('generate() is deterministic per seed and yields the rows asked for at 20k traces', async () => {
    const opts = { from: new Date(T0), to: new Date(T0 + HOUR), traces: 50, scoresPerTrace: 2 };
    const first = async (seed: number): Promise<string> => {
      let out = '';
      await withSim({ seed }, async (sim) => {
        sim.generate(opts);
        out += (await get(sim, '/api/public/v2/observations?limit=1000&fields=core,basic,usage,io,model,time')).text;
        out += (await get(sim, '/api/public/v3/scores?limit=100&fields=details,subject')).text;
      });
      return out;
    };
    const a = await first(9);
    expect(await first(9)).toBe(a);
    expect(await first(10)).not.toBe(a);

    const sim = new LangfuseSimulator({ seed: 11 });
    const r = sim.generate({ from: new Date(T0), to: new Date(T0 + HOUR), traces: 20_000, errorRate: 0.05 });
    expect(r.traces).toBe(20_000);
    expect(r.observations).toBe(100_000);
    expect(r.scores).toBe(20_000);
    expect(r.generations).toBeGreaterThanOrEqual(20_000);
    expect(r.generations).toBeLessThanOrEqual(40_000);
    expect(r.errorTraces).toBeGreaterThan(700);
    expect(r.errorTraces).toBeLessThan(1300);
  });

  it('updates move updatedAt; a trickle adds traces until stopped', async () => {
    await withSim({}, async (sim) => {
      const t = sim.addTrace({ timestamp: new Date(T0).toISOString() });
      const o = sim.addObservation({ traceId: t.id, type: 'GENERATION', updatedAt: new Date(T0).toISOString() });
      const s = sim.addScore({ traceId: t.id, value: 0.25, timestamp: new Date(T0).toISOString() });
      sim.updateObservation(o.id, { output: 'done' });
      sim.updateScore(s.id, { value: 0.9 });
      const obs = (await get(sim, '/api/public/v2/observations?fields=time,io')).json.data[0];
      expect(obs.output).toBe('done');
      expect(Date.parse(obs.updatedAt)).toBeGreaterThan(T0);
      const score = (await get(sim, '/api/public/v3/scores')).json.data[0];
      expect(score).toMatchObject({ id: s.id, value: 0.9, timestamp: new Date(T0).toISOString() });
      expect(score.updatedAt >= s.createdAt).toBe(true);

      const before = sim.counts.traces;
      const stop = sim.startTrickle({ intervalMs: 10, lateRate: 0 });
      await new Promise((r) => setTimeout(r, 80));
      stop();
      const added = sim.counts.traces - before;
      expect(added).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 30));
      expect(sim.counts.traces - before).toBe(added);
    });
  });
});
