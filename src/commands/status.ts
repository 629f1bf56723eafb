/**
 * `status`: whether the daemon runs, how far behind each stream is, each sink's state and counts,
 * backfills, dead letters and what needs a human. Reads the database only; never creates, upgrades or
 * writes it.
 */
import type { BridgeConfig } from '../config/index.js';
import type { SinkState } from '../delivery/states.js';
import { DatabaseError } from '../errors.js';
import { formatMonitorStatus, monitorStatuses, type MonitorStatus } from '../monitors/index.js';
import { ago, agoIso, until } from '../ops/ago.js';
import { SOURCE_STREAMS, sweepIntervalMs, type SourceName } from '../poll/index.js';
import type { QueueStatus } from '../queue/index.js';
import { Store } from '../store/index.js';
import { daemonState, readDaemon, type DaemonState } from '../store/daemon.js';
import { pollPaces, type PollPace } from './poll-pace.js';
import { asDatabaseError, emptyCounts, queueModule } from './shared.js';

/** `status` as the CLI calls it: the report as text or JSON; with `--check`, 1 when something needs a human. */
export async function statusCommand(config: BridgeConfig, o: { json: boolean; check: boolean }): Promise<number> {
  let r: StatusReport;
  try {
    r = await statusReportWithQueues(config);
  } catch (err) {
    // A script reading --json gets JSON on stdout too; the one line on stderr and the exit code stay.
    if (o.json && err instanceof DatabaseError) process.stdout.write(`${JSON.stringify({ error: err.message })}\n`);
    throw err;
  }
  process.stdout.write(o.json ? `${JSON.stringify(statusJson(r), null, 2)}\n` : `${formatStatus(r)}\n`);
  return o.check && r.attention.length ? 1 : 0;
}

/** The report as `status --json` and /api/v1/status give it: the queues' lines are `status`'s text only. */
export function statusJson(r: StatusReport): Omit<StatusReport, 'queueLines'> {
  const { queueLines: _text, ...json } = r;
  return json;
}

export interface StatusReport {
  database: string;
  /** When the report was made; the ages below count from here. */
  at: string;
  /** The daemon (`run`) on this database, from the lock it renews as its heartbeat. */
  daemon: {
    state: DaemonState;
    pid: number | null;
    host: string | null;
    version: string | null;
    startedAt: string | null;
    heartbeatAt: string | null;
    heartbeatAgeSeconds: number | null;
    stoppedAt: string | null;
  };
  streams: Array<{
    project: string;
    source: string;
    streams: string[];
    cursor: string | null;
    /** How far the cursor is behind now: data newer than this has not been read yet. */
    behindSeconds: number | null;
    lastPollAt: string | null;
    lastPollAgeSeconds: number | null;
    lastOkAt: string | null;
    lastOutcome: string | null;
    lastError: string | null;
    sweepBehindSeconds: number;
    lastSweepDoneAt: string | null;
  }>;
  sinks: Array<{
    name: string;
    /** ok, failing (recent attempts fail), paused (a 429/503 asked it to wait) or open (its breaker holds deliveries). */
    state: SinkState;
    /** While paused: until when. */
    pausedUntil: string | null;
    queued: number;
    delivering: number;
    retrying: number;
    delivered: number;
    dead: number;
    lastSuccessAt: string | null;
    lastErrorAt: string | null;
    lastError: string | null;
    nextRetryAt: string | null;
    deadByReason: Array<{ reason: string | null; count: number; lastAt: string }>;
  }>;
  /** Backfills with deliveries still open, or with a range read part-way (running or interrupted). */
  backfills: Array<{ origin: string; open: number; since: string | null; readUpTo: Record<string, string> }>;
  oldestPendingAt: string | null;
  /** Dead letters of the last 24 h not replayed yet. */
  deadLast24h: number;
  recentDead: Array<{ eventId: string; sink: string; type: string; attempts: number; deadAt: string; lastError: string | null }>;
  /** Per project: how often polls run, as the daemon last recorded it. */
  pollPace: PollPace[];
  /** Each monitor's severity, last value and last evaluation. */
  monitors: MonitorStatus[];
  /** What needs a human; `status --check` exits 1 when this is not empty. */
  attention: string[];
  /** Redis mode: per-sink job counts from the queues. */
  queues?: QueueStatus;
  /** The queues as `status` prints them. */
  queueLines?: string[];
}

