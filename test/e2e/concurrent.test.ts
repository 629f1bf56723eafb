/**
 * `backfill` may run while the daemon runs on the same database: no delivery goes out twice because
 * of it, and the live cursor never moves backwards.
 */
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, killLiveChildren } from '../helpers/cli.js';
import { withHarness } from '../helpers/harness.js';
import { byKey, expectedEvents, keyDiff } from '../helpers/sim.js';
import { delay, waitFor } from '../helpers/wait.js';

/** Whether process `pid` holds `file` open (Linux /proc). */
function holdsOpen(pid: number, file: string): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === file;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

beforeAll(() => assertBuilt());
afterAll(async () => killLiveChildren());

describe.concurrent('backfill next to a running daemon on one database', () => {
  it('delivers every event exactly once and leaves the live cursor where it was', () =>
    withHarness({ generation: 'v4', seed: 61 }, async (h) => {
      const { sim, rx } = h;
      const t0 = Date.now();
      const fromMs = t0 - 20 * 60_000;
      const toMs = t0 - 1_000;
      sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 400 });
      const expected = expectedEvents(sim, fromMs, toMs);
      // A slow-ish receiver keeps both processes' deliveries in flight at the same time.
      rx.setDelay(50);
      const env = h.env({ BRIDGE_POLL_INTERVAL_SECONDS: '1', BRIDGE_START_FROM: new Date(fromMs).toISOString() });
      const daemon = h.spawn(['run'], env);
      // The daemon has migrated the database (it does so before it calls Langfuse) and is polling (two
      // processes migrating a fresh database at the same instant is a separate test below).
      await waitFor(() => sim.requests.some((r) => r.path.includes('fromStartTime')), 15_000, 'the daemon polling');
      const backfill = h.spawn(['backfill', '--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()], env);
      const bExit = await backfill.wait(30_000);
      expect(bExit.code, backfill.describe()).toBe(0);
      await waitFor(() => keyDiff(expected.keys(), byKey(rx.accepted).keys()).missing.length === 0, 20_000, 'every event delivered').catch((e: Error) => {
        throw new Error(`${e.message}\n${daemon.describe()}`);
    });

    // The daemon's cursor, then a backfill of an older range: the cursor must not move back.
    const before = await h.status(env);
    const cursorsBefore = new Map(before.streams.map((s) => [s.source, Date.parse(s.cursor!)]));
    const older = await h.run(['backfill', '--from', new Date(fromMs - 3_600_000).toISOString(), '--to', new Date(fromMs).toISOString()], env, 30_000);
    expect(older.exit?.code, older.describe()).toBe(0);
    const after = await h.status(env);
    for (const s of after.streams) expect(Date.parse(s.cursor!), s.source).toBeGreaterThanOrEqual(cursorsBefore.get(s.source)!);

    daemon.kill('SIGTERM');
    expect((await daemon.wait(12_000)).code, daemon.describe()).toBe(0);

    const got = byKey(rx.accepted);
    expect(keyDiff(expected.keys(), got.keys())).toEqual({ missing: [], unexpected: [] });
    const twice = [...got].filter(([, rs]) => rs.length > 1).map(([k, rs]) => `${k}×${rs.length}`);
    expect(twice, 'delivered more than once').toEqual([]);
    expect(rx.requests.length).toBe(expected.size);
    const st = await h.status(env);
    expect(st.sinks.find((s) => s.name === 'webhook')).toMatchObject({ queued: 0, retrying: 0, delivering: 0, dead: 0, delivered: expected.size });
    }));

  // src/store/index.ts migrate() reads PRAGMA user_version outside the write transaction and applies
  // each migration without looking again inside it: a second process that read 0 before the first
  // one's migration committed runs the migration again and dies with "table meta already exists".
  (existsSync('/proc/self/fd') ? it : it.skip)('two processes opening a fresh database at the same time both start', () =>
    withHarness({ generation: 'v4' }, async (h) => {
      const file = h.db('fresh-race');
      const env = h.env({}, file);
      // Hold the write lock so that both processes read the schema version, then queue for the lock.
      const holder = new Database(file);
      holder.pragma('journal_mode = WAL');
      holder.prepare('BEGIN IMMEDIATE').run();
      // `replay` opens the database for writing (creating it); `status` only reads and would not.
      const procs = [h.spawn(['replay'], env), h.spawn(['replay'], env)];
      try {
        await waitFor(() => procs.every((p) => holdsOpen(p.pid, file) || !p.running), 15_000, 'both processes opening the database');
        await delay(1_000);
      } finally {
        holder.prepare('ROLLBACK').run();
        holder.close();
      }
      const exits = await Promise.all(procs.map((p) => p.wait(20_000)));
      for (const [i, e] of exits.entries()) expect(e.code, procs[i]!.describe()).toBe(0);
    }));
});
