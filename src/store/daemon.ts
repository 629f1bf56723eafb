/**
 * One daemon per database: `run` holds a lock record in `meta`, renews it as its heartbeat, and marks
 * it stopped on a clean exit. A daemon that crashed stops renewing, and its lock expires by itself
 * (at once when it ran on this host and its process is gone). `status` reads the same record.
 */
import os from 'node:os';
import type { Store } from './index.js';
import type { Meta } from './meta.js';
import { OWNER, ownerIsDead } from './owner.js';
/** A lock not renewed for this long is free. */
export const DAEMON_LOCK_TTL_MS = 30_000;
/** How often the daemon renews it. */
export const DAEMON_HEARTBEAT_MS = 10_000;

export interface DaemonRecord {
  owner: string;
  pid: number;
  host: string;
  version: string;
  startedAt: number;
  heartbeatAt: number;
  expiresAt: number;
  /** Set by a clean exit. */
  stoppedAt: number | null;
}

export type DaemonState =
  /** Holds a live lock. */
  | 'running'
  /** Exited cleanly. */
  | 'stopped'
  /** Stopped renewing without exiting cleanly (crashed, killed, host gone). */
  | 'dead'
  /** No daemon ever ran on this database. */
  | 'never';

/** The record, from a store or anything that reads its key/value table (a file of an older schema, say). */
export function readDaemon(store: { meta: Pick<Meta, 'daemon'> }): DaemonRecord | null {
  const raw = store.meta.daemon();
  if (!raw) return null;
  try {
    const r = JSON.parse(raw) as Partial<DaemonRecord>;
    if (typeof r.owner !== 'string' || typeof r.expiresAt !== 'number') return null;
    return { pid: 0, host: '?', version: '?', startedAt: 0, heartbeatAt: 0, stoppedAt: null, ...r } as DaemonRecord;
  } catch {
    return null;
  }
}

export function daemonState(r: DaemonRecord | null, now = Date.now()): DaemonState {
  if (!r) return 'never';
  if (r.stoppedAt !== null) return 'stopped';
  if (r.expiresAt <= now || ownerIsDead(r.owner)) return 'dead';
  return 'running';
}

/** Takes the lock for this process; returns the holder when another live daemon has it. */
export function acquireDaemonLock(store: Store, version: string, now = Date.now()): { ok: true } | { ok: false; holder: DaemonRecord } {
  return store.write(() => {
    const held = readDaemon(store);
    if (held && held.owner !== OWNER && daemonState(held, now) === 'running') return { ok: false as const, holder: held };
    const mine: DaemonRecord = { owner: OWNER, pid: process.pid, host: os.hostname(), version, startedAt: now, heartbeatAt: now, expiresAt: now + DAEMON_LOCK_TTL_MS, stoppedAt: null };
    store.meta.setDaemon(JSON.stringify(mine));
    return { ok: true as const };
  });
}

/** The heartbeat: extends the lock; false when it is no longer this process's (it expired and another took it). */
export function renewDaemonLock(store: Store, now = Date.now()): boolean {
  return store.write(() => {
    const held = readDaemon(store);
    if (!held || held.owner !== OWNER || held.stoppedAt !== null) return false;
    store.meta.setDaemon(JSON.stringify({ ...held, heartbeatAt: now, expiresAt: now + DAEMON_LOCK_TTL_MS }));
    return true;
  });
}

/** A clean exit: the lock is free, and `status` says when the daemon stopped. */
export function releaseDaemonLock(store: Store, now = Date.now()): void {
  store.write(() => {
    const held = readDaemon(store);
    if (held?.owner === OWNER) store.meta.setDaemon(JSON.stringify({ ...held, heartbeatAt: now, expiresAt: now, stoppedAt: now }));
  });
}