/** `status`: the outbox, and in Redis mode the queues too ('delivering' rows are the ones handed to Redis). */
export async function statusReportWithQueues(config: BridgeConfig): Promise<StatusReport> {
  const r = statusReport(config);
  if (config.queue.redisUrl) {
    const queue = await queueModule();
    r.queues = await queue.queueStatus(config, r.sinks.map((s) => s.name));
    // In Redis mode the workers deliver: their record of each sink's state is the one that holds.
    for (const s of r.sinks) {
      const q = r.queues.sinks.find((x) => x.name === s.name);
      if (q?.state) Object.assign(s, { state: q.state, pausedUntil: q.pausedUntil });
    }
    r.attention = [...r.attention.filter((a) => !a.startsWith('sink ')), ...sinkAttention(r.sinks)];
    r.queueLines = queue.formatQueueStatus(r.queues);
  }
  return r;
}

const isoOrNull = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const secondsSince = (ms: number | null, now: number): number | null => (ms === null ? null : Math.max(0, Math.round((now - ms) / 1000)));

/** `status`: read only; a missing, damaged or other-schema file is a DatabaseError naming it. */
export function statusReport(config: BridgeConfig): StatusReport {
  let store: Store;
  try {
    store = new Store(config.database, { readonly: true });
  } catch (err) {
    throw asDatabaseError(err, config.database);
  }
  try {
    return readStatus(store, config);
  } catch (err) {
    throw asDatabaseError(err, config.database);
  } finally {
    store.close();
  }
}

/** What `status` reports, read from an open database; `check` reads it too, to prove the file whole. */
export function readStatus(store: Store, config: BridgeConfig): StatusReport {
  const now = Date.now();
  const counts = store.counts();
  const names = new Set([...config.sinks.map((s) => s.name), ...counts.keys()]);
  const d = readDaemon(store);
  const daemon: StatusReport['daemon'] = {
    state: daemonState(d, now),
    pid: d?.pid ?? null,
    host: d?.host ?? null,
    version: d?.version ?? null,
    startedAt: isoOrNull(d?.startedAt ?? null),
    heartbeatAt: isoOrNull(d?.heartbeatAt ?? null),
    heartbeatAgeSeconds: secondsSince(d?.heartbeatAt ?? null, now),
    stoppedAt: isoOrNull(d?.stoppedAt ?? null),
  };
  const streams: StatusReport['streams'] = store.allCursors().map((c) => ({
    project: c.project,
    source: c.source,
    streams: SOURCE_STREAMS[c.source as SourceName] ?? [c.source],
    cursor: isoOrNull(c.cursorMs),
    behindSeconds: secondsSince(c.cursorMs, now),
    lastPollAt: isoOrNull(c.lastPollAt),
    lastPollAgeSeconds: secondsSince(c.lastPollAt, now),
    lastOkAt: isoOrNull(c.lastOkAt),
    lastOutcome: c.lastOutcome,
    lastError: c.lastError,
    sweepBehindSeconds: c.sweepPosMs !== null && c.sweepStartedAt !== null ? Math.round((now - c.sweepStartedAt) / 1000) : 0,
    lastSweepDoneAt: isoOrNull(c.lastSweepDoneAt),
  }));
  const reasons = store.deadByReason();
  const states = store.sinkStates();
  const stateOf = (name: string): { state: SinkState; pausedUntil: string | null } => {
    const r = states.get(name);
    if (r?.pausedUntil && r.pausedUntil > now) return { state: 'paused', pausedUntil: isoOrNull(r.pausedUntil) };
    // A pause that has passed leaves the sink failing until an attempt goes through.
    return { state: r?.state === 'paused' ? 'failing' : (r?.state ?? 'ok'), pausedUntil: null };
  };
  const sinks: StatusReport['sinks'] = [...names].map((name) => {
    const c = counts.get(name) ?? emptyCounts();
    const a = store.sinkActivity(name, c);
    return {
      name,
      ...stateOf(name),
      ...c,
      lastSuccessAt: isoOrNull(a.lastSuccessAt),
      lastErrorAt: isoOrNull(a.lastErrorAt),
      lastError: a.lastError,
      nextRetryAt: isoOrNull(a.nextRetryAt),
      deadByReason: reasons.filter((r) => r.sink === name).map((r) => ({ reason: r.reason, count: r.count, lastAt: new Date(r.lastAt).toISOString() })),
    };
  });
  // Backfills: open deliveries per origin, and ranges read part-way (keys `<origin>[:<project>]:<source>`).
  const backfills = new Map<string, StatusReport['backfills'][number]>();
  const entry = (origin: string) => backfills.get(origin) ?? backfills.set(origin, { origin, open: 0, since: null, readUpTo: {} }).get(origin)!;
  for (const o of store.openByOrigin()) {
    if (!o.origin.startsWith('backfill:')) continue;
    const b = entry(o.origin);
    b.open += o.n;
    if (b.since === null || o.since < Date.parse(b.since)) b.since = new Date(o.since).toISOString();
  }
  const openOrigins = [...backfills.keys()].sort((a, b) => b.length - a.length);
  for (const { resumeKey, source, ms } of store.meta.resumePoints()) {
    // A project's resume key is its backfill's origin and `:<project>`.
    const origin = openOrigins.find((o) => resumeKey.startsWith(`${o}:`)) ?? resumeKey;
    const project = resumeKey.slice(origin.length + 1);
    entry(origin).readUpTo[project ? `${project}/${source}` : source] = new Date(ms).toISOString();
  }
  const deadLast24h = store.deadSince(now - 86_400_000);

  const attention: string[] = [];
  if (daemon.state === 'never') attention.push('no daemon has run on this database');
  else if (daemon.state === 'stopped') attention.push(`no daemon is running: it stopped ${ago(d!.stoppedAt!, now)}`);
  else if (daemon.state === 'dead') attention.push(`no daemon is running: last heartbeat ${ago(d!.heartbeatAt, now)} (pid ${d!.pid} on host ${d!.host}), and it did not stop cleanly`);
  // A daemon that runs but has not polled once since it started (keys refused, Langfuse unreachable):
  // its streams have no row, or none newer than its start, to say so.
  if (daemon.state === 'running' && d && now - d.startedAt > config.healthMaxAgeSeconds * 1000 && !streams.some((s) => s.lastOkAt !== null && Date.parse(s.lastOkAt) >= d.startedAt)) {
    attention.push(`no successful poll since the daemon started ${ago(d.startedAt, now)}: Langfuse unreachable or refusing the keys (\`langfuse-bridge check\` says which; the daemon's log has the error)`);
  }
  const sweepLimit = sweepIntervalMs(config.pollIntervalSeconds, config.lookbackSeconds) / 1000;
  for (const s of streams) {
    const name = `${s.streams.join(',')}${new Set(streams.map((x) => x.project)).size > 1 ? ` (project ${s.project})` : ''}`;
    if (s.sweepBehindSeconds > sweepLimit) attention.push(`${name}: the late-data sweep is ${s.sweepBehindSeconds} s behind (more than its ${sweepLimit} s interval): late data may be missed`);
    const lastOk = s.lastOkAt ? Date.parse(s.lastOkAt) : null;
    if (s.lastOutcome === 'error' && (lastOk === null || now - lastOk > config.healthMaxAgeSeconds * 1000)) {
      attention.push(`${name}: polls failing${lastOk ? ` since ${ago(lastOk, now)}` : ''}: ${s.lastError ?? 'unknown error'}`);
    }
  }
  attention.push(...sinkAttention(sinks));
  if (deadLast24h > 0) attention.push(`${deadLast24h} dead letter(s) in the last 24 h not replayed (\`langfuse-bridge replay\` sends them again)`);

  return {
    database: config.database,
    at: new Date(now).toISOString(),
    daemon,
    streams,
    sinks,
    backfills: [...backfills.values()],
    oldestPendingAt: isoOrNull(store.oldestPendingAt()),
    deadLast24h,
    recentDead: store.deadLetters(null, null, 10).map((x) => ({ ...x, deadAt: new Date(x.deadAt).toISOString() })),
    pollPace: pollPaces(store),
    monitors: monitorStatuses(store, config.monitors),
    attention,
  };
}

