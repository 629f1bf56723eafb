import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnyBridgeEvent } from '../src/events/types.js';
import { verifyLangfuseSignature } from '../src/sinks/signing.js';
import { createStdoutSink, type StdoutSinkConfig } from '../src/sinks/stdout.js';
import type { Delivery, Sink } from '../src/sinks/types.js';
import { attemptSignal, parseRetryAfter } from '../src/http.js';
import { createWebhookSink, type WebhookSinkConfig } from '../src/sinks/webhook.js';
import { takes } from './helpers/routes.js';

const SECRET = `whsec_${Buffer.from('webhook-sink test key, 32 bytes!').toString('base64')}`;
const USER_AGENT = 'langfuse-bridge/0.0.0-test';
const PROXY_VARS = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy'] as const;

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** the client's end of the connection it came on */
  socket: string;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}
function shut(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

function traceEvent(n: number, type: 'trace.created' | 'trace.updated' = 'trace.created'): AnyBridgeEvent {
  return {
    id: `evt_test_${n}`,
    event: type,
    timestamp: '2026-11-27T01:02:03.456Z',
    data: {
      projectId: 'proj',
      traceId: `trace-${n}`,
      name: 'checkout — naïve ✓',
      userId: null,
      sessionId: null,
      environment: 'default',
      tags: [],
      level: 'ERROR',
      statusMessage: 'boom',
    },
  };
}
function scoreEvent(): AnyBridgeEvent {
  return {
    id: 'evt_score',
    event: 'score.created',
    timestamp: '2026-11-27T01:02:03.456Z',
    data: {
      projectId: 'proj',
      scoreId: 's1',
      traceId: 't1',
      observationId: null,
      sessionId: null,
      name: 'quality',
      value: 0.2,
      stringValue: null,
      dataType: 'NUMERIC',
      source: 'API',
      comment: null,
    },
  };
}
function delivery(n: number): Delivery {
  const event = traceEvent(n);
  return { eventId: event.id, eventType: event.event, body: JSON.stringify(event), event, route: null, attempt: 1 };
}
const never = new AbortController().signal;

// The receiver: the path says how to answer.
const received: Received[] = [];
let receiverPort = 0;
let base = '';
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), socket: `${req.socket.remoteAddress}:${req.socket.remotePort}` });
    const path = (req.url ?? '/').split('?')[0];
    switch (path) {
      case '/ok':
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"received":true}');
        return;
      case '/accepted':
        res.writeHead(202).end();
        return;
      case '/gone':
        res.writeHead(410).end('gone');
        return;
      case '/busy':
        res.writeHead(429, { 'retry-after': '7' }).end('slow down');
        return;
      case '/busy-date':
        res.writeHead(429, { 'retry-after': new Date(Date.now() + 60_000).toUTCString() }).end();
        return;
      case '/request-timeout':
        res.writeHead(408, { 'retry-after': '2' }).end();
        return;
      case '/silent':
        return; // never answers
      default:
        res.writeHead(500).end('oops');
    }
  });
});

function webhookConfig(path: string, over: Partial<WebhookSinkConfig> = {}): WebhookSinkConfig {
  return {
    type: 'webhook',
    name: 'hook',
    url: `${base}${path}`,
    secret: SECRET,
    signature: 'standard',
    events: ['*'],
    timeoutSeconds: 5,
    concurrency: 4,
    ...over,
  };
}

async function withSink<T>(cfg: WebhookSinkConfig, fn: (sink: Sink) => Promise<T>): Promise<T> {
  const sink = createWebhookSink(cfg, { userAgent: USER_AGENT });
  try {
    return await fn(sink);
  } finally {
    await sink.close?.();
  }
}

const savedEnv: Record<string, string | undefined> = {};
beforeAll(async () => {
  for (const name of PROXY_VARS) {
    savedEnv[name] = process.env[name];
    delete process.env[name];
  }
  receiverPort = await listen(receiver);
  base = `http://127.0.0.1:${receiverPort}`;
});
afterAll(async () => {
  await shut(receiver);
  for (const name of PROXY_VARS) {
    if (savedEnv[name] === undefined) delete process.env[name];
    else process.env[name] = savedEnv[name];
  }
});

