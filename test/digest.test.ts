import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { buildDigest, digestMessage } from '../src/ops/digest.js';
import { Store } from '../src/store/index.js';
import { configErrorOf } from './helpers/config-error.js';

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

  it('rejects a bad cron expression in one line', () => {
    const msg = configErrorOf(() => loadConfig({ env: { LANGFUSE_PUBLIC_KEY: 'p', LANGFUSE_SECRET_KEY: 's', BRIDGE_DIGEST_CRON: 'every morning' } }));
    expect(msg).toMatch(/BRIDGE_DIGEST_CRON/);
    expect(loadConfig({ env: { LANGFUSE_PUBLIC_KEY: 'p', LANGFUSE_SECRET_KEY: 's', BRIDGE_DIGEST_CRON: '0 9 * * *' } }).digestCron).toBe('0 9 * * *');
  });
});
