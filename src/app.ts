/**
 * The commands' work, wired from the stages: config → Langfuse client → poller → store → dispatcher
 * → sinks. `cli.ts` only parses flags and calls these.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { projectConfigs, type BridgeConfig, type SlackSinkConfig } from './config.js';
import { Dispatcher, type SinkState } from './delivery/index.js';
import { testEvent } from './events/index.js';
import { LangfuseClient, LangfuseError, shortWaitText } from './langfuse/client.js';
import { sleep, type WaitReason } from './langfuse/rate-limiter.js';
import { scheduleDigest } from './ops/digest.js';
import { Metrics } from './ops/metrics.js';
import { health, paceWarnings, startOpsServer, type OpsServer } from './ops/server.js';
import { Poller, SOURCE_STREAMS, type BackfillProgress, type SourceName } from './poll/index.js';
import { closeSinks, createSinks } from './sinks/index.js';
import type { Sink } from './sinks/types.js';
import { Store, type DeliveryStatus } from './store/index.js';
import type { QueueStatus } from './queue/index.js';
import { USER_AGENT } from './version.js';

export function createClient(config: BridgeConfig, logger: Logger, store?: Store, role: 'live' | 'backfill' = 'live'): LangfuseClient {
  const max = config.langfuse.maxRequestsPerMinute;
  const explicit = config.langfuse.maxRequestsPerMinuteSet !== false;
  return new LangfuseClient({
    ledger: store?.callLedger(`${config.langfuse.baseUrl}|${config.langfuse.publicKey}`, { max, explicit, role }),
    baseUrl: config.langfuse.baseUrl,
    publicKey: config.langfuse.publicKey,
    secretKey: config.langfuse.secretKey,
    maxRequestsPerMinute: max,
    maxRequestsPerMinuteSet: explicit,
    role,
    timeoutSeconds: config.langfuse.timeoutSeconds,
    logger,
    userAgent: USER_AGENT,
  });
}

/** The Redis backend loads only when BRIDGE_REDIS_URL asks for it: it weighs on every start otherwise. */
const queueModule = () => import('./queue/index.js');

export class Fatal extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

// --- run ------------------------------------------------------------------------------------------

export interface RunHandle {
  /** Resolves when the daemon has stopped and closed the database. */
  done: Promise<void>;
  stop(): void;
  metrics: Metrics;
  /** With BRIDGE_HTTP_PORT: where /healthz and /metrics are served. */
  opsUrl?: string;
}

/** Opens the database. Upgrading an existing one to a newer schema is logged first: on a large database it takes a while. */
function openStore(config: BridgeConfig, logger?: Logger): Store {
  return new Store(config.database, {
    onUpgrade: (from, to) => logger?.info({ database: config.database, from, to }, 'upgrading the database schema (a minute or more for millions of events)'),
    onLoosePermissions: (files) => {
      const shown = files.map((f) => `${f.file} (was 0${f.mode.toString(8)})`);
      if (files.every((f) => f.tightened)) logger?.warn({ files: shown }, 'database files were open to other users; set to 0600: they hold event bodies');
      else logger?.warn({ files: shown }, 'database files are open to other users and could not be set to 0600 (not their owner): chmod 600 them, they hold event bodies');
    },
  });
}

/** The daemon: polls on the interval until stopped, delivering all the while. */
export async function runDaemon(config: BridgeConfig, logger: Logger, opts: { stdout?: NodeJS.WritableStream; withWorker?: boolean } = {}): Promise<RunHandle> {
  const metrics = new Metrics();
  // Bound first: a port that cannot be bound is a setting error, said before anything else starts.
  const ops = config.httpPort !== null ? await startOpsServer(config.httpHost, config.httpPort, metrics, () => ({ ...health(metrics, config.healthMaxAgeSeconds), warnings: paceWarnings(metrics) }), logger) : null;
  try {
    return await startDaemon(config, logger, opts, metrics, ops);
  } catch (err) {
    await ops?.close();
    throw err;
  }
}

