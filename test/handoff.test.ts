import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Dispatcher } from '../src/delivery/index.js';
import { Waker } from '../src/delivery/waker.js';
import { silentLogger } from '../src/ops/logger.js';
import type { Sink } from '../src/sinks/types.js';
import { OWNER, Store, type NewEvent } from '../src/store/index.js';
import { memorySink } from './helpers/memory-sink.js';
import { sqlite } from './helpers/sqlite.js';

const log = silentLogger();
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const events = (prefix: string, n: number, sinks: string[]): NewEvent[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, type: 'trace.created', ts: new Date(0).toISOString(), body: `{"id":"${prefix}${i}"}`, sinks }));

function setup(sinks: Sink[]): { store: Store; dispatcher: Dispatcher } {
  const store = new Store(join(mkdtempSync(join(tmpdir(), 'bridge-handoff-')), 'b.db'));
  const dispatcher = new Dispatcher(store, sinks, { retry: { maxAttempts: 3, baseSeconds: 0.01 }, logger: log, idleMs: 20 });
  cleanups.push(() => store.close());
  return { store, dispatcher };
}

/** Starts a dispatcher and lets its first (empty) claim run, after which it has caught up with the outbox. */
async function startCaughtUp(dispatcher: Dispatcher): Promise<void> {
  dispatcher.start();
  cleanups.push(() => dispatcher.stop(500));
  await new Promise((r) => setTimeout(r, 50));
}