describe('webhook sink', () => {
  it('posts the exact body with content-type, user-agent and verifiable signatures', async () => {
    const d = delivery(1);
    received.length = 0;
    const result = await withSink(webhookConfig('/ok'), (sink) => sink.deliver(d, never));
    expect(result).toEqual({ ok: true, status: 200 });
    expect(received).toHaveLength(1);
    const got = received[0]!;
    expect(got.method).toBe('POST');
    expect(got.url).toBe('/ok');
    expect(got.body).toBe(d.body);
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.headers['user-agent']).toBe(USER_AGENT);
    expect(got.headers['webhook-id']).toBe(d.eventId);
    const ts = Number(got.headers['webhook-timestamp']);
    expect(Math.abs(ts - Date.now() / 1000)).toBeLessThan(5);
    const headers = Object.fromEntries(Object.entries(got.headers).map(([k, v]) => [k, String(v)]));
    expect(new StandardWebhook(SECRET).verify(got.body, headers)).toEqual(d.event);
    expect(verifyLangfuseSignature(got.body, headers['x-langfuse-signature'], SECRET)).toBe(true);
  });

  it('treats any 2xx as delivered and keeps the connection alive across attempts', async () => {
    await withSink(webhookConfig('/accepted', { concurrency: 2 }), async (sink) => {
      const first = received.length;
      const results = await Promise.all([1, 2, 3, 4, 5, 6].map((n) => sink.deliver(delivery(n), never)));
      expect(results.every((r) => r.ok)).toBe(true);
      const opened = new Set(received.slice(first).map((r) => r.socket));
      // Later attempts go out on the connections already open: none is opened again.
      const from = received.length;
      for (const n of [7, 8, 9, 10]) expect(await sink.deliver(delivery(n), never)).toMatchObject({ ok: true });
      expect(received.slice(from)).toHaveLength(4);
      const reused = received.slice(from).map((r) => r.socket);
      expect(reused.filter((s) => !opened.has(s)), `new connections (open before: ${[...opened].join(', ')})`).toEqual([]);
    });
  });

  it('dead-letters a 410 at once', async () => {
    const result = await withSink(webhookConfig('/gone'), (sink) => sink.deliver(delivery(2), never));
    expect(result).toMatchObject({ ok: false, retry: false, status: 410 });
  });

  it('waits Retry-After on 429 (seconds or HTTP date) and 408', async () => {
    await withSink(webhookConfig('/busy'), async (sink) => {
      expect(await sink.deliver(delivery(3), never)).toMatchObject({ ok: false, retry: true, status: 429, retryAfterMs: 7000 });
    });
    await withSink(webhookConfig('/busy-date'), async (sink) => {
      const r = await sink.deliver(delivery(3), never);
      expect(r).toMatchObject({ ok: false, retry: true, status: 429 });
      const wait = r.ok ? 0 : (r.retryAfterMs ?? 0);
      expect(wait).toBeGreaterThan(55_000);
      expect(wait).toBeLessThanOrEqual(60_000);
    });
    await withSink(webhookConfig('/request-timeout'), async (sink) => {
      expect(await sink.deliver(delivery(3), never)).toMatchObject({ ok: false, retry: true, status: 408, retryAfterMs: 2000 });
    });
  });

  it('retries a 500 with a one-line reason free of the secret and the query string', async () => {
    const cfg = webhookConfig(`/broken?token=${encodeURIComponent(SECRET)}`, { signature: 'standard' });
    const r = await withSink(cfg, (sink) => sink.deliver(delivery(4), never));
    expect(r).toMatchObject({ ok: false, retry: true, status: 500 });
    if (r.ok) throw new Error('unreachable');
    expect(r.retryAfterMs).toBeUndefined();
    expect(r.reason).toBe(`HTTP 500 from ${base}`);
    expect(r.reason).not.toContain('token');
    expect(received.at(-1)?.url).toBe(`/broken?token=${encodeURIComponent(SECRET)}`);
  });

  it('gives up on a receiver that never answers after about timeoutSeconds', async () => {
    const started = Date.now();
    const r = await withSink(webhookConfig('/silent', { timeoutSeconds: 0.3 }), (sink) => sink.deliver(delivery(5), never));
    const took = Date.now() - started;
    expect(r).toMatchObject({ ok: false, retry: true });
    if (!r.ok) expect(r.reason).toMatch(/^timed out after 0\.3 s/);
    expect(took).toBeGreaterThanOrEqual(250);
    // Well short of the 5 s the other deliveries here allow: the sink's own setting ended it.
    expect(took).toBeLessThan(4_000);
  });

  it('stops an attempt when the caller aborts, and retries it later', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const r = await withSink(webhookConfig('/silent'), (sink) => sink.deliver(delivery(6), ac.signal));
    expect(r).toMatchObject({ ok: false, retry: true });
  });

  it('retries a refused connection with a reason line', async () => {
    const closed = createServer();
    const port = await listen(closed);
    await shut(closed);
    const r = await withSink(webhookConfig('/x', { url: `http://127.0.0.1:${port}/x` }), (sink) => sink.deliver(delivery(7), never));
    expect(r).toMatchObject({ ok: false, retry: true });
    if (r.ok) throw new Error('unreachable');
    expect(r.reason).toContain('ECONNREFUSED');
    expect(r.reason).not.toContain('\n');
  });

  it('sends only the hex signature in hex mode, and none with signature none', async () => {
    received.length = 0;
    await withSink(webhookConfig('/ok', { signature: 'hex', secret: 'plain-secret' }), (sink) => sink.deliver(delivery(8), never));
    await withSink(webhookConfig('/ok', { signature: 'none', secret: null }), (sink) => sink.deliver(delivery(9), never));
    const [hex, unsigned] = received;
    expect(hex?.headers['x-langfuse-signature']).toMatch(/^[0-9a-f]{64}$/);
    expect(hex?.headers['webhook-signature']).toBeUndefined();
    expect(unsigned?.headers['x-langfuse-signature']).toBeUndefined();
    expect(unsigned?.headers['webhook-signature']).toBeUndefined();
  });

  it('filters events by type and describes itself', () => {
    const sink = createWebhookSink(webhookConfig('/ok', { events: ['trace.*'], concurrency: 7 }), { userAgent: USER_AGENT });
    expect(takes(sink, traceEvent(1, 'trace.updated'))).toBe(true);
    expect(takes(sink, scoreEvent())).toBe(false);
    expect(sink).toMatchObject({ name: 'hook', kind: 'webhook', alerting: false, concurrency: 7, minIntervalMs: 0 });
    void sink.close?.();
  });

  it('validates its settings without sending anything', () => {
    const ok = createWebhookSink(webhookConfig('/ok'), { userAgent: USER_AGENT });
    expect(ok.validate?.()).toEqual([]);
    const unsigned = createWebhookSink(webhookConfig('/ok', { signature: 'none', secret: null }), { userAgent: USER_AGENT });
    expect(unsigned.validate?.()).toEqual([]);
    const noSecret = createWebhookSink(webhookConfig('/ok', { secret: null }), { userAgent: USER_AGENT });
    expect(noSecret.validate?.()).toEqual([expect.stringMatching(/secret is required.*signature none/)]);
    const noUrl = createWebhookSink(webhookConfig('/ok', { url: '' }), { userAgent: USER_AGENT });
    expect(noUrl.validate?.()).toEqual([expect.stringContaining('url is required')]);
    const badSecret = createWebhookSink(webhookConfig('/ok', { secret: 'not-prefixed' }), { userAgent: USER_AGENT });
    expect(badSecret.validate?.()).toEqual([expect.stringContaining('whsec_')]);
    void Promise.all([ok.close?.(), unsigned.close?.(), noSecret.close?.(), noUrl.close?.(), badSecret.close?.()]);
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-11-27T00:00:00Z');
    expect(parseRetryAfter('7', now)).toBe(7000);
    expect(parseRetryAfter('Fri, 27 Nov 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Thu, 26 Nov 2026 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter(undefined, now)).toBeNull();
  });
});