async function startDaemon(config: BridgeConfig, logger: Logger, opts: { stdout?: NodeJS.WritableStream; withWorker?: boolean }, metrics: Metrics, ops: OpsServer | null): Promise<RunHandle> {
  // Redis mode (BRIDGE_REDIS_URL): no silent fallback to in-process delivery when it does not answer.
  const queue = config.queue.redisUrl ? await queueModule() : null;
  if (queue) await queue.waitForRedis(config.queue, logger);
  const store = openStore(config, logger);
  const { sinks } = await createSinks(config, logger, { stdout: opts.stdout });
  metrics.bindStore(store);
  const hooks = {
    onOutcome: (sink: Sink, outcome: 'delivered' | 'retrying' | 'dead', type: string) => metrics.deliveries.inc({ sink: sink.name, outcome, event: type }),
    onState: (sink: string, state: SinkState) => metrics.setSinkState(sink, state),
  };
  for (const s of sinks) metrics.setSinkState(s.name, 'ok');
  const dispatcher = queue
    ? new queue.QueueDelivery(store, sinks, config, logger, { withWorker: opts.withWorker === true, hooks })
    : new Dispatcher(store, sinks, { retry: config.retry, logger, hooks });
  if (!config.queue.redisUrl && store.relayedCount() > 0) {
    logger.warn({ deliveries: store.relayedCount() }, 'deliveries handed to Redis by an earlier run stay open until a bridge with BRIDGE_REDIS_URL reads their end');
  }
  // One client (own request ceiling and ledger) and one poller per project, sharing store, sinks and dispatcher.
  const several = config.projects.length > 0;
  const projects = projectConfigs(config).map((pc) => {
    const log = several ? logger.child({ project: pc.projectName }) : logger;
    const client = createClient(pc, log, store);
    client.onCall = (status) => metrics.langfuseCalls.inc({ status });
    const poller = new Poller(store, client, pc, sinks, log, {
      onEvents: (events) => {
        for (const e of events) metrics.onEvent(e);
        dispatcher.wake();
      },
      handoff: dispatcher instanceof Dispatcher ? () => dispatcher.handoff() : undefined,
      onPoll: (source, outcome, lagMs) => {
        metrics.polls.inc({ source, outcome });
        metrics.sweepLag.set({ source }, lagMs / 1000);
        if (outcome === 'ok') metrics.lastPollOk = Date.now();
        else metrics.lastPollError = Date.now();
      },
    });
    return { config: pc, logger: log, client, poller };
  });
  metrics.waitSource = () => projects.reduce((sum, p) => sum + p.client.limiter.waitedMs, 0);
  const abort = new AbortController();
  const slacks = config.sinks.filter((s): s is SlackSinkConfig => s.type === 'slack');
  const digest = config.digestCron && slacks.length ? scheduleDigest(config.digestCron, store, slacks, logger) : null;

  logger.info(
    several
      ? { projects: projects.map((p) => p.config.projectName), sinks: sinks.map((s) => s.name), database: config.database, intervalSeconds: config.pollIntervalSeconds }
      : { langfuse: config.langfuse.baseUrl, streams: config.streams, sinks: sinks.map((s) => s.name), database: config.database, intervalSeconds: config.pollIntervalSeconds },
    'langfuse-bridge starting',
  );
  dispatcher.start();

  // Each project polls in its own loop: one that fails (say, refused keys) does not hold up the others.
  const loop = async ({ poller, logger, config: pc }: (typeof projects)[number], prunes: boolean): Promise<void> => {
    let lastPrune = 0;
    const starts: number[] = [];
    let saidPace = '';
    while (!abort.signal.aborted) {
      const began = Date.now();
      starts.push(began);
      if (starts.length > 10) starts.shift();
      try {
        const r = await poller.pollOnce(abort.signal);
        if (r.events) logger.info({ events: r.events }, 'poll committed new events');
        else logger.debug('poll found nothing new');
      } catch (err) {
        if (abort.signal.aborted) break;
        if (err instanceof LangfuseError && err.kind === 'auth') logger.error({ err: err.message }, 'Langfuse refused the credentials; retrying next interval');
        else logger.error({ err: (err as Error).message }, 'poll failed; retrying next interval');
        metrics.lastPollError = Date.now();
      }
      if (prunes && Date.now() - lastPrune > 3_600_000) {
        lastPrune = Date.now();
        try {
          const p = store.prune(config.retentionDays);
          if (p.outbox || p.seen) logger.info(p, 'pruned rows older than the retention');
        } catch (err) {
          logger.warn({ err: (err as Error).message }, 'prune failed');
        }
      }
      // The pace the ceiling can hold: said once (and again when it changes), shown by status, /metrics, /healthz.
      let interval = config.pollIntervalSeconds;
      if (poller.projectId !== null) {
        interval = poller.effectiveIntervalSeconds();
        const pace = recordPollPace(store, metrics, poller, pc, starts);
        const said = `${pace.ceiling}/${pace.effectiveIntervalSeconds}`;
        if (pace.limitedByCeiling && said !== saidPace) {
          logger.warn(
            { intervalSeconds: pc.pollIntervalSeconds, effectiveIntervalSeconds: pace.effectiveIntervalSeconds, callsPerPoll: pace.callsPerPoll, ceiling: pace.ceiling },
            `BRIDGE_POLL_INTERVAL_SECONDS=${pc.pollIntervalSeconds} needs ${Math.ceil((pace.callsPerPoll * 60) / pc.pollIntervalSeconds)} calls a minute (${pace.callsPerPoll} a poll) but the request ceiling is ${pace.ceiling}: polling every ${pace.effectiveIntervalSeconds} s instead; raise BRIDGE_MAX_REQUESTS_PER_MINUTE or the interval`,
          );
        }
        saidPace = said;
      }
      const wait = interval * 1000 - (Date.now() - began);
      try {
        await sleep(Math.max(0, wait), abort.signal);
      } catch {
        break;
      }
    }
  };

  const done = (async () => {
    await Promise.all(projects.map((p, i) => loop(p, i === 0)));
    logger.info('stopping: no more polls; letting deliveries in flight finish');
    digest?.stop();
    await dispatcher.stop(7_000);
    await ops?.close();
    await closeSinks(sinks);
    for (const p of projects) await p.client.close();
    store.close();
    logger.info('stopped');
  })();
  return { done, stop: () => abort.abort(new Error('stopping')), metrics, opsUrl: ops?.url };
}

