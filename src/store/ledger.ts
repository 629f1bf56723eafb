/**
 * The request ceiling shared by every process on one database: each Langfuse call is recorded in
 * `api_calls`, and each process's own setting and role in `meta`, so all of them count one window.
 */
import type { CallLedger, LedgerAnswer, LedgerOwner, LedgerPeer } from '../langfuse/rate-limiter.js';
import type { Meta } from './meta.js';
import { OWNER } from './owner.js';
import type { Sql } from './sql.js';

const TRIM = 'DELETE FROM api_calls WHERE key IN (?, ?) AND at <= ?';
const WINDOW = 'SELECT key, COUNT(*) AS n, MIN(at) AS oldest FROM api_calls WHERE key IN (?, ?) GROUP BY key';
const ADD = 'INSERT INTO api_calls (key, at) VALUES (?, ?)';

/**
 * A CallLedger for one Langfuse project, for one process (`own`): its calls share one window with
 * every other process's, under one ceiling (the lowest any of them set; the default when none did).
 * Live polls come first, but a backfill always keeps a quarter of it.
 */
export function callLedger(sql: Sql, meta: Meta, key: string, own: LedgerOwner): CallLedger {
  const id = `${OWNER}:${Math.random().toString(36).slice(2, 8)}`;
  // Backfill calls are kept under their own key, so that a backfill's share can be counted.
  const backfillKey = `${key}#backfill`;
  const callKey = own.role === 'backfill' ? backfillKey : key;
  let need = 0;
  // This process's record, rewritten when it changes or every 30 s: not once per call. Peers take
  // a record for gone only after 90 s without one.
  let written = { what: '', at: 0 };
  const register = (now: number, waitingUntil: number): void => {
    const what = JSON.stringify({ max: own.max, explicit: own.explicit, role: own.role, pid: process.pid, need, waitingUntil });
    if (what === written.what && now - written.at < 30_000) return;
    meta.putLedgerRecord(key, id, JSON.stringify({ max: own.max, explicit: own.explicit, role: own.role, pid: process.pid, need, seen: now, waitingUntil }));
    written = { what, at: now };
  };
  const others = (now: number): LedgerPeer[] => {
    const out: LedgerPeer[] = [];
    for (const r of meta.ledgerRecords(key)) {
      if (r.id === id) continue;
      let p: LedgerPeer & { seen: number };
      try {
        p = JSON.parse(r.value) as LedgerPeer & { seen: number };
      } catch {
        continue;
      }
      // A process that made no call and waited for none in 90 s is gone (or idle): forget it.
      if (p.seen < now - 90_000 && p.waitingUntil < now) meta.forgetLedgerRecord(key, r.id);
      else out.push(p);
    }
    return out;
  };
  const reserve = sql.writer((windowMs: number, now: number): LedgerAnswer => {
    const peers = others(now);
    const set = [...(own.explicit ? [own.max] : []), ...peers.filter((p) => p.explicit).map((p) => p.max)];
    const ceiling = set.length ? Math.min(...set) : own.max;
    const quarter = Math.max(1, Math.ceil(ceiling / 4));
    const answer = (waitMs: number, reason: LedgerAnswer['reason']): LedgerAnswer => {
      register(now, waitMs > 0 ? now + waitMs : 0);
      return { waitMs, reason, ceiling, peers };
    };
    const pausedUntil = meta.ledgerPausedUntil(key);
    if (pausedUntil > now) return answer(pausedUntil - now, 'pause');
    sql.prepare(TRIM).run(key, backfillKey, now - windowMs);
    let live = { n: 0, oldest: now };
    let backfill = { n: 0, oldest: now };
    for (const r of sql.prepare(WINDOW).all(key, backfillKey) as Array<{ key: string; n: number; oldest: number }>) {
      if (r.key === key) live = r;
      else backfill = r;
    }
    const total = live.n + backfill.n;
    const expires = (oldest: number): number => Math.max(1, oldest + windowMs - now + 1);
    if (total >= ceiling) return answer(expires(Math.min(live.n ? live.oldest : now, backfill.n ? backfill.oldest : now)), 'ceiling');
    if (own.role === 'live') {
      // Room a running backfill has not used of its quarter stays its own.
      const backfillRunning = peers.some((p) => p.role === 'backfill');
      const kept = backfillRunning ? Math.max(0, quarter - backfill.n) : 0;
      if (total + kept >= ceiling) return answer(Math.min(expires(live.n ? live.oldest : now), 1_000), 'backfill');
    } else if (backfill.n >= quarter) {
      // Past its quarter, a backfill leaves a daemon's polls the room they need, and gives way while a
      // live poll waits for room (or has just woken to ask again).
      const live = peers.filter((p) => p.role === 'live');
      const needed = Math.min(ceiling - quarter, live.reduce((sum, p) => sum + (p.need || 0), 0));
      if (backfill.n + needed >= ceiling || live.some((p) => p.waitingUntil > 0 && p.waitingUntil > now - 2_000)) {
        return answer(Math.min(expires(backfill.oldest), 1_000), 'live');
      }
    }
    sql.prepare(ADD).run(callKey, now);
    return answer(0, null);
  });
  return {
    reserve,
    pause: (untilMs) => meta.pauseLedger(key, untilMs),
    setNeed: (perMinute) => void (need = Math.max(0, Math.ceil(perMinute))),
    // A process closing its database first has nothing left to release.
    release: () => {
      written = { what: '', at: 0 };
      if (sql.open) meta.forgetLedgerRecord(key, id);
    },
  };
}
