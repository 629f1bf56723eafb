import { describe, expect, it } from 'vitest';
import { WrittenFacts } from '../src/monitors/facts.js';
import type { Fact } from '../src/store/monitors.js';

function fact(id: string, over: Partial<Fact> = {}): Fact {
  return {
    kind: 'observation', id, tsMs: 1_000, endMs: 2_000, type: 'GENERATION', name: 'rag-query', environment: 'production',
    tags: ['a'], model: 'gpt-4o', dataType: null, level: 1, latency: 1, cost: 0.01, tokens: 100, value: null, ...over,
  };
}

describe('the facts a poller last wrote', () => {
  it('passes new and changed facts, and none that were written as they are', () => {
    const w = new WrittenFacts();
    const first = w.changed([fact('o1'), fact('o2')]);
    expect(first.facts.map((f) => f.id)).toEqual(['o1', 'o2']);
    first.written();
    expect(w.changed([fact('o1'), fact('o2')]).facts).toEqual([]);
    expect(w.changed([fact('o1', { level: 3 }), fact('o2', { tags: ['a', 'b'] })]).facts.map((f) => f.id)).toEqual(['o1', 'o2']);
    // The same id of another kind is another item.
    expect(w.changed([fact('o1', { kind: 'trace' })]).facts).toHaveLength(1);
  });

  it('remembers nothing of a transaction that did not commit', () => {
    const w = new WrittenFacts();
    w.changed([fact('o1')]); // rolled back: written() never called
    expect(w.changed([fact('o1')]).facts).toHaveLength(1);
  });

  it('forgets the oldest past its cap, which are then written again', () => {
    const w = new WrittenFacts(2);
    w.changed([fact('o1'), fact('o2'), fact('o3')]).written();
    expect(w.changed([fact('o1'), fact('o2'), fact('o3')]).facts.map((f) => f.id)).toEqual(['o1']);
  });
});