describe('an attempt signal', () => {
  /** How many abort listeners a signal holds (Node keeps them on a symbol-keyed map). */
  const listeners = (signal: AbortSignal): number => {
    const sym = Object.getOwnPropertySymbols(signal).find((x) => x.description === 'kEvents');
    const events = sym ? ((signal as unknown as Record<symbol, Map<string, { size: number }>>)[sym]) : undefined;
    return events?.get('abort')?.size ?? 0;
  };

  it('follows the caller, times out on its own, and leaves nothing on a long-lived caller signal once released', async () => {
    const parent = new AbortController();
    const attempts = Array.from({ length: 50 }, () => attemptSignal(parent.signal, 60_000));
    expect(listeners(parent.signal)).toBe(50);
    for (const a of attempts) a.release();
    expect(listeners(parent.signal)).toBe(0);

    const followed = attemptSignal(parent.signal, 60_000);
    parent.abort(new Error('stop'));
    expect(followed.signal.aborted).toBe(true);
    expect(followed.timedOut()).toBe(false);
    followed.release();

    const alone = attemptSignal(undefined, 20);
    await new Promise((r) => setTimeout(r, 60));
    expect(alone.signal.aborted).toBe(true);
    expect(alone.timedOut()).toBe(true);
    alone.release();
  });
});

