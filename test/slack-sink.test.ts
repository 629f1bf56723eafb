import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { AnyBridgeEvent, ScoreData, TraceData } from '../src/events/types.js';
import { compileRules } from '../src/rules/index.js';
import { alertsFor, encodeRoute, routeEvent } from '../src/rules/route.js';
import { buildSlackMessage, buildSlackSummary } from '../src/sinks/slack/format.js';
import { createSlackSink, type SlackSink, type SlackSinkConfig } from '../src/sinks/slack/index.js';
import type { Delivery } from '../src/sinks/types.js';

interface Received {
  headers: IncomingHttpHeaders;
  json: { text: string; blocks: Array<Record<string, any>> };
}
type Reply = { status: number; body?: string; headers?: Record<string, string> };

const servers: Server[] = [];
const sinks: SlackSink[] = [];
afterEach(async () => {
  await Promise.all(sinks.splice(0).map((s) => s.close?.()));
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function receiver(reply: (r: Received, n: number) => Reply = () => ({ status: 200, body: 'ok' })) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = { headers: req.headers, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) };
      received.push(r);
      const out = reply(r, received.length);
      res.writeHead(out.status, { 'content-type': 'text/plain', ...out.headers });
      res.end(out.body ?? '');
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/services/T000/B000/XXXX`, received };
}

const BASE = 'https://langfuse.internal.example.com/lf';
const SINKS = [
  { name: 'slack', type: 'slack' },
  { name: 'pd', type: 'pagerduty' },
];

function trace(i: number | string = 1, over: Partial<TraceData> = {}): AnyBridgeEvent {
  return {
    id: `evt_trace_${i}`,
    event: 'trace.updated',
    timestamp: '2026-11-27T01:02:03.456Z',
    data: {
      projectId: 'proj-1',
      traceId: `t-${i}`,
      name: 'checkout',
      userId: 'u-9',
      sessionId: null,
      environment: 'production',
      tags: ['vip'],
      level: 'ERROR',
      statusMessage: 'TimeoutError: upstream timed out\n  at fetch (x.js:1)',
      ...over,
    },
  };
}

function score(over: Partial<ScoreData> = {}, type: 'score.created' | 'score.updated' = 'score.created', id = 'evt_score_1'): AnyBridgeEvent {
  return {
    id,
    event: type,
    timestamp: '2026-11-27T01:02:04.000Z',
    data: {
      projectId: 'proj-1',
      scoreId: 's-1',
      traceId: 't-1',
      observationId: null,
      sessionId: null,
      name: 'accuracy',
      value: 0.31,
      stringValue: null,
      dataType: 'NUMERIC',
      source: 'EVAL',
      comment: 'missed the refund policy',
      ...over,
    },
  };
}

/** A delivery as the outbox hands it over: with what the default rules decided when the event was routed. */
function delivery(event: AnyBridgeEvent, attempt = 1): Delivery {
  const route = encodeRoute(alertsFor(event, { name: 'slack', kind: 'slack' }, compileRules(null, SINKS)));
  return { eventId: event.id, eventType: event.event, body: JSON.stringify(event), event, route, attempt };
}

function slackSink(url: string, extra: { alertBurst?: number; now?: () => number; summaryRetry?: { attempts: number; baseMs: number }; rules?: unknown[] | null } = {}) {
  const cfg: SlackSinkConfig = { type: 'slack', name: 'slack', url, events: ['*'], timeoutSeconds: 2 };
  const rules = compileRules(extra.rules ?? null, SINKS);
  const sink = createSlackSink(cfg, {
    decideNow: () => {
      throw new Error('a delivery with a decision is decided again');
    },
    unrouted: rules.unroutedSinks.includes(cfg.name),
    langfuseBaseUrl: BASE,
    alertBurst: extra.alertBurst ?? 20,
    userAgent: 'langfuse-bridge/0.1.0',
    now: extra.now,
    minPostGapMs: 0,
    summaryRetry: extra.summaryRetry,
  });
  sinks.push(sink);
  return sink;
}

const signal = new AbortController().signal;

describe('Slack messages', () => {
  it('builds a Block Kit alert for an error trace linking into a self-hosted Langfuse', () => {
    const msg = buildSlackMessage(trace(), BASE, { label: 'error trace', rule: 'error-traces' });
    const url = 'https://langfuse.internal.example.com/lf/project/proj-1/traces/t-1';
    expect(msg.blocks[0]).toEqual({ type: 'header', text: { type: 'plain_text', text: '🔴 Error trace: checkout', emoji: true } });
    const fields = (msg.blocks[1] as { fields: Array<{ text: string }> }).fields.map((f) => f.text);
    expect(fields).toEqual(
      expect.arrayContaining(['*Trace*\ncheckout', '*Environment*\nproduction', '*Level*\nERROR', '*Error*\nTimeoutError: upstream timed out']),
    );
    const actions = msg.blocks.find((b) => b.type === 'actions') as { elements: Array<{ url: string; text: { text: string } }> };
    expect(actions.elements[0]).toMatchObject({ url, text: { text: 'View trace' } });
    expect(msg.text).toContain(`<${url}|View trace>`);
    expect(msg.text).toContain('Error trace "checkout" in production: TimeoutError: upstream timed out');
  });

  it('builds a low-score alert with the value and comment', () => {
    const msg = buildSlackMessage(score(), BASE, { label: 'low score' });
    expect((msg.blocks[0] as { text: { text: string } }).text.text).toBe('📉 Low score: accuracy = 0.31');
    expect(JSON.stringify(msg.blocks)).toContain('missed the refund policy');
    expect(msg.text).toContain('/project/proj-1/traces/t-1');
  });

  it('escapes Slack markup in user data', () => {
    const msg = buildSlackMessage(trace(1, { name: '<!channel> & co' }), BASE);
    expect(JSON.stringify(msg.blocks[1])).toContain('&lt;!channel&gt; &amp; co');
    expect(msg.text).not.toContain('<!channel>');
  });
});

describe('Slack sink', () => {
  it('posts JSON and accepts only what the rules route to it', async () => {
    const rx = await receiver();
    const sink = slackSink(rx.url);
    expect(sink).toMatchObject({ kind: 'slack', alerting: true, concurrency: 1, minIntervalMs: 1000 });
    const routed = (event: AnyBridgeEvent) => routeEvent(event, [sink], compileRules(null, SINKS)).sinks;
    expect(routed(trace())).toEqual(['slack']);
    expect(routed(trace(2, { level: 'DEFAULT' }))).toEqual([]);
    expect(routed(score({ value: 0.9 }))).toEqual([]);
    expect(await sink.deliver(delivery(trace()), signal)).toEqual({ ok: true, status: 200 });
    expect(rx.received).toHaveLength(1);
    expect(rx.received[0]?.headers['content-type']).toBe('application/json');
    expect(rx.received[0]?.headers['user-agent']).toBe('langfuse-bridge/0.1.0');
    expect(rx.received[0]?.json.blocks[0]?.text.text).toBe('🔴 Error trace: checkout');
  });

  it('waits for Retry-After on 429', async () => {
    const rx = await receiver(() => ({ status: 429, body: 'rate_limited', headers: { 'retry-after': '7' } }));
    const res = await slackSink(rx.url).deliver(delivery(trace()), signal);
    expect(res).toEqual({ ok: false, retry: true, retryAfterMs: 7000, reason: 'Slack answered 429: rate_limited', status: 429 });
  });

  it('after a 429, no post goes before its Retry-After: not the next alert, not a summary', async () => {
    const at: number[] = [];
    const rx = await receiver((_r, n) => {
      at.push(performance.now());
      return n === 1 ? { status: 429, body: 'rate_limited', headers: { 'retry-after': '0.4' } } : { status: 200, body: 'ok' };
    });
    const sink = slackSink(rx.url);
    expect(await sink.deliver(delivery(trace(1)), signal)).toMatchObject({ ok: false, status: 429, retryAfterMs: 400 });
    expect(await sink.deliver(delivery(trace(2)), signal)).toMatchObject({ ok: true });
    expect(at).toHaveLength(2);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(390);
  });

  it('does not retry a 404 and says what Slack answered', async () => {
    const rx = await receiver(() => ({ status: 404, body: 'no_service' }));
    const res = await slackSink(rx.url).deliver(delivery(trace()), signal);
    expect(res).toEqual({ ok: false, retry: false, reason: 'Slack answered 404: no_service', status: 404 });
  });

  it('retries 5xx and unreachable hosts without showing the webhook URL', async () => {
    const rx = await receiver(() => ({ status: 503, body: 'busy' }));
    expect(await slackSink(rx.url).deliver(delivery(trace()), signal)).toMatchObject({ ok: false, retry: true, status: 503 });
    const down = 'http://127.0.0.1:9/services/T000/B000/SECRET';
    const res = await slackSink(down).deliver(delivery(trace()), signal);
    expect(res).toMatchObject({ ok: false, retry: true });
    expect(res.ok ? '' : res.reason).toMatch(/^Slack unreachable: /);
    expect(res.ok ? '' : res.reason).not.toContain('SECRET');
  });

  it('posts about the same score once, but posts again when the same event is retried', async () => {
    const rx = await receiver();
    const sink = slackSink(rx.url);
    expect(await sink.deliver(delivery(score()), signal)).toMatchObject({ ok: true });
    expect(await sink.deliver(delivery(score({ value: 0.2 }, 'score.updated', 'evt_score_1b')), signal)).toEqual({ ok: true });
    expect(await sink.deliver(delivery(score(), 2), signal)).toMatchObject({ ok: true });
    expect(rx.received).toHaveLength(2);
  });

  it('folds a burst of 200 alerts into at most 20 messages and a summary', async () => {
    const rx = await receiver();
    let clock = Date.parse('2026-11-27T10:00:00Z');
    const sink = slackSink(rx.url, { alertBurst: 20, now: () => clock });
    for (let i = 0; i < 200; i++) {
      const name = i % 3 === 0 ? 'rag-pipeline' : 'checkout';
      expect(await sink.deliver(delivery(trace(i, { name })), signal)).toMatchObject({ ok: true });
      clock += 250; // 200 alerts in 50 s
    }
    expect(rx.received).toHaveLength(20);

    clock += 15_000; // the minute is over: the next alert brings the summary first
    expect(await sink.deliver(delivery(trace(999)), signal)).toMatchObject({ ok: true });
    expect(rx.received).toHaveLength(22);
    const summary = rx.received[20]!.json;
    expect(summary.text).toContain('… and 180 more error traces in the last minute');
    expect(summary.text).toContain('checkout ×');
    expect(summary.text).toContain('rag-pipeline ×');
    expect(summary.text).toContain('First: trace t-20 (evt_trace_20), last: trace t-199 (evt_trace_199)');
    expect(rx.received[21]!.json.blocks[0]?.text.text).toBe('🔴 Error trace: checkout');

    // The summary's counts add up to the folded alerts.
    const counts = [...summary.text.matchAll(/×(\d+)/g)].map((m) => Number(m[1]));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(180);
  });

  it('counts bursts per rule', async () => {
    const rx = await receiver();
    const clock = Date.parse('2026-11-27T10:00:00Z');
    const sink = slackSink(rx.url, { alertBurst: 2, now: () => clock });
    for (let i = 0; i < 4; i++) await sink.deliver(delivery(trace(i)), signal);
    for (let i = 0; i < 2; i++) await sink.deliver(delivery(score({ scoreId: `s-${i}` }, 'score.created', `evt_score_${i}`)), signal);
    expect(rx.received).toHaveLength(4);
    await sink.flushSummaries(); // the minute is not over: nothing yet
    expect(rx.received).toHaveLength(4);
    await sink.close!();
    expect(rx.received).toHaveLength(5);
    expect(rx.received[4]!.json.text).toContain('… and 2 more error traces');
  });

  it('retries a summary Slack failed to take', async () => {
    let summaryTries = 0;
    const rx = await receiver((r) => {
      if (r.json.text.startsWith('📦') && ++summaryTries === 1) return { status: 500, body: 'oops' };
      return { status: 200, body: 'ok' };
    });
    let clock = Date.parse('2026-11-27T10:00:00Z');
    const sink = slackSink(rx.url, { alertBurst: 1, now: () => clock, summaryRetry: { attempts: 3, baseMs: 20 } });
    for (let i = 0; i < 5; i++) await sink.deliver(delivery(trace(i)), signal);
    clock += 61_000;
    await sink.flushSummaries();
    expect(summaryTries).toBe(1);
    for (let i = 0; i < 100 && summaryTries < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(summaryTries).toBe(2);
    const summaries = rx.received.filter((r) => r.json.text.startsWith('📦'));
    expect(summaries).toHaveLength(2);
    expect(summaries[1]!.json.text).toContain('… and 4 more error traces');
  });

  it('summarizes with a count, top names and a link', () => {
    const msg = buildSlackSummary(
      {
        rule: 'error-traces',
        label: 'error trace',
        count: 180,
        startedAt: Date.parse('2026-11-27T10:00:00Z'),
        endedAt: Date.parse('2026-11-27T10:01:00Z'),
        names: new Map([
          ['checkout', 120],
          ['rag-pipeline', 60],
        ]),
        first: { eventId: 'evt_a', entity: 'trace t-20' },
        last: { eventId: 'evt_b', entity: 'trace t-199' },
        projectIds: ['proj-1'],
      },
      BASE,
    );
    expect(msg.text).toBe(
      '📦 … and 180 more error traces in the last minute (rule "error-traces", folded to respect the alert burst limit): checkout ×120, rag-pipeline ×60. First: trace t-20 (evt_a), last: trace t-199 (evt_b).',
    );
    expect(JSON.stringify(msg.blocks)).toContain('https://langfuse.internal.example.com/lf/project/proj-1/traces');
  });
});
