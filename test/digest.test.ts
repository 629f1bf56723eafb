import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { Dispatcher } from '../src/delivery/index.js';
import { silentLogger } from '../src/ops/logger.js';
import { buildDigest, digestId, digestMessage, enqueueDigest, type Digest } from '../src/ops/digest.js';
import { createSlackSink } from '../src/sinks/slack/index.js';
import { Store } from '../src/store/index.js';
import { configErrorOf } from './helpers/config-error.js';
import { memorySink } from './helpers/memory-sink.js';
import { startReceiver } from './helpers/receiver.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('daily digest', () => {
  it('sums the day’s tokens and cost per model, error traces and low scores from stored events', () => {
    const store = new Store(join(mkdtempSync(join(tmpdir(), 'digest-')), 'b.db'));
    const at = (h: number) => new Date(Date.UTC(2026, 10, 26, h)).toISOString();
    const ev = (id: string, type: string, ts: string, data: Record<string, unknown>) => ({ id, type, ts, body: JSON.stringify({ id, event: type, timestamp: ts, data }), sinks: ['s'] });
    store.write(() =>
      store.enqueue([
        ev('g1', 'generation.created', at(1), { model: 'gpt-4o', usage: { totalTokens: 100 }, totalCost: 0.01 }),
        ev('g2', 'generation.created', at(2), { model: 'gpt-4o', usage: { totalTokens: 50 }, totalCost: 0.02 }),
        ev('g3', 'generation.created', at(3), { model: 'claude', usage: { totalTokens: 10 }, totalCost: 0.5 }),
        ev('old', 'generation.created', at(0).replace('26T', '24T'), { model: 'gpt-4o', usage: { totalTokens: 999 }, totalCost: 9 }),
        ev('t1', 'trace.updated', at(4), { level: 'ERROR' }),
        ev('t2', 'trace.updated', at(4), { level: 'WARNING' }),
        ev('s1', 'score.created', at(5), { name: 'accuracy', dataType: 'NUMERIC', value: 0.2 }),
        ev('s2', 'score.created', at(5), { name: 'accuracy', dataType: 'NUMERIC', value: 0.7 }),
        ev('s3', 'score.created', at(5), { name: 'ok', dataType: 'BOOLEAN', value: false }),
      ]),
    );
    const d = buildDigest(store, Date.UTC(2026, 10, 26), Date.UTC(2026, 10, 27));
    expect(d.models).toEqual([
      { model: 'claude', generations: 1, tokens: 10, cost: 0.5 },
      { model: 'gpt-4o', generations: 2, tokens: 150, cost: 0.03 },
    ]);
    expect(d.errorTraces).toBe(1);
    expect(d.lowScores).toEqual([{ name: 'accuracy', count: 1 }]);
    const msg = digestMessage(d);
    expect(msg.text).toContain('160 tokens');
    expect(msg.text).toContain('$0.5300');
    expect(msg.text).toContain('accuracy ×1');
    store.close();
  });

  it('goes to the Slack sinks through the outbox, retried like any Slack message, and to no other sink', async () => {
    const store = new Store(join(mkdtempSync(join(tmpdir(), 'digest-')), 'b.db'));
    cleanups.push(() => store.close());
    const receiver = await startReceiver();
    cleanups.push(() => receiver.stop());
    receiver.failNext(500, 1);
    // The digest comes with its message made: nothing is decided about it at delivery.
    const decideNow = (): never => {
      throw new Error('the digest was decided about at delivery');
    };
    const slack = createSlackSink(
      { type: 'slack', name: 'slack', url: receiver.url, events: ['*'], timeoutSeconds: 2 },
      { decideNow, unrouted: false, langfuseBaseUrl: 'http://langfuse.test', alertBurst: 20, userAgent: 'langfuse-bridge/test', minPostGapMs: 0 },
    );
    cleanups.push(() => slack.close?.());
    const hook = memorySink('hook');
    const d: Digest = { since: '2026-11-26T00:00:00.000Z', until: '2026-11-27T00:00:00.000Z', models: [{ model: 'gpt-4o', generations: 2, tokens: 150, cost: 0.03 }], errorTraces: 1, lowScores: [] };
    const id = enqueueDigest(store, ['slack'], d);
    // The same run queued again (a restart within its minute) is posted once; another run is another digest.
    expect(enqueueDigest(store, ['slack'], d)).toBe(id);
    expect(enqueueDigest(store, ['slack'], { ...d, since: '2026-11-26T00:00:01.234Z', until: '2026-11-27T00:00:01.234Z' })).toBe(id);
    expect(digestId({ ...d, until: '2026-11-27T12:00:00.000Z' })).not.toBe(id);
    const dispatcher = new Dispatcher(store, [slack, hook], { retry: { maxAttempts: 3, baseSeconds: 0.01 }, logger: silentLogger(), idleMs: 20 });
    dispatcher.start();
    cleanups.push(() => dispatcher.stop(500));
    await dispatcher.drain();
    // The first post failed (500) and was retried on the schedule; the message is the digest's own.
    expect(receiver.requests.map((r) => r.status)).toEqual([500, 200]);
    expect(JSON.parse(receiver.requests[1]!.body)).toEqual(digestMessage(d));
    expect(hook.got).toEqual([]);
    expect(store.counts().get('slack')).toMatchObject({ delivered: 1, dead: 0 });
    expect(store.counts().has('hook')).toBe(false);
  });

  it('rejects a bad cron expression in one line', () => {
    const msg = configErrorOf(() => loadConfig({ env: { LANGFUSE_PUBLIC_KEY: 'p', LANGFUSE_SECRET_KEY: 's', BRIDGE_DIGEST_CRON: 'every morning' } }));
    expect(msg).toMatch(/BRIDGE_DIGEST_CRON/);
    expect(loadConfig({ env: { LANGFUSE_PUBLIC_KEY: 'p', LANGFUSE_SECRET_KEY: 's', BRIDGE_DIGEST_CRON: '0 9 * * *' } }).digestCron).toBe('0 9 * * *');
  });
});
