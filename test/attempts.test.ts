/**
 * The attempt log: every attempt the dispatcher makes through the real webhook sink, against a real
 * receiver and a real SQLite file, with its outcome, status, error and a redacted excerpt of the answer.
 */
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Dispatcher } from '../src/delivery/index.js';
import { excerpt, RESPONSE_EXCERPT_BYTES } from '../src/sinks/text.js';
import { silentLogger } from '../src/ops/logger.js';
import { createWebhookSink } from '../src/sinks/webhook.js';
import { Store } from '../src/store/index.js';
import { tempDir, webhookSecret } from './helpers/cli.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';
import { waitFor } from './helpers/wait.js';

function event(id: string, traceId: string): { id: string; type: string; ts: string; body: string; sinks: string[] } {
  const ts = new Date().toISOString();
  return { id, type: 'trace.created', ts, body: JSON.stringify({ id, event: 'trace.created', timestamp: ts, data: { traceId, name: 'rag' } }), sinks: ['hook'] };
}

describe('attempt log', () => {
  let dir: { dir: string; cleanup: () => void };
  let rx: Receiver;
  let store: Store;
  let dispatcher: Dispatcher | null = null;
  const secret = webhookSecret();

  beforeEach(async () => {
    dir = tempDir('lfb-attempts-');
    rx = await startReceiver();
    store = new Store(path.join(dir.dir, 'bridge.db'));
  });
  afterEach(async () => {
    await dispatcher?.stop(1000);
    dispatcher = null;
    store.close();
    await rx.stop();
    dir.cleanup();
  });

  const start = (maxAttempts: number): Dispatcher => {
    const sink = createWebhookSink(
      { type: 'webhook', name: 'hook', url: rx.url, secret, signature: 'standard', events: ['*'], timeoutSeconds: 5, concurrency: 4 } as never,
      { userAgent: 'test' },
    );
    dispatcher = new Dispatcher(store, [sink], { retry: { maxAttempts, baseSeconds: 0.02 }, logger: silentLogger(), idleMs: 50 });
    dispatcher.start();
    return dispatcher;
  };

  it('records each attempt: retrying with status and answer, then delivered; the answer never carries our headers or secret', async () => {
    // The receiver echoes our signature header back in a long answer on the first two attempts.
    rx.setResponder((req, i) => {
      if (i >= 2) return { status: 202, body: 'accepted' };
      const sig = String(req.headers['webhook-signature']);
      return { status: 503, body: `busy; you sent ${sig} and ${secret}; ${'x'.repeat(600)}` };
    });
    store.enqueue([event('evt_a1', 'trace-1')]);
    start(5);
    await waitFor(() => store.listDeliveries({}).items[0]?.status === 'delivered', 15_000);
    await dispatcher!.stop(1000);
    const ev = store.eventDetail('evt_a1')!;
    const attempts = ev.sinks[0]!.attempts;
    expect(attempts.map((a) => a.outcome)).toEqual(['retrying', 'retrying', 'delivered']);
    expect(attempts.map((a) => a.statusCode)).toEqual([503, 503, 202]);
    expect(attempts[0]!.error).toMatch(/HTTP 503/);
    expect(attempts[2]!.error).toBeNull();
    // The answer is kept for failed attempts only (reading it costs the delivered ones time).
    expect(attempts[2]!.response).toBeNull();
    for (const a of attempts.slice(0, 2)) {
      expect(Buffer.byteLength(a.response!)).toBeLessThanOrEqual(RESPONSE_EXCERPT_BYTES);
      expect(a.response).toMatch(/^busy; you sent \[redacted\] and \[redacted\]; x+$/);
      expect(a.response).not.toContain(secret);
      expect(a.response).not.toContain('v1,');
      expect(a.durationMs).toBeGreaterThanOrEqual(0);
      expect(Date.parse(a.at)).toBeGreaterThan(Date.now() - 60_000);
    }
    // The delivery log's item reflects the last attempt.
    const item = store.listDeliveries({ traceId: 'trace-1' }).items[0]!;
    expect(item).toMatchObject({ eventId: 'evt_a1', status: 'delivered', attempts: 3, lastStatusCode: 202, lastError: null, traceId: 'trace-1' });
  });

  it('a dead letter keeps its attempts through pruning; a replay adds the new attempts after the old ones', async () => {
    rx.setMode({ status: 500, body: '{"error":"ticket system down"}' });
    store.enqueue([event('evt_d1', 'trace-d'), event('evt_ok', 'trace-ok')]);
    rx.setResponder((req) => (req.body.includes('evt_ok') ? { status: 200, body: 'ok' } : undefined));
    start(2);
    await waitFor(() => store.listDeliveries({}).items.every((d) => d.status === 'dead' || d.status === 'delivered'), 15_000);
    await dispatcher!.stop(1000);
    dispatcher = null;
    const dead = store.eventDetail('evt_d1')!.sinks[0]!;
    expect(dead.status).toBe('dead');
    expect(dead.attempts.map((a) => [a.outcome, a.statusCode, a.response])).toEqual([
      ['retrying', 500, '{"error":"ticket system down"}'],
      ['dead', 500, '{"error":"ticket system down"}'],
    ]);

    // Everything is older than the retention now: the delivered row and its attempts go, the dead one's stay.
    const later = Date.now() + 40 * 86_400_000;
    const pruned = store.prune(30, later);
    expect(pruned.attempts).toBe(1);
    expect(store.eventDetail('evt_ok')).toBeNull();
    expect(store.eventDetail('evt_d1')!.sinks[0]!.attempts).toHaveLength(2);

    // Replayed: the new attempt is appended to the history.
    rx.setMode({ status: 200, body: 'fine now' });
    expect(store.replayDeliveries({ deliveries: [{ eventId: 'evt_d1', sink: 'hook' }] })).toBe(1);
    start(2);
    await waitFor(() => store.eventDetail('evt_d1')!.sinks[0]!.status === 'delivered', 15_000);
    await dispatcher!.stop(1000);
    dispatcher = null;
    expect(store.eventDetail('evt_d1')!.sinks[0]!.attempts.map((a) => a.outcome)).toEqual(['retrying', 'dead', 'delivered']);
  });

  it('cuts an answer at 256 bytes without splitting a character', () => {
    const text = 'é'.repeat(200); // 400 bytes
    const cut = excerpt(text)!;
    expect(Buffer.byteLength(cut)).toBe(256);
    expect(cut).toBe('é'.repeat(128));
    const odd = `a${'é'.repeat(200)}`;
    expect(excerpt(odd)).toBe(`a${'é'.repeat(127)}`);
    expect(excerpt('')).toBeNull();
  });
});