/** How often a project's polls run, against how often they were asked to. */
export interface PollPace {
  project: string;
  intervalSeconds: number;
  /** The pace the ceiling can hold (the interval, or longer). */
  effectiveIntervalSeconds: number;
  /** Measured over the last polls (null until there are two). */
  measuredIntervalSeconds: number | null;
  callsPerPoll: number;
  ceiling: number;
  limitedByCeiling: boolean;
  at: string;
}

const PACE_KEY = 'poll-pace:';

function recordPollPace(store: Store, metrics: Metrics, poller: Poller, config: BridgeConfig, starts: number[]): PollPace {
  const measured = starts.length >= 2 ? Math.round((starts[starts.length - 1]! - starts[0]!) / (starts.length - 1) / 100) / 10 : null;
  const pace: PollPace = {
    project: poller.projectId!,
    intervalSeconds: config.pollIntervalSeconds,
    effectiveIntervalSeconds: poller.effectiveIntervalSeconds(),
    measuredIntervalSeconds: measured,
    callsPerPoll: poller.callsPerPoll(),
    ceiling: poller.ceiling(),
    limitedByCeiling: poller.effectiveIntervalSeconds() > config.pollIntervalSeconds,
    at: new Date().toISOString(),
  };
  store.setMeta(`${PACE_KEY}${pace.project}`, JSON.stringify(pace));
  metrics.setPollPace(pace);
  return pace;
}

/** What the daemon last recorded of each project's poll pace (none from a database that never ran one). */
function pollPaces(store: Store): PollPace[] {
  const rows = store.db.prepare('SELECT value FROM meta WHERE key >= ? AND key < ? ORDER BY key').all(PACE_KEY, `${PACE_KEY}\uffff`) as Array<{ value: string }>;
  const out: PollPace[] = [];
  for (const r of rows) {
    try {
      out.push(JSON.parse(r.value) as PollPace);
    } catch {
      /* not ours */
    }
  }
  return out;
}

