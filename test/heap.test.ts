import { describe, expect, it } from 'vitest';
import { boundHeapGrowth } from '../src/ops/heap.js';

describe('heap growth bound', () => {
  it('is set unless the user gave a heap flag of their own', () => {
    expect(boundHeapGrowth({ NODE_OPTIONS: '--max-old-space-size=512' }, [])).toBe(false);
    expect(boundHeapGrowth({}, ['--heap-growing-percent=300'])).toBe(false);
    expect(boundHeapGrowth({ NODE_OPTIONS: '--enable-source-maps' }, [])).toBe(true);
  });
});
