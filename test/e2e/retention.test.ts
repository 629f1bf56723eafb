/**
 * Retention: the daemon's prune pass forgets delivered rows and seen versions older than
 * BRIDGE_RETENTION_DAYS (and keeps younger ones), and a backfill reaching past the retention warns
 * that it may redeliver. The clock is the database's: rows a real backfill wrote are aged in the
 * file, then the built CLI runs on it.
 */
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, killLiveChildren, type CliProcess } from '../helpers/cli.js';
import { withHarness } from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

beforeAll(() => assertBuilt());
afterAll(async () => killLiveChildren());

const DAY = 86_400_000;
const HOUR = 3_600_000;
const WARNING = 'the range reaches past the retention';

interface Rows {
  outboxGen: number;
  outboxOther: number;
  seenObs: number;
  seenOther: number;
  eventsGen: number;
}

function rows(file: string): Rows {
  const db = new Database(file, { readonly: true });
  try {
    const n = (sql: string): number => (db.prepare(sql).get() as { n: number }).n;
    const genEvent = `event_seq IN (SELECT seq FROM events WHERE type = 'generation.created')`;
    return {
      outboxGen: n(`SELECT COUNT(*) AS n FROM outbox WHERE ${genEvent}`),
      outboxOther: n(`SELECT COUNT(*) AS n FROM outbox WHERE NOT ${genEvent}`),
      seenObs: n(`SELECT COUNT(*) AS n FROM seen WHERE kind = 'obs'`),
      seenOther: n(`SELECT COUNT(*) AS n FROM seen WHERE kind <> 'obs'`),
      eventsGen: n(`SELECT COUNT(*) AS n FROM events WHERE type = 'generation.created'`),
    };
  } finally {
    db.close();
  }
}

/** Runs the daemon until its first poll pass (and the prune pass right after it) is over, then stops it. */
async function onePass(spawn: () => CliProcess): Promise<CliProcess> {
  const p = spawn();
  await waitFor(() => p.logs().some((l) => l.msg === 'poll found nothing new' || l.msg === 'poll committed new events'), 20_000, `the first poll\n${p.stderr}`);
  p.kill('SIGTERM');
  const exit = await p.wait(15_000);
  expect(exit.code, p.describe()).toBe(0);
  return p;
}

describe.concurrent('retention', () => {
  it('the daemon prunes delivered rows and seen versions older than BRIDGE_RETENTION_DAYS, and only those', () =>
    withHarness({ generation: 'v4', seed: 31 }, async (h) => {
      const toMs = Date.now() - 60_000;
      const fromMs = toMs - HOUR;
      h.sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 8, observationsPerTrace: 3 });
      const db = h.db('ret');
      const env = h.env({}, db);
      const bf = await h.run(['backfill', '--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()], env, 30_000);
      expect(bf.exit?.code, bf.describe()).toBe(0);
      const fresh = rows(db);
      expect(fresh.outboxGen).toBeGreaterThan(0);
      expect(fresh.seenObs).toBeGreaterThan(0);

      // Age the generations' rows by 40 days, as if written then; everything else stays young.
      const rw = new Database(db);
      const old = Date.now() - 40 * DAY;
      rw.prepare(`UPDATE outbox SET delivered_at = ?, created_at = ? WHERE event_seq IN (SELECT seq FROM events WHERE type = 'generation.created')`).run(old, old);
      rw.prepare(`UPDATE events SET created_at = ? WHERE type = 'generation.created'`).run(old);
      rw.prepare(`UPDATE seen SET seen_at = ? WHERE kind = 'obs'`).run(old);
      rw.close();

      const daemon = (days: string): Record<string, string> => ({ ...env, BRIDGE_RETENTION_DAYS: days, BRIDGE_START_FROM: new Date().toISOString(), BRIDGE_POLL_INTERVAL_SECONDS: '3600' });
      // A retention longer than their age keeps them.
      const keep = await onePass(() => h.spawn(['run', '--log-level', 'debug'], daemon('45')));
      expect(keep.logs().filter((l) => l.msg === 'pruned rows older than the retention')).toEqual([]);
      expect(rows(db)).toEqual(fresh);

      // A shorter one forgets them, and nothing younger.
      const prune = await onePass(() => h.spawn(['run', '--log-level', 'debug'], daemon('30')));
      const line = prune.logs().find((l) => l.msg === 'pruned rows older than the retention');
      expect(line, prune.describe()).toMatchObject({ outbox: fresh.outboxGen, seen: fresh.seenObs });
      expect(rows(db)).toEqual({ outboxGen: 0, outboxOther: fresh.outboxOther, seenObs: 0, seenOther: fresh.seenOther, eventsGen: 0 });
    }));

  it('a backfill reaching past BRIDGE_RETENTION_DAYS warns that it may redeliver; one within it does not', () =>
    withHarness({ generation: 'v4', seed: 32 }, async (h) => {
      const env = h.env({ BRIDGE_RETENTION_DAYS: '30' }, h.db('warn'));
      const to = new Date(Date.now() - 20 * DAY).toISOString();
      const warned = async (fromDaysAgo: number, extra: Record<string, string> = {}): Promise<boolean> => {
        const p = await h.run(['backfill', '--from', new Date(Date.now() - fromDaysAgo * DAY).toISOString(), '--to', to], { ...env, ...extra }, 30_000);
        expect(p.exit?.code, p.describe()).toBe(0);
        return p.logs().some((l) => String(l.msg).includes(WARNING) && l.level === 40);
      };
      expect(await warned(31)).toBe(true);
      expect(await warned(29)).toBe(false);
      expect(await warned(31, { BRIDGE_RETENTION_DAYS: '60' })).toBe(false);
    }));
});