// --- backfill -------------------------------------------------------------------------------------

export interface BackfillOptions {
  fromMs: number;
  toMs: number;
  redeliver: boolean;
  sink: string | null;
  alerts: boolean;
  /** With several projects: only this one (by its configured name); default all. */
  project?: string | null;
  onProgress?: (p: BackfillProgress & { delivered: number; queued: number }) => void;
  /** Hands over a way to ask, at any time, whether (and for what) the pass waits for Langfuse. */
  onStart?: (h: { waiting(): BackfillWait | null }) => void;
  signal?: AbortSignal;
}

/** What a backfill waits for: the request ceiling (and how high it is), a 429, or live polls first. */
export interface BackfillWait {
  reason: WaitReason;
  untilMs: number;
  ceiling: number;
  /** A sentence saying so, with the setting that raises the ceiling. */
  text: string;
}

/** History does not page people: alert sinks take part only when asked. */
export function backfillSinks(all: Sink[], sinkName: string | null, alerts: boolean): Sink[] {
  if (sinkName) {
    const s = all.find((x) => x.name === sinkName);
    if (!s) throw new Fatal(`--sink ${sinkName} is not a configured sink; configured: ${all.map((x) => x.name).join(', ')}`, 2);
    return [s];
  }
  return all.filter((s) => !s.alerting || alerts);
}

export async function runBackfill(config: BridgeConfig, logger: Logger, o: BackfillOptions, opts: { stdout?: NodeJS.WritableStream } = {}): Promise<{ exitCode: number; events: number; inserted: number; delivered: number; dead: number }> {
  let targets = projectConfigs(config);
  if (o.project) {
    if (config.projects.length === 0) throw new Fatal(`--project ${o.project} needs "projects" in the config file; none are configured`, 2);
    targets = targets.filter((pc) => pc.projectName === o.project);
    if (targets.length === 0) throw new Fatal(`--project ${o.project} is not a configured project; configured: ${config.projects.map((p) => p.name).join(', ')}`, 2);
  }
  const queue = config.queue.redisUrl ? await queueModule() : null;
  if (queue) await queue.waitForRedis(config.queue, logger);
  const store = openStore(config, logger);
  const { sinks: all } = await createSinks(config, logger, { stdout: opts.stdout });
  const sinks = backfillSinks(all, o.sink, o.alerts);
  // The same pass run again resumes under the same origin; a --redeliver pass is always a new one,
  // so that each of its deliveries is sent again exactly once.
  const pass = createHash('sha1').update(JSON.stringify([o.fromMs, o.toMs, o.redeliver, sinks.map((s) => s.name)])).digest('hex').slice(0, 12);
  const origin = `backfill:${pass}${o.redeliver ? `:${Date.now().toString(36)}` : ''}`;
  // Redis mode: relay this backfill's rows and wait until their jobs ended (workers deliver them).
  const dispatcher = queue
    ? new queue.QueueDelivery(store, sinks, config, logger, { origin, reconcileMs: 1_000 })
    : new Dispatcher(store, sinks, { retry: config.retry, logger, origin });
  const prunedBefore = Number(store.getMeta('pruned_before') ?? 0);
  const retentionCut = Date.now() - config.retentionDays * 86_400_000;
  if (o.fromMs < Math.max(prunedBefore, retentionCut) && !o.redeliver) {
    logger.warn({ retentionDays: config.retentionDays }, 'the range reaches past the retention: events older than that were forgotten and may be delivered again');
  }
  dispatcher.start();
  const totals = { events: 0, inserted: 0, requeued: 0 };
  const clients: LangfuseClient[] = [];
  o.onStart?.({
    waiting: () => {
      const now = Date.now();
      for (const c of clients) {
        const w = c.limiter.waiting;
        if (w && w.untilMs > now) return { ...w, ceiling: c.limiter.ceiling, text: shortWaitText(w.reason, c.limiter.ceiling, w.untilMs - now) };
      }
      return null;
    },
  });
  try {
    for (const pc of targets) {
      const log = pc.projectName !== undefined ? logger.child({ project: pc.projectName }) : logger;
      const client = createClient(pc, log, store, 'backfill');
      // A progress display says what the pass waits for; without one the client logs it.
      if (o.onStart) client.limiter.onWait = undefined;
      clients.push(client);
      const poller = new Poller(store, client, pc, sinks, log, {
        onEvents: () => dispatcher.wake(),
        handoff: dispatcher instanceof Dispatcher ? () => dispatcher.handoff() : undefined,
      });
      // Each project resumes its own slices; a single project keeps the key it always had.
      const resumeKey = pc.projectName !== undefined ? `${origin}:${pc.projectName}` : origin;
      const before = { ...totals };
      const t = await poller.backfill(o.fromMs, o.toMs, {
        sinks,
        enqueue: { redeliver: o.redeliver, origin },
        signal: o.signal,
        resumeKey,
        onProgress: (p) => {
          // pending() reads a small index of open rows; a full count per slice would grow with the outbox.
          const queued = store.pending(origin);
          const inserted = before.inserted + p.inserted;
          o.onProgress?.({ ...p, events: before.events + p.events, inserted, delivered: Math.max(0, inserted - queued), queued });
        },
      });
      totals.events += t.events;
      totals.inserted += t.inserted;
      totals.requeued += t.requeued;
    }
    await dispatcher.drain(o.signal);
    // Finished: a later run of the same command reads the whole range again.
    store.db.prepare('DELETE FROM meta WHERE key LIKE ?').run(`${origin}:%`);
  } finally {
    await dispatcher.stop(2_000);
    await closeSinks(all);
    for (const c of clients) await c.close();
  }
  const c = sumCounts(store.counts(origin));
  store.close();
  return { exitCode: c.dead > 0 ? 3 : 0, events: totals.events, inserted: totals.inserted + totals.requeued, delivered: c.delivered, dead: c.dead };
}