describe('webhook sink behind a proxy', () => {
  // A forward proxy: gets the absolute-URL request and forwards it to the origin.
  const proxied: string[] = [];
  const proxy = createServer((req, res) => {
    proxied.push(req.url ?? '');
    const target = new URL(req.url ?? '');
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, path: `${target.pathname}${target.search}`, method: req.method, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  let proxyUrl = '';
  beforeAll(async () => {
    proxyUrl = `http://127.0.0.1:${await listen(proxy)}`;
  });
  afterAll(() => shut(proxy));

  async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
    const before = Object.fromEntries(PROXY_VARS.map((n) => [n, process.env[n]]));
    for (const n of PROXY_VARS) delete process.env[n];
    Object.assign(process.env, vars);
    try {
      return await fn();
    } finally {
      for (const n of PROXY_VARS) {
        if (before[n] === undefined) delete process.env[n];
        else process.env[n] = before[n];
      }
    }
  }

  it('delivers through HTTP_PROXY', async () => {
    proxied.length = 0;
    received.length = 0;
    const d = delivery(10);
    const r = await withEnv({ HTTP_PROXY: proxyUrl }, () => withSink(webhookConfig('/ok?q=1'), (sink) => sink.deliver(d, never)));
    expect(r).toEqual({ ok: true, status: 200 });
    expect(proxied).toEqual([`${base}/ok?q=1`]);
    expect(received.at(-1)?.body).toBe(d.body);
    expect(received.at(-1)?.headers['webhook-id']).toBe(d.eventId);
  });

  it('goes direct to hosts in NO_PROXY', async () => {
    proxied.length = 0;
    const r = await withEnv({ HTTP_PROXY: proxyUrl, NO_PROXY: '127.0.0.1' }, () =>
      withSink(webhookConfig('/ok'), (sink) => sink.deliver(delivery(11), never)),
    );
    expect(r).toEqual({ ok: true, status: 200 });
    expect(proxied).toEqual([]);
  });
});

describe('stdout sink', () => {
  const stdoutConfig: StdoutSinkConfig = { type: 'stdout', name: 'stdout', events: ['*'], pretty: false };
  /** A stream that keeps each write as one chunk. */
  const recordingStream = (): { out: Writable; chunks: string[] } => {
    const chunks: string[] = [];
    const out = new Writable({
      write(chunk, _enc, cb) {
        chunks.push(String(chunk));
        cb();
      },
    });
    return { out, chunks };
  };

  it('writes one JSON line per delivery', async () => {
    const out = new PassThrough();
    const sink = createStdoutSink(stdoutConfig, out);
    expect(sink).toMatchObject({ kind: 'stdout', alerting: false });
    for (const n of [1, 2, 3]) expect(await sink.deliver(delivery(n), never)).toEqual({ ok: true });
    const lines = String(out.read()).split('\n');
    expect(lines).toEqual([delivery(1).body, delivery(2).body, delivery(3).body, '']);
    expect(lines.slice(0, 3).map((l) => (JSON.parse(l) as AnyBridgeEvent).id)).toEqual(['evt_test_1', 'evt_test_2', 'evt_test_3']);
  });

  it('writes lines handed over together in one write, in order', async () => {
    const { out, chunks } = recordingStream();
    const sink = createStdoutSink(stdoutConfig, out);
    expect(sink.concurrency).toBeGreaterThan(1);
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => sink.deliver(delivery(n), never)));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(chunks).toHaveLength(1);
    expect(chunks[0]!.split('\n')).toEqual([...[1, 2, 3, 4, 5].map((n) => delivery(n).body), '']);
  });

  it('writes a group of deliveries as one entry, in order, and never more than 256 lines per write', async () => {
    const { out, chunks } = recordingStream();
    const sink = createStdoutSink(stdoutConfig, out);
    const group = (from: number, n: number) => Array.from({ length: n }, (_, i) => delivery(from + i));
    const results = await Promise.all([sink.deliverGroup!(group(0, 200), never), sink.deliver(delivery(200), never), sink.deliverGroup!(group(201, 100), never)]);
    expect(results).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    // 200 + 1 fit in one write; the next group of 100 would pass 256 lines, so it waits for the next.
    expect(chunks.map((c) => c.split('\n').length - 1)).toEqual([201, 100]);
    expect(chunks.join('').split('\n')).toEqual([...group(0, 301).map((d) => d.body), '']);
  });

  it('gives up on every waiting line when shutdown aborts while stdout is stuck', async () => {
    const out = new PassThrough({ highWaterMark: 16 }); // never read: the first write fills it
    const sink = createStdoutSink(stdoutConfig, out);
    const ac = new AbortController();
    const first = sink.deliver(delivery(1), ac.signal);
    await new Promise((r) => setTimeout(r, 20)); // written, waiting for 'drain'
    const later = sink.deliver(delivery(2), ac.signal);
    ac.abort();
    expect(await first).toMatchObject({ ok: false, retry: true });
    expect(await later).toMatchObject({ ok: false, retry: true });
  });

  it('does not write a line whose attempt was aborted before its turn', async () => {
    const out = new PassThrough();
    const sink = createStdoutSink(stdoutConfig, out);
    const ac = new AbortController();
    const first = sink.deliver(delivery(1), ac.signal);
    const second = sink.deliver(delivery(2), never);
    ac.abort();
    expect(await first).toMatchObject({ ok: false, retry: true });
    expect(await second).toEqual({ ok: true });
    expect(String(out.read())).toBe(`${delivery(2).body}\n`);
  });

  it('waits for drain when the stream is full', async () => {
    const out = new PassThrough({ highWaterMark: 16 });
    const sink = createStdoutSink(stdoutConfig, out);
    let done = false;
    const pending = sink.deliver(delivery(1), never).then((r) => {
      done = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 30));
    expect(done).toBe(false);
    out.resume();
    expect(await pending).toEqual({ ok: true });
  });

  it('reports a broken pipe as a retryable failure instead of crashing', async () => {
    const out = new Writable({
      write(_chunk, _enc, cb) {
        cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const sink = createStdoutSink(stdoutConfig, out);
    const first = await sink.deliver(delivery(1), never);
    expect(first).toMatchObject({ ok: false, retry: true });
    if (!first.ok) expect(first.reason).toContain('EPIPE');
    const second = await sink.deliver(delivery(2), never);
    expect(second).toMatchObject({ ok: false, retry: true });
    await sink.close?.();
  });

  it('filters events by pattern', () => {
    const sink = createStdoutSink({ ...stdoutConfig, events: ['score.created'] }, new PassThrough());
    expect(takes(sink, scoreEvent())).toBe(true);
    expect(takes(sink, traceEvent(1))).toBe(false);
  });
});
