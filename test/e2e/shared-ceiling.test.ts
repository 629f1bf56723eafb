/**
 * A daemon and a backfill on one database share one request ceiling: the backfill that does not set
 * BRIDGE_MAX_REQUESTS_PER_MINUTE uses the daemon's (and no longer waits forever behind its calls);
 * two set ceilings: the lower holds for both, each says so once, and a waiting process says what for.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, killLiveChildren } from '../helpers/cli.js';
import { withHarness } from '../helpers/harness.js';
import { expectedEvents } from '../helpers/sim.js';
import { waitFor } from '../helpers/wait.js';

const HOUR = 3_600_000;

beforeAll(() => assertBuilt());
afterAll(async () => killLiveChildren());

describe.concurrent('one request ceiling for the processes on a database', () => {
  it('a backfill that does not set the ceiling uses the daemon’s and finishes next to it', () =>
    withHarness({ generation: 'v2', seed: 71 }, async (h) => {
      const { sim } = h;
      const toMs = Math.floor(Date.now() / HOUR) * HOUR - HOUR;
      const fromMs = toMs - 2 * HOUR;
      sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 20 });
      // The daemon polls every second: three calls a poll on a v2 server, far more than 30 a minute.
      const daemon = h.spawn(['run'], h.env({ BRIDGE_POLL_INTERVAL_SECONDS: '1', BRIDGE_MAX_REQUESTS_PER_MINUTE: '600' }));
      await waitFor(() => sim.requests.filter((r) => r.path.startsWith('/api/public/traces?')).length >= 12, 30_000, 'the daemon spending more than 30 calls');
      const before = h.rx.accepted.length;
      const backfill = h.spawn(['backfill', '--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()], h.env({ BRIDGE_MAX_REQUESTS_PER_MINUTE: undefined }));
      const exit = await backfill.wait(45_000);
      expect(exit.code, backfill.describe()).toBe(0);
      expect(h.rx.accepted.length - before).toBeGreaterThanOrEqual(expectedEvents(sim, fromMs, toMs).size);
      const said = backfill.logs().filter((l) => /not set here: using 600 calls a minute/.test(String(l.msg)));
      expect(said, backfill.stderr.slice(-2000)).toHaveLength(1);
      daemon.kill('SIGTERM');
      expect((await daemon.wait(12_000)).code, daemon.describe()).toBe(0);
    }));

  it('of two set ceilings the lower holds for both, each says so once, and a waiting process says what it waits for', () =>
    withHarness({ generation: 'v4', seed: 72 }, async (h) => {
      const { sim } = h;
      const toMs = Math.floor(Date.now() / HOUR) * HOUR - HOUR;
      sim.generate({ from: new Date(toMs - 4 * HOUR), to: new Date(toMs), traces: 2000 });
      const daemon = h.spawn(['run'], h.env({ BRIDGE_POLL_INTERVAL_SECONDS: '1', BRIDGE_MAX_REQUESTS_PER_MINUTE: '600' }));
      await waitFor(() => sim.requests.filter((r) => r.path.startsWith('/api/public/v2/observations?fromStartTime')).length >= 3, 30_000, 'the daemon polling');
      const backfill = h.spawn(['backfill', '--from', new Date(toMs - 4 * HOUR).toISOString(), '--to', new Date(toMs).toISOString()], h.env({ BRIDGE_MAX_REQUESTS_PER_MINUTE: '12' }));
      const lower = /is (600|12) here and (12|600) in another process on this database \(pid \d+\): the lower, 12 calls a minute, holds for both/;
      await waitFor(() => daemon.logs().some((l) => lower.test(String(l.msg))) && backfill.logs().some((l) => lower.test(String(l.msg))), 20_000, 'both saying which ceiling holds').catch((e: Error) => {
        throw new Error(`${e.message}\n${daemon.describe()}\n${backfill.describe()}`);
      });
      // Both now share 12 calls a minute: the daemon, polling every second, waits and says so.
      await waitFor(() => daemon.logs().some((l) => /^poll waiting \d+ s/.test(String(l.msg))), 30_000, 'the daemon saying it waits').catch((e: Error) => {
        throw new Error(`${e.message}\n${daemon.describe()}`);
      });
      const waits = daemon.logs().filter((l) => /^poll waiting/.test(String(l.msg)));
      expect(String(waits[0]!.msg)).toMatch(/request ceiling: 12 calls a minute, shared by every process on this database; BRIDGE_MAX_REQUESTS_PER_MINUTE raises it|kept for a running backfill/);
      expect(daemon.logs().filter((l) => lower.test(String(l.msg)))).toHaveLength(1);
      expect(backfill.logs().filter((l) => lower.test(String(l.msg)))).toHaveLength(1);
      expect(backfill.running, backfill.describe()).toBe(true);
      backfill.kill('SIGTERM');
      daemon.kill('SIGTERM');
      await Promise.all([backfill.wait(12_000), daemon.wait(12_000)]);
    }));
});