function sumCounts(m: Map<string, Record<DeliveryStatus, number>>): Record<DeliveryStatus, number> {
  const t: Record<DeliveryStatus, number> = { queued: 0, delivering: 0, retrying: 0, delivered: 0, dead: 0 };
  for (const c of m.values()) for (const k of Object.keys(t) as DeliveryStatus[]) t[k] += c[k];
  return t;
}

// --- status / replay ------------------------------------------------------------------------------

export interface StatusReport {
  database: string;
  streams: Array<{
    project: string;
    source: string;
    streams: string[];
    cursor: string | null;
    lastPollAt: string | null;
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
  }>;
  oldestPendingAt: string | null;
  recentDead: Array<{ eventId: string; sink: string; type: string; attempts: number; deadAt: string; lastError: string | null }>;
  /** Per project: how often polls run, as the daemon last recorded it. */
  pollPace: PollPace[];
  /** Redis mode: per-sink job counts from the queues. */
  queues?: QueueStatus;
  /** The queues as `status` prints them. */
  queueLines?: string[];
}

/** `status`: the outbox, and in Redis mode the queues too ('delivering' rows are the ones handed to Redis). */
export async function statusReportWithQueues(config: BridgeConfig, logger?: Logger): Promise<StatusReport> {
  const r = statusReport(config, logger);
  if (config.queue.redisUrl) {
    const queue = await queueModule();
    r.queues = await queue.queueStatus(config, r.sinks.map((s) => s.name));
    // In Redis mode the workers deliver: their record of each sink's state is the one that holds.
    for (const s of r.sinks) {
      const q = r.queues.sinks.find((x) => x.name === s.name);
      if (q?.state) Object.assign(s, { state: q.state, pausedUntil: q.pausedUntil });
    }
    r.queueLines = queue.formatQueueStatus(r.queues);
  }
  return r;
}

