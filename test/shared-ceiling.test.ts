/**
 * One request ceiling per Langfuse project, shared by every process on the database: a process that
 * does not set it uses the one another process set; of two set ones the lower holds for both; live
 * polls come first, and a backfill always keeps a quarter of the ceiling.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CallLedger, LedgerOwner } from '../src/langfuse/rate-limiter.js';
import { Store } from '../src/store/index.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

const KEY = 'https://lf|pk';
function ledgers(...owners: LedgerOwner[]): CallLedger[] {
  const file = join(mkdtempSync(join(tmpdir(), 'bridge-ceiling-')), 'b.db');
  return owners.map((own) => {
    const s = new Store(file);
    cleanups.push(() => s.close());
    return s.callLedger(KEY, own);
  });
}

/** Reserves until the ledger says wait; returns how many calls went. */
function takeAll(l: CallLedger, now: number, limit = 10_000): number {
  let n = 0;
  while (n < limit && l.reserve(60_000, now).waitMs === 0) n++;
  return n;
}

describe('the shared request ceiling', () => {
  it('a process that does not set it uses the one another process set', () => {
    const [daemon, backfill] = ledgers({ max: 600, explicit: true, role: 'live' }, { max: 30, explicit: false, role: 'backfill' });
    const t0 = 1_000_000;
    // The daemon has spent more than the backfill's default in this minute.
    for (let i = 0; i < 40; i++) expect(daemon!.reserve(60_000, t0 + i).waitMs).toBe(0);
    const a = backfill!.reserve(60_000, t0 + 100);
    expect(a).toMatchObject({ waitMs: 0, ceiling: 600 });
    expect(a.peers).toEqual([expect.objectContaining({ max: 600, explicit: true, role: 'live' })]);
  });

  it('of two set ceilings the lower holds for both, and each learns of the other', () => {
    const [daemon, backfill] = ledgers({ max: 600, explicit: true, role: 'live' }, { max: 10, explicit: true, role: 'backfill' });
    const t0 = 1_000_000;
    expect(daemon!.reserve(60_000, t0).ceiling).toBe(600); // alone so far
    expect(backfill!.reserve(60_000, t0 + 1)).toMatchObject({ waitMs: 0, ceiling: 10 });
    const d = daemon!.reserve(60_000, t0 + 2);
    expect(d.ceiling).toBe(10);
    expect(d.peers).toEqual([expect.objectContaining({ max: 10, explicit: true })]);
    // 3 calls so far; together they get 7 more in this minute, not 600.
    let went = 0;
    for (let i = 0; i < 50; i++) if ((i % 2 ? daemon : backfill)!.reserve(60_000, t0 + 10 + i).waitMs === 0) went++;
    expect(went).toBe(7);
  });

  it('a backfill keeps a quarter next to a daemon that would take everything; past it, live polls come first', () => {
    const [daemon, backfill] = ledgers({ max: 20, explicit: true, role: 'live' }, { max: 20, explicit: true, role: 'backfill' });
    const t0 = 1_000_000;
    expect(backfill!.reserve(60_000, t0).waitMs).toBe(0); // the backfill is there
    // The daemon takes all it may: the rest of the backfill's quarter (5) stays free.
    expect(takeAll(daemon!, t0 + 1)).toBe(15);
    expect(daemon!.reserve(60_000, t0 + 2).reason).toBe('backfill');
    expect(takeAll(backfill!, t0 + 3)).toBe(4);
    expect(backfill!.reserve(60_000, t0 + 4).reason).toBe('ceiling');

    // A minute later the window is empty again. The daemon waits for room (it is full: 20 calls)…
    const t1 = t0 + 60_010;
    expect(takeAll(backfill!, t1)).toBe(20); // no live poll waiting: the backfill may use all of it
    const waitLive = daemon!.reserve(60_000, t1 + 1);
    expect(waitLive.reason).toBe('ceiling');
    // …and when room comes back, the backfill takes its quarter, then gives way to the waiting poll.
    const t2 = t1 + waitLive.waitMs + 1;
    expect(takeAll(backfill!, t2)).toBe(5);
    expect(backfill!.reserve(60_000, t2).reason).toBe('live');
    expect(takeAll(daemon!, t2 + 1)).toBe(15);
  });

  it('a backfill past its quarter leaves a daemon the room its polls need, even while the daemon is idle', () => {
    const [daemon, backfill] = ledgers({ max: 20, explicit: true, role: 'live' }, { max: 20, explicit: true, role: 'backfill' });
    const t0 = 1_000_000;
    daemon!.setNeed(8); // e.g. two calls a poll, every 15 s
    expect(daemon!.reserve(60_000, t0).waitMs).toBe(0);
    // The backfill takes what the daemon does not need: 20 − 8 − the daemon's one call so far.
    expect(takeAll(backfill!, t0 + 1)).toBe(12);
    expect(backfill!.reserve(60_000, t0 + 2).reason).toBe('live');
    // The daemon's next polls find their room without waiting.
    expect(takeAll(daemon!, t0 + 3)).toBe(7);
  });

  it('a daemon alone uses the whole ceiling', () => {
    const [daemon] = ledgers({ max: 20, explicit: true, role: 'live' });
    expect(takeAll(daemon!, 1_000_000)).toBe(20);
  });

  it('a process that has finished no longer holds a share', () => {
    const [daemon, backfill] = ledgers({ max: 20, explicit: true, role: 'live' }, { max: 20, explicit: true, role: 'backfill' });
    expect(backfill!.reserve(60_000, 1_000_000).waitMs).toBe(0);
    backfill!.release();
    expect(takeAll(daemon!, 1_000_001)).toBe(19);
  });
});
