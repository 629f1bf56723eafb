import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { OWNER, ownerIsDead } from '../src/store/index.js';

describe('ownerIsDead: whether the process that claimed a row or a lock is gone', () => {
  it('this process is alive; another host is never taken for dead', () => {
    expect(ownerIsDead(OWNER)).toBe(false);
    expect(ownerIsDead(`elsewhere.example:${process.pid}:abc`)).toBe(false);
  });

  it('an earlier start with the same pid on this host (a restarted container is pid 1 again) is gone', () => {
    expect(ownerIsDead(`${os.hostname()}:${process.pid}:earlier`)).toBe(true);
  });
});