const isoOrNull = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function statusReport(config: BridgeConfig, logger?: Logger): StatusReport {
  const store = openStore(config, logger);
  try {
    const now = Date.now();
    const counts = store.counts();
    const states = store.sinkStates();
    const names = new Set([...config.sinks.map((s) => s.name), ...counts.keys()]);
    const stateOf = (name: string): { state: SinkState; pausedUntil: string | null } => {
      const r = states.get(name);
      if (r?.pausedUntil && r.pausedUntil > now) return { state: 'paused', pausedUntil: isoOrNull(r.pausedUntil) };
      // A pause that has passed leaves the sink failing until an attempt goes through.
      return { state: r?.state === 'paused' ? 'failing' : (r?.state ?? 'ok'), pausedUntil: null };
    };
    return {
      database: config.database,
      streams: store.allCursors().map((c) => ({
        project: c.project,
        source: c.source,
        streams: SOURCE_STREAMS[c.source as SourceName] ?? [c.source],
        cursor: isoOrNull(c.cursorMs),
        lastPollAt: isoOrNull(c.lastPollAt),
        lastOutcome: c.lastOutcome,
        lastError: c.lastError,
        sweepBehindSeconds: c.sweepPosMs !== null && c.sweepStartedAt !== null ? Math.round((now - c.sweepStartedAt) / 1000) : 0,
        lastSweepDoneAt: isoOrNull(c.lastSweepDoneAt),
      })),
      sinks: [...names].map((name) => ({ name, ...stateOf(name), ...(counts.get(name) ?? { queued: 0, delivering: 0, retrying: 0, delivered: 0, dead: 0 }) })),
      oldestPendingAt: isoOrNull(store.oldestPendingAt()),
      recentDead: store.deadLetters(null, null, 10).map((d) => ({ ...d, deadAt: new Date(d.deadAt).toISOString() })),
      pollPace: pollPaces(store),
    };
  } finally {
    store.close();
  }
}

export function formatStatus(r: StatusReport): string {
  const lines: string[] = [];
  lines.push(`database  ${r.database}`);
  lines.push('');
  lines.push('STREAM                 CURSOR                    LAST POLL                 OUTCOME  LATE-DATA SWEEP');
  if (r.streams.length === 0) lines.push('(no poll yet)');
  // Several projects: the stream lines under a heading per project.
  const grouped = new Set(r.streams.map((s) => s.project)).size > 1;
  let heading: string | null = null;
  for (const s of r.streams) {
    if (grouped && s.project !== heading) {
      heading = s.project;
      lines.push(`project ${s.project}`);
    }
    const sweep = s.sweepBehindSeconds > 0 ? `behind ${s.sweepBehindSeconds} s` : s.lastSweepDoneAt ? 'up to date' : '-';
    lines.push(
      `${grouped ? '  ' : ''}${s.streams.join(',').padEnd(grouped ? 20 : 22)} ${(s.cursor ?? '-').padEnd(25)} ${(s.lastPollAt ?? '-').padEnd(25)} ${(s.lastOutcome ?? '-').padEnd(8)} ${sweep}` +
        (s.lastError ? `\n  last error: ${s.lastError}` : ''),
    );
  }
  lines.push('');
  lines.push('SINK                   STATE     QUEUED  DELIVERING  RETRYING   DELIVERED   DEAD');
  for (const s of r.sinks) {
    lines.push(
      `${s.name.padEnd(22)} ${s.state.padEnd(7)}  ${String(s.queued).padStart(6)}  ${String(s.delivering).padStart(10)}  ${String(s.retrying).padStart(8)}  ${String(s.delivered).padStart(10)}  ${String(s.dead).padStart(5)}` +
        (s.pausedUntil ? `\n  paused until ${s.pausedUntil} (the receiver asked to wait)` : ''),
    );
  }
  if (r.queueLines) lines.push(...r.queueLines);
  for (const p of r.pollPace ?? []) {
    const every = p.measuredIntervalSeconds ?? p.effectiveIntervalSeconds;
    lines.push(
      `\npolls${r.pollPace.length > 1 ? ` of ${p.project}` : ''} every ${every} s (${(60 / every).toFixed(1)} a minute; interval set: ${p.intervalSeconds} s)` +
        (p.limitedByCeiling ? `: the request ceiling of ${p.ceiling} calls a minute holds ${p.callsPerPoll} calls a poll every ${p.effectiveIntervalSeconds} s at most` : ''),
    );
  }
  if (r.oldestPendingAt) lines.push(`\noldest pending delivery since ${r.oldestPendingAt}`);
  if (r.recentDead.length) {
    lines.push('\nrecent dead letters (langfuse-bridge replay sends them again):');
    for (const d of r.recentDead) lines.push(`  ${d.deadAt}  ${d.sink}  ${d.type}  ${d.eventId}  after ${d.attempts} attempt(s): ${d.lastError ?? ''}`);
  }
  return lines.join('\n');
}