/** Sinks that need a human: an open circuit breaker. */
function sinkAttention(sinks: StatusReport['sinks']): string[] {
  return sinks.filter((k) => k.state === 'open').map((k) => `sink ${k.name}: its circuit breaker is open (every recent attempt failed); deliveries wait for a probe to succeed`);
}

export function formatStatus(r: StatusReport): string {
  const now = Date.parse(r.at);
  const lines: string[] = [];
  lines.push(`database  ${r.database}`);
  const d = r.daemon;
  const who = `pid ${d.pid} on host ${d.host}`;
  if (d.state === 'running') lines.push(`daemon    running: ${who}, since ${agoIso(d.startedAt, now)}; heartbeat ${agoIso(d.heartbeatAt, now)}`);
  else if (d.state === 'stopped') lines.push(`daemon    NOT RUNNING: stopped ${agoIso(d.stoppedAt, now)} (${who})`);
  else if (d.state === 'dead') lines.push(`daemon    NOT RUNNING: last heartbeat ${agoIso(d.heartbeatAt, now)} (${who}); it did not stop cleanly`);
  else lines.push('daemon    NOT RUNNING: no daemon has run on this database');
  lines.push('');
  lines.push('STREAM                 BEHIND      LAST POLL     OUTCOME  LATE-DATA SWEEP');
  if (r.streams.length === 0) lines.push('(no poll yet)');
  // Several projects: the stream lines under a heading per project.
  const grouped = new Set(r.streams.map((s) => s.project)).size > 1;
  let heading: string | null = null;
  for (const s of r.streams) {
    if (grouped && s.project !== heading) {
      heading = s.project;
      lines.push(`project ${s.project}`);
    }
    const sweep = s.sweepBehindSeconds > 0 ? `behind ${s.sweepBehindSeconds} s` : s.lastSweepDoneAt ? `up to date (${agoIso(s.lastSweepDoneAt, now)})` : '-';
    const behind = s.behindSeconds === null ? '-' : s.behindSeconds < 120 ? `${s.behindSeconds} s` : s.behindSeconds < 7200 ? `${Math.round(s.behindSeconds / 60)} min` : `${Math.round(s.behindSeconds / 3600)} h`;
    lines.push(
      `${grouped ? '  ' : ''}${s.streams.join(',').padEnd(grouped ? 20 : 22)} ${behind.padEnd(11)} ${agoIso(s.lastPollAt, now).padEnd(13)} ${(s.lastOutcome ?? '-').padEnd(8)} ${sweep}` +
        `\n${grouped ? '    ' : '  '}cursor ${s.cursor ?? '-'}, last poll ${s.lastPollAt ?? '-'}` +
        (s.lastError ? `\n${grouped ? '    ' : '  '}last error: ${s.lastError}` : ''),
    );
  }
  lines.push('');
  lines.push('SINK                   STATE     QUEUED  DELIVERING  RETRYING   DELIVERED   DEAD');
  for (const s of r.sinks) {
    lines.push(
      `${s.name.padEnd(22)} ${s.state.padEnd(7)}  ${String(s.queued).padStart(6)}  ${String(s.delivering).padStart(10)}  ${String(s.retrying).padStart(8)}  ${String(s.delivered).padStart(10)}  ${String(s.dead).padStart(5)}` +
        (s.pausedUntil ? `\n  paused until ${s.pausedUntil} (the receiver asked to wait)` : ''),
    );
    const facts: string[] = [];
    facts.push(`last success ${s.lastSuccessAt ? agoIso(s.lastSuccessAt, now) : 'never'}`);
    if (s.lastErrorAt) facts.push(`last error ${agoIso(s.lastErrorAt, now)}: ${s.lastError ?? '?'}`);
    if (s.nextRetryAt) facts.push(`next retry ${until(s.nextRetryAt, now)}`);
    lines.push(`  ${facts.join(' · ')}`);
    for (const g of s.deadByReason) lines.push(`  dead: ${g.count} × ${g.reason ?? '(no error recorded)'} (last ${agoIso(g.lastAt, now)})`);
  }
  if (r.queueLines) lines.push(...r.queueLines);
  for (const p of r.pollPace ?? []) {
    const every = p.measuredIntervalSeconds ?? p.effectiveIntervalSeconds;
    lines.push(
      `\npolls${r.pollPace.length > 1 ? ` of ${p.project}` : ''} every ${every} s (${(60 / every).toFixed(1)} a minute; interval set: ${p.intervalSeconds} s)` +
        (p.limitedByCeiling ? `: the request ceiling of ${p.ceiling} calls a minute holds ${p.callsPerPoll} calls a poll every ${p.effectiveIntervalSeconds} s at most` : ''),
    );
  }
  lines.push(...formatMonitorStatus(r.monitors ?? [], (iso) => agoIso(iso, now)));
  if (r.oldestPendingAt) lines.push(`\noldest pending delivery since ${r.oldestPendingAt} (${agoIso(r.oldestPendingAt, now)})`);
  if (r.backfills.length) {
    lines.push('\nbackfills in progress or interrupted:');
    for (const b of r.backfills) {
      const read = Object.entries(b.readUpTo).map(([k, v]) => `${k} read up to ${v}`);
      lines.push(`  ${b.origin}: ${b.open} deliveries open${b.since ? ` since ${agoIso(b.since, now)}` : ''}${read.length ? `; ${read.join(', ')}` : ''}`);
    }
  }
  if (r.recentDead.length) {
    lines.push('\nrecent dead letters (langfuse-bridge replay sends them again):');
    for (const x of r.recentDead) lines.push(`  ${x.deadAt} (${agoIso(x.deadAt, now)})  ${x.sink}  ${x.type}  ${x.eventId}  after ${x.attempts} attempt(s): ${x.lastError ?? ''}`);
  }
  lines.push('');
  if (r.attention.length) {
    lines.push('NEEDS ATTENTION');
    for (const a of r.attention) lines.push(`  ✘ ${a}`);
  } else lines.push('✔ nothing needs attention');
  return lines.join('\n');
}
