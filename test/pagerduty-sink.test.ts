import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { AnyBridgeEvent, ScoreData, TraceData } from '../src/events/types.js';
import { compileRules } from '../src/rules/index.js';
import { alertsFor, encodeRoute, routeEvent } from '../src/rules/route.js';
import { createPagerDutySink, type PagerDutySinkConfig } from '../src/sinks/pagerduty.js';
import type { Delivery } from '../src/sinks/types.js';
import { errorTrace } from './helpers/events.js';

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  json: Record<string, any>;
}
type Reply = { status: number; body?: unknown; headers?: Record<string, string> };

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function receiver(reply: (r: Received) => Reply = (r) => ({ status: 202, body: { status: 'success', message: 'Event processed', dedup_key: r.json.dedup_key } })) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = { path: req.url ?? '', headers: req.headers, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) };
      received.push(r);
      const out = reply(r);
      res.writeHead(out.status, { 'content-type': 'application/json', ...out.headers });
      res.end(out.body === undefined ? '' : JSON.stringify(out.body));
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/v2/enqueue`, received };
}

const ROUTING_KEY = 'R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY12';
const BASE = 'https://langfuse.example.com';
const SINKS = [
  { name: 'slack', type: 'slack' },
  { name: 'pagerduty', type: 'pagerduty' },
];

function trace(id: string, over: Partial<TraceData> = {}): AnyBridgeEvent {
  return errorTrace({ projectId: 'proj-1', traceId: 't-1', ...over }, 'trace.updated', id);
}

function score(id: string, over: Partial<ScoreData> = {}): AnyBridgeEvent {
  return {
    id,
    event: 'score.created',
    timestamp: '2026-11-27T01:05:00.000Z',
    data: {
      projectId: 'proj-1',
      scoreId: id.replace('evt_', 's-'),
      traceId: 't-1',
      observationId: null,
      sessionId: null,
      name: 'faithfulness',
      value: 0.2,
      stringValue: null,
      dataType: 'NUMERIC',
      source: 'EVAL',
      comment: null,
      ...over,
    },
  };
}

/** A delivery as the outbox hands it over: with what the rules decided when the event was routed. */
function delivery(event: AnyBridgeEvent, rules: unknown[] | null = null): Delivery {
  const route = encodeRoute(alertsFor(event, { name: 'pagerduty', kind: 'pagerduty' }, compileRules(rules, SINKS)));
  return { eventId: event.id, eventType: event.event, body: JSON.stringify(event), event, route, attempt: 1 };
}

function pdSink(url: string, rules: unknown[] | null = null) {
  const cfg: PagerDutySinkConfig = { type: 'pagerduty', name: 'pagerduty', routingKey: ROUTING_KEY, eventsUrl: url, events: ['*'], timeoutSeconds: 2 };
  const compiled = compileRules(rules, SINKS);
  return createPagerDutySink(cfg, {
    decideNow: () => {
      throw new Error('a delivery with a decision is decided again');
    },
    unrouted: compiled.unroutedSinks.includes(cfg.name),
    langfuseBaseUrl: BASE,
    userAgent: 'langfuse-bridge/0.1.0',
  });
}

const signal = new AbortController().signal;

describe('PagerDuty sink', () => {
  it('sends a valid Events API v2 trigger for an error trace', async () => {
    const rx = await receiver();
    const sink = pdSink(rx.url);
    expect(sink).toMatchObject({ kind: 'pagerduty', alerting: true, concurrency: 1, minIntervalMs: 0 });
    const event = trace('evt_1');
    const routed = (e: AnyBridgeEvent) => routeEvent(e, [sink], compileRules(null, SINKS)).sinks;
    expect(routed(event)).toEqual([sink.name]);
    expect(routed(trace('evt_2', { level: 'WARNING' }))).toEqual([]);
    expect(routed(score('evt_3'))).toEqual([]); // low scores go to Slack only by default
    expect(await sink.deliver(delivery(event), signal)).toEqual({ ok: true, status: 202 });

    expect(rx.received).toHaveLength(1);
    const { json, headers, path } = rx.received[0]!;
    expect(path).toBe('/v2/enqueue');
    expect(headers['content-type']).toBe('application/json');
    expect(json).toEqual({
      routing_key: ROUTING_KEY,
      event_action: 'trigger',
      dedup_key: 'langfuse-bridge:proj-1:trace:t-1',
      payload: {
        summary: 'Langfuse: Error trace "checkout" in production: TimeoutError: upstream timed out (trace t-1)',
        source: 'langfuse.example.com/project/proj-1',
        severity: 'error',
        timestamp: '2026-11-27T01:02:03.456Z',
        component: 'checkout',
        group: 'production',
        class: 'trace.updated',
        custom_details: event.data,
      },
      links: [{ href: 'https://langfuse.example.com/project/proj-1/traces/t-1', text: 'View trace in Langfuse' }],
      client: 'langfuse-bridge',
      client_url: 'https://langfuse.example.com/project/proj-1',
    });
  });

  it('keeps the dedup_key of one trace across events, so a repeat updates the incident', async () => {
    const rx = await receiver();
    const rules = [{ name: 'degraded', when: { level: 'WARNING' }, sinks: ['pagerduty'] }];
    const sink = pdSink(rx.url, rules);
    await sink.deliver(delivery(trace('evt_warn', { level: 'WARNING' }), rules), signal);
    await sink.deliver(delivery(trace('evt_err', { level: 'ERROR' }), rules), signal);
    await sink.deliver(delivery(trace('evt_other', { traceId: 't-2' }), rules), signal);
    const keys = rx.received.map((r) => r.json.dedup_key);
    expect(keys[0]).toBe(keys[1]);
    expect(keys[2]).not.toBe(keys[0]);
    expect(rx.received.map((r) => r.json.payload.severity)).toEqual(['warning', 'error', 'error']);
  });

  it('resolves a score incident when a later score on the same trace recovers', async () => {
    const rx = await receiver();
    const rules = [
      { name: 'faithfulness', when: { scoreName: 'faithfulness', scoreBelow: 0.5 }, sinks: ['pagerduty'], severity: 'critical', resolveWhen: { scoreAtLeast: 0.8 } },
    ];
    const sink = pdSink(rx.url, rules);
    await sink.deliver(delivery(score('evt_low'), rules), signal);
    await sink.deliver(delivery(score('evt_ok', { value: 0.9 }), rules), signal);
    const [trigger, resolve] = rx.received.map((r) => r.json);
    expect(trigger).toMatchObject({ event_action: 'trigger', dedup_key: 'langfuse-bridge:proj-1:trace:t-1:score:faithfulness' });
    expect(trigger?.payload.severity).toBe('critical');
    expect(trigger?.payload.summary).toBe('Langfuse: Low score: faithfulness = 0.2 on trace t-1');
    expect(resolve).toEqual({ routing_key: ROUTING_KEY, event_action: 'resolve', dedup_key: 'langfuse-bridge:proj-1:trace:t-1:score:faithfulness' });
  });

  it('dead-letters a 400 with what PagerDuty said, never showing the routing key', async () => {
    const rx = await receiver(() => ({
      status: 400,
      body: { status: 'invalid event', message: 'Event object is invalid', errors: [`'routing_key' ${ROUTING_KEY} is not valid`] },
    }));
    const res = await pdSink(rx.url).deliver(delivery(trace('evt_1')), signal);
    expect(res).toEqual({
      ok: false,
      retry: false,
      status: 400,
      reason: "PagerDuty answered 400: Event object is invalid: 'routing_key' <routing key> is not valid",
    });
  });

  it('retries 429 (with Retry-After), 500 and unreachable hosts', async () => {
    const limited = await receiver(() => ({ status: 429, body: { status: 'throttle event', message: 'Requests for this service are arriving too quickly' }, headers: { 'retry-after': '30' } }));
    expect(await pdSink(limited.url).deliver(delivery(trace('evt_1')), signal)).toMatchObject({ ok: false, retry: true, retryAfterMs: 30_000, status: 429 });
    const broken = await receiver(() => ({ status: 500, body: { message: 'internal' } }));
    expect(await pdSink(broken.url).deliver(delivery(trace('evt_1')), signal)).toEqual({
      ok: false,
      retry: true,
      status: 500,
      reason: 'PagerDuty answered 500: internal',
    });
    const down = await pdSink('http://127.0.0.1:9/v2/enqueue').deliver(delivery(trace('evt_1')), signal);
    expect(down).toMatchObject({ ok: false, retry: true });
    expect(down.ok ? '' : down.reason).not.toContain(ROUTING_KEY);
  });

  it('keeps the summary within 1024 characters', async () => {
    const rx = await receiver();
    await pdSink(rx.url).deliver(delivery(trace('evt_1', { statusMessage: 'x'.repeat(5000) })), signal);
    expect(rx.received[0]!.json.payload.summary.length).toBeLessThanOrEqual(1024);
  });
});