export function replay(config: BridgeConfig, sink: string | null, sinceMs: number | null, logger?: Logger): number {
  const store = openStore(config, logger);
  try {
    if (sink && !config.sinks.some((s) => s.name === sink) && !store.counts().has(sink)) {
      throw new Fatal(`--sink ${sink} is not a configured sink; configured: ${config.sinks.map((s) => s.name).join(', ')}`, 2);
    }
    if (sink) return store.replay(sink, sinceMs);
    // History pages nobody: Slack and PagerDuty dead letters go out again only when --sink names them.
    const alerting = alertingSinkNames(config);
    const dead = (store.db.prepare(`SELECT DISTINCT sink FROM outbox WHERE status = 'dead'`).all() as Array<{ sink: string }>).map((r) => r.sink);
    const left = dead.filter((name) => alerting.has(name));
    if (left.length) logger?.info({ sinks: left }, 'dead letters of alert sinks are replayed only when --sink names them');
    return dead.filter((name) => !alerting.has(name)).reduce((n, name) => n + store.replay(name, sinceMs), 0);
  } finally {
    store.close();
  }
}

function alertingSinkNames(config: BridgeConfig): Set<string> {
  return new Set(config.sinks.filter((s) => s.type === 'slack' || s.type === 'pagerduty').map((s) => s.name));
}

/** `replay`: in Redis mode, failed jobs are retried in place (their rows open again), then dead rows requeued. */
export async function replayWithQueues(config: BridgeConfig, sink: string | null, sinceMs: number | null, logger?: Logger): Promise<number> {
  if (!config.queue.redisUrl) return replay(config, sink, sinceMs, logger);
  const store = openStore(config, logger);
  let retried = 0;
  try {
    const known = new Set([...config.sinks.map((s) => s.name), ...store.counts().keys()]);
    if (sink && !known.has(sink)) throw new Fatal(`--sink ${sink} is not a configured sink; configured: ${config.sinks.map((s) => s.name).join(', ')}`, 2);
    const alerting = alertingSinkNames(config);
    retried = await (await queueModule()).retryFailedJobs(config, store, sink ? [sink] : [...known].filter((name) => !alerting.has(name)), sinceMs, logger);
  } finally {
    store.close();
  }
  return retried + replay(config, sink, sinceMs);
}

// --- check / test-event ---------------------------------------------------------------------------

async function checkLangfuse(config: BridgeConfig, logger: Logger): Promise<{ ok: boolean; lines: string[] }> {
  const lines: string[] = [];
  let ok = true;
  const client = new LangfuseClient({
    baseUrl: config.langfuse.baseUrl,
    publicKey: config.langfuse.publicKey,
    secretKey: config.langfuse.secretKey,
    maxRequestsPerMinute: config.langfuse.maxRequestsPerMinute,
    timeoutSeconds: Math.min(config.langfuse.timeoutSeconds, 15),
    logger,
    userAgent: USER_AGENT,
    maxAttempts: 2,
    backoffBaseMs: 500,
  });
  try {
    const store = new Store(':memory:');
    const poller = new Poller(store, client, config, [], logger);
    const shape = await poller.connect();
    const generation =
      shape.generation === 'v4'
        ? 'API generation: v4 (v2 observations + v3 scores)'
        : `API generation: legacy (traces, v1 observations, ${shape.scoresPath === '/api/public/scores' ? 'v1' : 'v2'} scores)`;
    if (config.projectName !== undefined) {
      lines.push(`✔ Langfuse ${config.langfuse.baseUrl}${shape.version ? ` (server ${shape.version})` : ''}: credentials accepted, project ${poller.projectId}, ${generation}`);
    } else {
      lines.push(`✔ Langfuse ${config.langfuse.baseUrl}${shape.version ? ` (server ${shape.version})` : ''}: credentials accepted, project ${poller.projectId}`);
      lines.push(`✔ ${generation}`);
    }
    store.close();
  } catch (err) {
    ok = false;
    const msg = err instanceof LangfuseError && err.kind === 'auth' ? `Langfuse refused the credentials: ${err.message}` : `Langfuse unreachable or failing: ${(err as Error).message}`;
    lines.push(`✘ ${msg}`);
  } finally {
    await client.close();
  }
  return { ok, lines };
}