const until = async (check: () => boolean, ms = 5_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('hand-off of new rows to a dispatcher that has caught up', () => {
  it('writes them claimed by this process in the same transaction, then delivers them without a claim', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = memorySink('s', async () => {
      await gate;
      return { ok: true };
    });
    const { store, dispatcher } = setup([s]);
    await startCaughtUp(dispatcher);
    const handoff = dispatcher.handoff();
    const r = store.write(() => store.enqueue(events('h', 3, ['s']), {}, Date.now(), handoff));
    expect(r.inserted).toBe(3);
    // Durable before anything is sent: committed as 'delivering', owned by this process, with a lease.
    const rows = sqlite(store).prepare(`SELECT status, owner, attempts, lease_until FROM outbox ORDER BY seq`).all() as Array<{ status: string; owner: string; attempts: number; lease_until: number }>;
    expect(rows.map((x) => [x.status, x.owner, x.attempts])).toEqual(Array(3).fill(['delivering', OWNER, 1]));
    expect(rows.every((x) => x.lease_until > Date.now())).toBe(true);
    expect(s.got).toEqual([]);
    handoff.handOver();
    release();
    await dispatcher.drain();
    expect(s.got.map((d) => d.eventId)).toEqual(['h0', 'h1', 'h2']);
    expect(store.counts().get('s')).toMatchObject({ delivered: 3, delivering: 0, queued: 0 });
  });

  it('hands over what the router decided each sink sends, as a claim reads it', async () => {
    const s = memorySink('s');
    const { store, dispatcher } = setup([s]);
    await startCaughtUp(dispatcher);
    const route = '[{"rule":"r","action":"trigger","dedupKey":"k","severity":"error","mode":"once","label":"error trace"}]';
    const handoff = dispatcher.handoff();
    store.write(() => store.enqueue([{ ...events('d', 1, ['s'])[0]!, routes: { s: route } }], {}, Date.now(), handoff));
    handoff.handOver();
    await dispatcher.drain();
    expect(s.got.map((d) => [d.eventId, d.route])).toEqual([['d0', route]]);
    expect(sqlite(store).prepare(`SELECT route FROM outbox`).pluck().all()).toEqual([route]);
  });

  it('a transaction that rolls back hands nothing over', async () => {
    const s = memorySink('s');
    const { store, dispatcher } = setup([s]);
    await startCaughtUp(dispatcher);
    const handoff = dispatcher.handoff();
    expect(() =>
      store.write(() => {
        store.enqueue(events('x', 2, ['s']), {}, Date.now(), handoff);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    // The caller hands over only after a commit; the rows do not exist.
    expect(store.counts().get('s')).toBeUndefined();
  });

  it('rows beyond its room stay queued, and later rows wait behind them until a claim catches up', async () => {
    const s = memorySink('s');
    const { store, dispatcher } = setup([s]);
    await startCaughtUp(dispatcher);
    const room = dispatcher.roomFor('s');
    expect(room).toBeGreaterThan(0);
    const handoff = dispatcher.handoff();
    store.write(() => store.enqueue(events('r', room + 5, ['s']), {}, Date.now(), handoff));
    const byStatus = sqlite(store).prepare(`SELECT status, COUNT(*) AS n FROM outbox GROUP BY status`).all() as Array<{ status: string; n: number }>;
    expect(Object.fromEntries(byStatus.map((x) => [x.status, x.n]))).toEqual({ delivering: room, queued: 5 });
    expect(dispatcher.roomFor('s')).toBe(0); // fell behind: new rows go through the outbox queue
    handoff.handOver();
    dispatcher.wake();
    await dispatcher.drain();
    expect(s.got).toHaveLength(room + 5);
    expect(new Set(s.got.map((d) => d.eventId)).size).toBe(room + 5);
  });

  it('a stopped dispatcher takes nothing, and rows of another origin are left to their own', async () => {
    const s = memorySink('s');
    const { store, dispatcher } = setup([s]);
    expect(dispatcher.roomFor('s')).toBe(0);
    const other = new Dispatcher(store, [s], { retry: { maxAttempts: 3, baseSeconds: 0.01 }, logger: log, idleMs: 20, origin: 'backfill:x' });
    await startCaughtUp(other);
    store.write(() => store.enqueue(events('o', 2, ['s']), { origin: 'live' }, Date.now(), other.handoff()));
    expect((sqlite(store).prepare(`SELECT COUNT(*) AS n FROM outbox WHERE status = 'queued'`).get() as { n: number }).n).toBe(2);
  });

  it('rows handed to a process that died are taken back at the next start', async () => {
    const s = memorySink('s');
    const { store } = setup([s]);
    // As a killed process leaves them: committed claimed, never delivered.
    store.write(() => store.enqueue(events('d', 2, ['s'])));
    sqlite(store).prepare(`UPDATE outbox SET status = 'delivering', attempts = 1, owner = ?, lease_until = ?`).run(`${OWNER.split(':')[0]}:999999999:dead`, Date.now() + 600_000);
    const next = new Dispatcher(store, [s], { retry: { maxAttempts: 3, baseSeconds: 0.01 }, logger: log, idleMs: 20 });
    next.start();
    cleanups.push(() => next.stop(500));
    await until(() => s.got.length === 2);
    await next.drain();
    expect(store.counts().get('s')).toMatchObject({ delivered: 2 });
  });
});

describe('a delivery that waited in memory for most of its lease', () => {
  /** Two rows on a sink that sends one at a time; the first attempt waits until released. */
  async function twoWaiting(): Promise<{ store: Store; sink: ReturnType<typeof memorySink>; release: () => void; dispatcher: Dispatcher }> {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const sink = { ...memorySink('s', async (d) => (d.eventId === 'w0' ? (await gate, { ok: true as const }) : { ok: true as const })), concurrency: 1 };
    const { store, dispatcher } = setup([sink]);
    store.write(() => store.enqueue(events('w', 2, ['s'])));
    dispatcher.start();
    cleanups.push(() => dispatcher.stop(500));
    await until(() => sink.got.length === 1); // w0 in flight, w1 claimed and waiting behind it
    return { store, sink, release, dispatcher };
  }
  const leaseOf = (store: Store, id: string): { owner: string; lease_until: number } =>
    sqlite(store).prepare(`SELECT owner, lease_until FROM outbox WHERE event_id = ?`).get(id) as { owner: string; lease_until: number };

  it('is not sent when another process took it back meanwhile', async () => {
    const { store, sink, release, dispatcher } = await twoWaiting();
    sqlite(store).prepare(`UPDATE outbox SET owner = 'elsewhere:1:x' WHERE event_id = 'w1'`).run();
    const realNow = Date.now.bind(Date);
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 300_000); // most of the lease has passed
    try {
      release();
      await until(() => dispatcher['inflight'].size === 0);
    } finally {
      spy.mockRestore();
    }
    expect(sink.got.map((d) => d.eventId)).toEqual(['w0']);
    expect(leaseOf(store, 'w1').owner).toBe('elsewhere:1:x');
  });

  it('is held longer, then sent, when it is still this process\'s', async () => {
    const { store, sink, release } = await twoWaiting();
    const before = leaseOf(store, 'w1');
    const realNow = Date.now.bind(Date);
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 300_000);
    try {
      release();
      await until(() => sink.got.length === 2);
    } finally {
      spy.mockRestore();
    }
    expect(leaseOf(store, 'w1').lease_until).toBeGreaterThan(before.lease_until);
  });
});

describe('a sink that takes deliveries in groups', () => {
  /** Records each group's event ids; fails the first `failures` groups (retryable); waits for `gate` when given. */
  function groupSink(opts: { failures?: number; gate?: Promise<void> } = {}) {
    const groups: string[][] = [];
    let failures = opts.failures ?? 0;
    const sink: Sink & { groups: string[][] } = {
      ...memorySink('g'),
      concurrency: 1,
      groups,
      async deliverGroup(ds) {
        groups.push(ds.map((d) => d.eventId));
        if (opts.gate && groups.length === 1) await opts.gate;
        if (failures > 0) {
          failures--;
          return { ok: false, retry: true, reason: 'down' };
        }
        return { ok: true };
      },
    };
    return sink;
  }
  const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

  it('gets every row once, in order, in groups of at most 256, and never one call per row', async () => {
    const sink = groupSink();
    const { store, dispatcher } = setup([sink]);
    store.write(() => store.enqueue(events('q', 600, ['g'])));
    dispatcher.start();
    cleanups.push(() => dispatcher.stop(500));
    await dispatcher.drain();
    expect(sink.groups.flat()).toEqual(ids('q', 600));
    expect(dispatcher['load'].get('g')).toBe(0);
    expect(sink.groups.every((g) => g.length <= 256)).toBe(true);
    expect(sink.groups.length).toBeLessThanOrEqual(6);
    expect(store.counts().get('g')).toMatchObject({ delivered: 600, delivering: 0, queued: 0, retrying: 0 });
  });

  it('a failed group puts each of its rows on the retry schedule, and the next attempt delivers them', async () => {
    const sink = groupSink({ failures: 1 });
    const { store, dispatcher } = setup([sink]);
    store.write(() => store.enqueue(events('f', 10, ['g'])));
    dispatcher.start();
    cleanups.push(() => dispatcher.stop(500));
    await dispatcher.drain();
    // Each row gets its own jittered retry time, so the second attempts may come in several groups.
    expect(sink.groups[0]).toEqual(ids('f', 10));
    expect(sink.groups.slice(1).flat().sort()).toEqual(ids('f', 10).sort());
    const attempts = sqlite(store).prepare(`SELECT DISTINCT attempts, status FROM outbox`).all();
    expect(attempts).toEqual([{ attempts: 2, status: 'delivered' }]);
  });

  it('takes new rows by hand-off, in groups', async () => {
    const sink = groupSink();
    const { store, dispatcher } = setup([sink]);
    await startCaughtUp(dispatcher);
    const handoff = dispatcher.handoff();
    store.write(() => store.enqueue(events('h', 300, ['g']), {}, Date.now(), handoff));
    // Written claimed and taken straight into memory: no claim is left to make.
    expect(store.counts().get('g')).toMatchObject({ delivering: 300, queued: 0 });
    handoff.handOver();
    expect(dispatcher['inflight'].size).toBe(300);
    await dispatcher.drain();
    expect(dispatcher['load'].get('g')).toBe(0);
    expect(sink.groups.map((g) => g.length)).toEqual([256, 44]);
    expect(sink.groups.flat()).toEqual(ids('h', 300));
    expect(store.counts().get('g')).toMatchObject({ delivered: 300 });
  });

  it('leaves out of a group a row that another process took back while it waited', async () => {
    let release!: () => void;
    const sink = groupSink({ gate: new Promise<void>((r) => (release = r)) });
    const { store, dispatcher } = setup([sink]);
    await startCaughtUp(dispatcher);
    const handoff = dispatcher.handoff();
    store.write(() => store.enqueue(events('w', 300, ['g']), {}, Date.now(), handoff));
    handoff.handOver();
    await until(() => sink.groups.length === 1); // the first group in flight, the second waiting behind it
    sqlite(store).prepare(`UPDATE outbox SET owner = 'elsewhere:1:x' WHERE event_id = 'w299'`).run();
    const realNow = Date.now.bind(Date);
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 300_000); // most of the lease has passed
    try {
      release();
      await until(() => sink.groups.length === 2 && dispatcher['inflight'].size === 0);
    } finally {
      spy.mockRestore();
    }
    expect(sink.groups[1]).toEqual(ids('w', 299).slice(256));
    expect(dispatcher['load'].get('g')).toBe(0);
  });

  it('records every row of a group even when an outcome hook throws', async () => {
    const sink = groupSink();
    const store = new Store(join(mkdtempSync(join(tmpdir(), 'bridge-handoff-')), 'b.db'));
    cleanups.push(() => store.close());
    let calls = 0;
    const hooks = {
      onOutcome: () => {
        if (++calls === 1) throw new Error('metrics down');
      },
    };
    const dispatcher = new Dispatcher(store, [sink], { retry: { maxAttempts: 3, baseSeconds: 0.01 }, logger: log, idleMs: 20, hooks });
    store.write(() => store.enqueue(events('t', 5, ['g'])));
    dispatcher.start();
    cleanups.push(() => dispatcher.stop(500));
    await dispatcher.drain();
    expect(calls).toBe(5);
    expect(store.counts().get('g')).toMatchObject({ delivered: 5, delivering: 0 });
  });

  it('a paced sink is not given groups: pacing is per attempt', async () => {
    const sink = { ...groupSink(), minIntervalMs: 1 };
    const { store, dispatcher } = setup([sink]);
    store.write(() => store.enqueue(events('p', 3, ['g'])));
    dispatcher.start();
    cleanups.push(() => dispatcher.stop(500));
    await dispatcher.drain();
    expect(sink.groups).toEqual([]);
    expect(sink.got.map((d) => d.eventId)).toEqual(ids('p', 3));
  });
});

describe('waker', () => {
  it('keeps a wake that came while nobody slept', async () => {
    const w = new Waker();
    w.wake();
    const t = Date.now();
    // The wake ends the sleep, not its timeout (the margin is for a loaded machine).
    await w.sleep(30_000);
    expect(Date.now() - t).toBeLessThan(10_000);
  });

  it('a sleep cut short by its other condition does not swallow the next wake', async () => {
    const w = new Waker();
    await w.sleep(2_000, Promise.resolve());
    w.wake();
    const t = Date.now();
    await w.sleep(30_000);
    expect(Date.now() - t).toBeLessThan(10_000);
  });
});