export async function check(config: BridgeConfig, logger: Logger): Promise<{ ok: boolean; lines: string[] }> {
  const lines: string[] = [];
  let ok = true;
  for (const pc of projectConfigs(config)) {
    const r = await checkLangfuse(pc, logger);
    ok &&= r.ok;
    // Several projects: one line each, named.
    if (pc.projectName !== undefined) lines.push(r.lines[0]!.replace(/^(✔|✘) /, `$1 project ${pc.projectName}: `));
    else lines.push(...r.lines);
  }
  try {
    const { sinks } = await createSinks(config, logger);
    for (const s of sinks) {
      const problems = s.validate?.() ?? [];
      if (problems.length) {
        ok = false;
        lines.push(`✘ sink ${s.name} (${s.kind}): ${problems.join('; ')}`);
      } else lines.push(`✔ sink ${s.name} (${s.kind}): settings valid`);
    }
    await closeSinks(sinks);
  } catch (err) {
    ok = false;
    lines.push(`✘ sinks: ${(err as Error).message}`);
  }
  return { ok, lines };
}

/**
 * Sends one synthetic `test` event through the outbox, like a dashboard's "Send test event". Without
 * `--sink` it goes to the webhook, stdout and handler sinks: a test pages nobody and posts to no
 * Slack channel unless that sink is named. One result line per sink; nothing is kept for `replay`.
 */
export async function sendTestEvent(config: BridgeConfig, logger: Logger, sinkName: string | null, opts: { stdout?: NodeJS.WritableStream } = {}): Promise<{ ok: boolean; results: string[] }> {
  const store = openStore(config, logger);
  const { sinks: all } = await createSinks(config, logger, { stdout: opts.stdout });
  let targets: Sink[];
  if (sinkName) {
    const s = all.find((x) => x.name === sinkName);
    if (!s) {
      await closeSinks(all);
      store.close();
      throw new Fatal(`--sink ${sinkName} is not a configured sink; configured: ${all.map((x) => x.name).join(', ')}`, 2);
    }
    targets = [s];
  } else targets = all.filter((s) => !s.alerting);
  const skipped = sinkName ? [] : all.filter((s) => s.alerting);
  const projectId = store.getMeta(`project:${config.langfuse.publicKey}`) ?? 'test-project';
  const ev = testEvent(projectId);
  const origin = `test:${ev.id}`;
  store.write(() => store.enqueue([{ id: ev.id, type: ev.event, ts: ev.timestamp, body: JSON.stringify(ev), sinks: targets.map((s) => s.name) }], { origin }));
  const dispatcher = new Dispatcher(store, targets, { retry: { maxAttempts: 1, baseSeconds: 1 }, logger, origin, idleMs: 50, replayable: false });
  dispatcher.start();
  await dispatcher.drain();
  await dispatcher.stop(1000);
  const counts = store.counts(origin);
  const dead = store.deadLetters(null, null, 100).filter((d) => d.eventId === ev.id);
  const results = targets.map((s) => {
    const c = counts.get(s.name);
    if (c?.delivered) return `✔ ${s.name}: delivered ${ev.id}`;
    return `✘ ${s.name}: ${dead.find((d) => d.sink === s.name)?.lastError ?? 'not delivered'}`;
  });
  for (const s of skipped) results.push(`- ${s.name}: not sent (${s.kind} alerts real people; send it one with --sink ${s.name})`);
  // A test event is not a real one: leave no dead letter behind for `replay`.
  store.db.prepare('DELETE FROM outbox WHERE origin = ?').run(origin);
  await closeSinks(all);
  store.close();
  return { ok: results.every((r) => !r.startsWith('✘')), results };
}
