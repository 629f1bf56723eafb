/**
 * The commands' work, wired from the stages: config → Langfuse client → poller → store → dispatcher
 * → sinks. `cli.ts` only parses flags and calls these.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:net';
import type { Logger } from 'pino';
import { projectConfigs, type BridgeConfig, type SlackSinkConfig } from './config.js';
import { Dispatcher } from './delivery/index.js';
import { DaemonRunningError, LockLostError, UsageError, type BridgeError } from './errors.js';
import type { AttemptOutcome, DeliveryStatus, SinkState } from './delivery/states.js';
import { testEvent } from './events/index.js';
import { LangfuseClient, LangfuseError, shortWaitText } from './langfuse/client.js';
import { sleep, type WaitReason } from './langfuse/rate-limiter.js';
import { scheduleDigest } from './ops/digest.js';
import { ago, agoIso, until } from './ops/ago.js';
import { Metrics } from './ops/metrics.js';
import { createConsole } from './ops/console/index.js';
import { health, paceWarnings, startOpsServer, type OpsServer } from './ops/server.js';
import { Poller, SOURCE_STREAMS, sweepIntervalMs, type BackfillProgress, type SourceName } from './poll/index.js';
import { closeSinks, createSinks } from './sinks/index.js';
import type { Sink } from './sinks/types.js';
import { PATHS } from './sources/index.js';
import { SCHEMA_VERSION, Store, databaseProblem, peekDatabase, unwritable } from './store/index.js';
import { DAEMON_HEARTBEAT_MS, acquireDaemonLock, daemonState, readDaemon, releaseDaemonLock, renewDaemonLock, type DaemonRecord, type DaemonState } from './store/daemon.js';
import type { QueueStatus } from './queue/index.js';
import { USER_AGENT, VERSION } from './version.js';

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

// --- run ------------------------------------------------------------------------------------------

export interface RunHandle {
  /** Resolves when the daemon has stopped and closed the database. */
  done: Promise<void>;
  stop(): void;
  metrics: Metrics;
  /** With BRIDGE_HTTP_PORT: where /healthz and /metrics are served. */
  opsUrl?: string;
}

/**
 * Opens the database for writing (creating and upgrading it as needed). Upgrading an existing one to
 * a newer schema is logged first: on a large database it takes a while. A file that cannot be used
 * is a DatabaseError naming it and the fix.
 */
function openStore(config: BridgeConfig, logger?: Logger): Store {
  try {
    return new Store(config.database, {
      onUpgrade: (from, to) => logger?.info({ database: config.database, from, to }, 'upgrading the database schema (a minute or more for millions of events)'),
      onLoosePermissions: (files) => {
        const shown = files.map((f) => `${f.file} (was 0${f.mode.toString(8)})`);
        if (files.every((f) => f.tightened)) logger?.warn({ files: shown }, 'database files were open to other users; set to 0600: they hold event bodies');
        else logger?.warn({ files: shown }, 'database files are open to other users and could not be set to 0600 (not their owner): chmod 600 them, they hold event bodies');
      },
    });
  } catch (err) {
    throw asDatabaseError(err, config.database);
  }
}

/** `status`, `check`: read only; never creates, upgrades or writes the file. */
function openStoreReadonly(config: BridgeConfig): Store {
  try {
    return new Store(config.database, { readonly: true });
  } catch (err) {
    throw asDatabaseError(err, config.database);
  }
}

/** A failure of the database file (SQLite, the file system) as the DatabaseError naming it; anything else as it was. */
function asDatabaseError(err: unknown, file: string): unknown {
  return databaseProblem(err, file) ?? err;
}

function anotherDaemon(database: string, holder: DaemonRecord): string {
  return `another \`langfuse-bridge run\` is running on ${database}: ${describeDaemon(holder)}; stop it first, or give this one its own BRIDGE_DATABASE`;
}

/** The daemon holding this database's lock, read without opening it for writing; null when none (or no file yet). */
export function runningDaemon(file: string): DaemonRecord | null {
  if (file === ':memory:' || !existsSync(file)) return null;
  try {
    const d = readDaemon(peekDatabase(file, ['daemon']));
    return daemonState(d) === 'running' ? d : null;
  } catch {
    return null; // opening it for writing says what is wrong with it
  }
}

function describeDaemon(d: DaemonRecord, now = Date.now()): string {
  return `pid ${d.pid} on host ${d.host}, since ${new Date(d.startedAt).toISOString()} (${ago(d.startedAt, now)})`;
}

/** Where the ops server hands console requests once the daemon has what the console reads. */
interface ConsoleRoute {
  handle: ((req: IncomingMessage, res: ServerResponse) => void) | null;
}

/** The daemon: polls on the interval until stopped, delivering all the while. */
export async function runDaemon(config: BridgeConfig, logger: Logger, opts: { stdout?: NodeJS.WritableStream; withWorker?: boolean } = {}): Promise<RunHandle> {
  // A daemon already running on this database is named before anything else happens: before the
  // ops port (which it holds too) and before opening, which would upgrade the file under it.
  const running = runningDaemon(config.database);
  if (running) throw new DaemonRunningError(anotherDaemon(config.database, running));
  const metrics = new Metrics();
  // Bound first: a port that cannot be bound is a setting error, said before anything else starts.
  // The console needs the store and the sinks, which come later: until then it says it is starting.
  const consoleRoute: ConsoleRoute = { handle: null };
  const ops =
    config.httpPort !== null
      ? await startOpsServer(
          config.httpHost,
          config.httpPort,
          metrics,
          () => ({ ...health(metrics, config.healthMaxAgeSeconds), warnings: paceWarnings(metrics) }),
          logger,
          (req, res) => (consoleRoute.handle ? consoleRoute.handle(req, res) : res.writeHead(503, { 'content-type': 'text/plain' }).end('starting: the console is not ready yet\n')),
        )
      : null;
  // One daemon per database: a second one would double every call to Langfuse.
  let store: Store;
  try {
    store = openStore(config, logger);
  } catch (err) {
    await ops?.close();
    throw err;
  }
  try {
    const lock = acquireDaemonLock(store, VERSION);
    // Taken in a transaction: two runs started at the same instant both passed the look above.
    if (!lock.ok) throw new DaemonRunningError(anotherDaemon(config.database, lock.holder));
  } catch (err) {
    store.close();
    await ops?.close();
    throw asDatabaseError(err, config.database);
  }
  // Starting may wait a while (for Redis, say): the lock is renewed meanwhile; the daemon's heartbeat takes over once it runs.
  const keep = setInterval(() => {
    try {
      renewDaemonLock(store);
    } catch {
      /* the daemon's own heartbeat reports it */
    }
  }, DAEMON_HEARTBEAT_MS);
  try {
    return await startDaemon(config, logger, store, opts, metrics, ops, consoleRoute);
  } catch (err) {
    try {
      releaseDaemonLock(store);
    } catch {
      /* the error below says what is wrong */
    }
    store.close();
    await ops?.close();
    throw asDatabaseError(err, config.database);
  } finally {
    clearInterval(keep);
  }
}

async function startDaemon(
  config: BridgeConfig,
  logger: Logger,
  store: Store,
  opts: { stdout?: NodeJS.WritableStream; withWorker?: boolean },
  metrics: Metrics,
  ops: OpsServer | null,
  consoleRoute: ConsoleRoute,
): Promise<RunHandle> {
  // Redis mode (BRIDGE_REDIS_URL): no silent fallback to in-process delivery when it does not answer.
  const queue = config.queue.redisUrl ? await queueModule() : null;
  if (queue) await queue.waitForRedis(config.queue, logger);
  const { sinks } = await createSinks(config, logger, { stdout: opts.stdout });
  metrics.bindStore(store);
  const hooks = {
    onOutcome: (sink: Sink, outcome: AttemptOutcome, type: string) => metrics.deliveries.inc({ sink: sink.name, outcome, event: type }),
    onState: (sink: string, state: SinkState) => metrics.setSinkState(sink, state),
  };
  if (!queue || opts.withWorker) for (const s of sinks) metrics.setSinkState(s.name, 'ok');
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
      handoff: () => dispatcher.handoff(),
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
  const digest = config.digestCron && slacks.length ? scheduleDigest(config.digestCron, store, slacks.map((s) => s.name), logger, dispatcher) : null;
  if (ops) {
    consoleRoute.handle = createConsole(
      { store, logger, status: () => statusReportWithQueues(config, logger), sinkNames: () => sinks.map((s) => s.name), wake: () => dispatcher.wake() },
      { host: config.httpHost, token: config.httpToken },
    );
  }

  logger.info(
    several
      ? { projects: projects.map((p) => p.config.projectName), sinks: sinks.map((s) => s.name), database: config.database, intervalSeconds: config.pollIntervalSeconds }
      : { langfuse: config.langfuse.baseUrl, streams: config.streams, sinks: sinks.map((s) => s.name), database: config.database, intervalSeconds: config.pollIntervalSeconds },
    'langfuse-bridge starting',
  );
  dispatcher.start();

  // A database that cannot be used any more (damaged, turned read-only, disk full) stops the daemon:
  // polling on would read Langfuse for nothing and fail every write.
  let fatal: BridgeError | null = null;
  const fail = (f: BridgeError): void => {
    if (fatal) return;
    fatal = f;
    logger.error({ database: config.database, err: f.message }, 'stopping: the database cannot be used');
    abort.abort(new Error('stopping'));
  };
  // The heartbeat renews the lock; a daemon that lost it (it stalled past the expiry and another run
  // took over) stops rather than poll beside the other.
  const heartbeat = setInterval(() => {
    try {
      if (!renewDaemonLock(store)) fail(new LockLostError(`another \`langfuse-bridge run\` took over ${config.database} after this one stalled past its lock's expiry; this one stops`));
    } catch (err) {
      const p = databaseProblem(err, config.database);
      if (p) fail(p);
      else logger.warn({ err: (err as Error).message }, 'could not renew the daemon lock; trying again shortly');
    }
  }, DAEMON_HEARTBEAT_MS);

  const recordedPaces = new Map<string, string>();
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
        const p = databaseProblem(err, config.database);
        if (p) {
          fail(p);
          break;
        }
        if (err instanceof LangfuseError && err.kind === 'auth') logger.error({ err: err.message }, 'Langfuse refused the credentials; retrying next interval');
        else logger.error({ err: (err as Error).message }, 'poll failed; retrying next interval');
        metrics.lastPollError = Date.now();
      }
      if (prunes && Date.now() - lastPrune > 3_600_000) {
        lastPrune = Date.now();
        try {
          const p = store.prune(config.retentionDays);
          if (p.outbox || p.seen || p.attempts) logger.info(p, 'pruned rows older than the retention');
        } catch (err) {
          logger.warn({ err: (err as Error).message }, 'prune failed');
        }
      }
      // The pace the ceiling can hold: said once (and again when it changes), shown by status, /metrics, /healthz.
      let interval = config.pollIntervalSeconds;
      if (poller.projectId !== null) {
        interval = poller.effectiveIntervalSeconds();
        let pace: PollPace;
        try {
          pace = recordPollPace(store, metrics, poller, pc, starts, recordedPaces);
        } catch (err) {
          const p = databaseProblem(err, config.database);
          if (p) {
            fail(p);
            break;
          }
          throw err;
        }
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
    clearInterval(heartbeat);
    digest?.stop();
    // Each step on its own: a database that failed must not keep the rest from closing.
    const step = async (what: string, fn: () => unknown): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        if (!fatal) logger.warn({ err: (err as Error).message }, `could not ${what}`);
      }
    };
    await step('stop the deliveries', () => dispatcher.stop(7_000));
    await step('close the ops server', () => ops?.close());
    await step('close the sinks', () => closeSinks(sinks));
    for (const p of projects) await step('close the Langfuse client', () => p.client.close());
    await step('release the daemon lock; it expires by itself', () => releaseDaemonLock(store));
    store.close();
    if (fatal) throw fatal;
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

/** `recorded`: per project, the pace last written, so that an unchanged one is not written again every poll. */
function recordPollPace(store: Store, metrics: Metrics, poller: Poller, config: BridgeConfig, starts: number[], recorded: Map<string, string>): PollPace {
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
  // Written when it changes (the measured interval to the second), not every poll.
  const changed = `${pace.effectiveIntervalSeconds}/${pace.ceiling}/${pace.callsPerPoll}/${pace.measuredIntervalSeconds === null ? '' : Math.round(pace.measuredIntervalSeconds)}`;
  if (recorded.get(pace.project) !== changed) {
    store.setMeta(`${PACE_KEY}${pace.project}`, JSON.stringify(pace));
    recorded.set(pace.project, changed);
  }
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
    if (!s) throw new UsageError(`--sink ${sinkName} is not a configured sink; configured: ${all.map((x) => x.name).join(', ')}`);
    return [s];
  }
  return all.filter((s) => !s.alerting || alerts);
}

export async function runBackfill(config: BridgeConfig, logger: Logger, o: BackfillOptions, opts: { stdout?: NodeJS.WritableStream } = {}): Promise<{ exitCode: number; events: number; inserted: number; delivered: number; dead: number }> {
  let targets = projectConfigs(config);
  if (o.project) {
    if (config.projects.length === 0) throw new UsageError(`--project ${o.project} needs "projects" in the config file; none are configured`);
    targets = targets.filter((pc) => pc.projectName === o.project);
    if (targets.length === 0) throw new UsageError(`--project ${o.project} is not a configured project; configured: ${config.projects.map((p) => p.name).join(', ')}`);
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
        handoff: () => dispatcher.handoff(),
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
  /** What needs a human; `status --check` exits 1 when this is not empty. */
  attention: string[];
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
    r.attention = [...r.attention.filter((a) => !a.startsWith('sink ')), ...sinkAttention(r.sinks)];
    r.queueLines = queue.formatQueueStatus(r.queues);
  }
  return r;
}

const isoOrNull = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const secondsSince = (ms: number | null, now: number): number | null => (ms === null ? null : Math.max(0, Math.round((now - ms) / 1000)));

/** `status`: read only; a missing, damaged or other-schema file is a DatabaseError naming it. */
export function statusReport(config: BridgeConfig, _logger?: Logger): StatusReport {
  const store = openStoreReadonly(config);
  try {
    return readStatus(store, config);
  } catch (err) {
    throw asDatabaseError(err, config.database);
  } finally {
    store.close();
  }
}

function readStatus(store: Store, config: BridgeConfig): StatusReport {
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
    const a = store.sinkActivity(name, counts.get(name) ?? { queued: 0, delivering: 0, retrying: 0, delivered: 0, dead: 0 });
    return {
      name,
      ...stateOf(name),
      ...(counts.get(name) ?? { queued: 0, delivering: 0, retrying: 0, delivered: 0, dead: 0 }),
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
  for (const m of store.metaWithPrefix('backfill:')) {
    const cut = m.key.lastIndexOf(':');
    const resumeKey = m.key.slice(0, cut);
    const source = m.key.slice(cut + 1);
    // A project's resume key is its backfill's origin and `:<project>`.
    const origin = openOrigins.find((o) => resumeKey.startsWith(`${o}:`)) ?? resumeKey;
    const project = resumeKey.slice(origin.length + 1);
    const ms = Number(m.value);
    if (Number.isFinite(ms)) entry(origin).readUpTo[project ? `${project}/${source}` : source] = new Date(ms).toISOString();
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

export function replay(config: BridgeConfig, sink: string | null, sinceMs: number | null, logger?: Logger): number {
  const store = openStore(config, logger);
  try {
    if (sink && !config.sinks.some((s) => s.name === sink) && !store.counts().has(sink)) {
      throw new UsageError(`--sink ${sink} is not a configured sink; configured: ${config.sinks.map((s) => s.name).join(', ')}`);
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
    if (sink && !known.has(sink)) throw new UsageError(`--sink ${sink} is not a configured sink; configured: ${config.sinks.map((s) => s.name).join(', ')}`);
    const alerting = alertingSinkNames(config);
    retried = await (await queueModule()).retryFailedJobs(config, store, sink ? [sink] : [...known].filter((name) => !alerting.has(name)), sinceMs, logger);
  } finally {
    store.close();
  }
  return retried + replay(config, sink, sinceMs);
}

// --- check / test-event ---------------------------------------------------------------------------

/** A URL as it may be shown: a user and password in it are replaced by `***`. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username) u.username = '***';
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url.replace(/\/\/([^@/]*)@/, '//***@');
  }
}

/** The endpoints a stream reads, per API generation (legacy: with the scores path the server serves). */
function streamEndpoints(stream: string, generation: 'v4' | 'legacy', legacyScores: string): string[] {
  if (stream === 'prompts') return [PATHS.prompts];
  if (generation === 'v4') return stream === 'scores' ? [PATHS.scoresV3] : [PATHS.observationsV2];
  if (stream === 'scores') return [legacyScores];
  // Legacy traces come from the trace list, their levels from the observations.
  return stream === 'traces' ? [PATHS.traces, PATHS.observationsV1] : [PATHS.observationsV1];
}

const PROBE_QUERY: Record<string, Record<string, string | number>> = { [PATHS.observationsV2]: { limit: 1, fields: 'core' } };

/**
 * Langfuse for one project, without building a poller: reachable, accepting the keys, and serving
 * every endpoint of each configured stream in the API generation `run` would use.
 */
async function checkLangfuse(config: BridgeConfig, logger: Logger): Promise<{ ok: boolean; lines: string[]; summary: string }> {
  const url = redactedUrl(config.langfuse.baseUrl);
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
  // Each path once: absent (404), served, or the error that stops the check.
  const served = new Map<string, boolean>();
  const serves = async (path: string): Promise<boolean> => {
    if (!served.has(path)) {
      try {
        await client.get(path, PROBE_QUERY[path] ?? { limit: 1 });
        served.set(path, true);
      } catch (err) {
        if (err instanceof LangfuseError && err.kind === 'absent') served.set(path, false);
        else throw err;
      }
    }
    return served.get(path)!;
  };
  const fail = (line: string) => ({ ok: false, lines: [`✘ ${line}`], summary: `✘ ${line}` });
  try {
    let version: string | null = null;
    try {
      const h = await client.get<{ version?: unknown }>(PATHS.health, {}, undefined, { auth: false });
      version = typeof h?.version === 'string' ? h.version : null;
    } catch (err) {
      // Health is optional (a proxy may hide it); a host that does not answer at all is not.
      if (!(err instanceof LangfuseError) || err.kind === 'transient') throw err;
    }
    let projectId: string | null = null;
    try {
      const body = await client.get<{ data?: Array<{ id?: unknown }> }>('/api/public/projects');
      const id = body?.data?.[0]?.id;
      projectId = typeof id === 'string' && id ? id : null;
    } catch (err) {
      if (!(err instanceof LangfuseError) || err.kind !== 'absent') throw err;
    }
    const mode = config.langfuse.api;
    const generation = mode === 'auto' ? ((await serves(PATHS.observationsV2)) ? 'v4' : 'legacy') : mode;
    const legacyScores = generation === 'legacy' && config.streams.includes('scores') ? ((await serves(PATHS.scoresV2)) ? PATHS.scoresV2 : PATHS.scoresV1) : PATHS.scoresV1;
    const missing: Array<{ stream: string; paths: string[] }> = [];
    const streamLines: string[] = [];
    for (const stream of config.streams) {
      const paths = streamEndpoints(stream, generation, legacyScores);
      const absent: string[] = [];
      for (const p of paths) if (!(await serves(p))) absent.push(p);
      if (absent.length) missing.push({ stream, paths: absent });
      streamLines.push(absent.length ? `✘ stream ${stream}: ${absent.join(', ')} not served by this Langfuse (HTTP 404)` : `✔ stream ${stream}: ${paths.join(', ')} served`);
    }
    // Every path 404 (the keys never reached a Langfuse API): the base URL is wrong, not the server old.
    if (projectId === null && [...served.values()].every((v) => !v)) {
      const hint = /\/api(\/|$)/.test(new URL(config.langfuse.baseUrl).pathname) ? ' (drop the /api/public path: the host alone)' : '';
      return fail(`Langfuse ${url} answers 404 to every API path: LANGFUSE_BASE_URL must be the Langfuse host${hint}`);
    }
    const server = version ? ` (server ${version})` : '';
    const head = `Langfuse ${url}${server}: credentials accepted${projectId ? `, project ${projectId}` : ''}`;
    const genText =
      generation === 'v4'
        ? 'API generation: v4 (v2 observations + v3 scores)'
        : `API generation: legacy (traces, v1 observations, ${legacyScores === PATHS.scoresV1 ? 'v1' : 'v2'} scores)`;
    const forced = mode !== 'auto';
    const genLine =
      forced && missing.length
        ? `✘ ${genText}, forced by BRIDGE_LANGFUSE_API=${mode}, but this server does not serve ${[...new Set(missing.flatMap((m) => m.paths))].join(', ')}; set BRIDGE_LANGFUSE_API=auto`
        : `✔ ${genText}${forced ? `, forced by BRIDGE_LANGFUSE_API=${mode}` : ''}`;
    const ok = missing.length === 0;
    const summary = ok
      ? `✔ ${head}, ${genText}`
      : `✘ ${head}, ${genText}, but ${missing.map((m) => `stream ${m.stream} (${m.paths.join(', ')})`).join(', ')} not served`;
    return { ok, lines: [`✔ ${head}`, genLine, ...streamLines], summary };
  } catch (err) {
    // The client's own message already says what was refused and what to check.
    if (err instanceof LangfuseError && err.kind === 'auth') return fail(err.message);
    return fail(`Langfuse ${url} unreachable or failing: ${(err as Error).message}`);
  } finally {
    await client.close();
  }
}

/** The database as `run` would use it, read only: usable, schema, a daemon already on it. */
function checkDatabase(config: BridgeConfig): { ok: boolean; line: string } {
  const file = config.database;
  if (!existsSync(file)) {
    const why = unwritable(file);
    return why
      ? { ok: false, line: `✘ database ${file}: does not exist and cannot be created: ${why}; point BRIDGE_DATABASE at a writable place` }
      : { ok: true, line: `✔ database ${file}: does not exist yet; \`langfuse-bridge run\` creates it` };
  }
  const why = unwritable(file) ?? (existsSync(`${file}-shm`) ? null : unwritable(`${file}-shm`));
  if (why) return { ok: false, line: `✘ database ${file} is read-only: ${why}; make it writable, or point BRIDGE_DATABASE at a writable place` };
  let store: Store;
  try {
    store = new Store(file, { readonly: true });
  } catch (err) {
    const p = databaseProblem(err, file);
    // An older schema is fine: `run` upgrades it.
    if (p?.code === 'SCHEMA_OLDER') return olderDatabase(file);
    return { ok: false, line: `✘ ${(p ?? (err as Error)).message}` };
  }
  try {
    // Read what `status` reads (the lock, the cursors, the outbox and its indexes): a damaged file fails here.
    readStatus(store, config);
    return { ok: true, line: `✔ database ${file}: schema ${SCHEMA_VERSION}${daemonNote(readDaemon(store))}` };
  } catch (err) {
    return { ok: false, line: `✘ ${(databaseProblem(err, file) ?? (err as Error)).message}` };
  } finally {
    store.close();
  }
}

function daemonNote(d: DaemonRecord | null): string {
  return daemonState(d) === 'running' ? `; a daemon is running on it (${describeDaemon(d!)})` : '';
}

/** A file of an older schema, which `run` upgrades: read only through its key/value table. */
function olderDatabase(file: string): { ok: boolean; line: string } {
  try {
    const { version, getMeta } = peekDatabase(file, ['daemon']);
    return { ok: true, line: `✔ database ${file}: schema ${version}, \`langfuse-bridge run\` upgrades it to ${SCHEMA_VERSION}${daemonNote(readDaemon({ getMeta }))}` };
  } catch (err) {
    return { ok: false, line: `✘ ${(databaseProblem(err, file) ?? (err as Error)).message}` };
  }
}

/** BRIDGE_HTTP_PORT: can `run` listen there? */
async function checkPort(config: BridgeConfig, daemonHere: boolean): Promise<{ ok: boolean; line: string }> {
  const where = `${config.httpHost}:${config.httpPort}`;
  const error = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    const srv = createServer();
    srv.once('error', (err) => resolve(err as NodeJS.ErrnoException));
    srv.listen(config.httpPort!, config.httpHost, () => srv.close(() => resolve(null)));
  });
  if (!error) return { ok: true, line: `✔ ops server: ${where} free (BRIDGE_HTTP_PORT)` };
  if (error.code === 'EADDRINUSE' && daemonHere) return { ok: true, line: `✔ ops server: ${where} in use, by the daemon running on this database presumably` };
  return { ok: false, line: `✘ ops server: cannot listen on ${where} (${error.code ?? error.message}); free the port or change BRIDGE_HTTP_PORT` };
}

/**
 * `check`: exercises what `run` needs, one ✔/✘ line each. Never creates, upgrades or writes the database.
 */
export async function check(config: BridgeConfig, logger: Logger): Promise<{ ok: boolean; lines: string[] }> {
  const lines: string[] = [];
  let ok = true;
  for (const pc of projectConfigs(config)) {
    const r = await checkLangfuse(pc, logger);
    ok &&= r.ok;
    // Several projects: one line each, named.
    if (pc.projectName !== undefined) lines.push(r.summary.replace(/^(✔|✘) /, `$1 project ${pc.projectName}: `));
    else lines.push(...r.lines);
  }
  const db = checkDatabase(config);
  ok &&= db.ok;
  lines.push(db.line);
  if (config.queue.redisUrl) {
    try {
      await (await queueModule()).waitForRedis(config.queue, logger, Math.min(config.queue.connectWaitSeconds, 5));
      lines.push(`✔ Redis ${redactedUrl(config.queue.redisUrl)}: answers`);
    } catch (err) {
      ok = false;
      lines.push(`✘ Redis: ${(err as Error).message}`);
    }
  }
  try {
    // Builds every sink as `run` does: handler modules are loaded here.
    const { sinks } = await createSinks(config, logger);
    for (const s of sinks) {
      const problems = s.validate?.() ?? [];
      if (problems.length) {
        ok = false;
        lines.push(`✘ sink ${s.name} (${s.kind}): ${problems.join('; ')}`);
      } else lines.push(`✔ sink ${s.name} (${s.kind}): ${s.kind === 'handler' ? 'module loads, ' : ''}settings valid`);
    }
    await closeSinks(sinks);
  } catch (err) {
    ok = false;
    lines.push(`✘ sinks: ${(err as Error).message}`);
  }
  if (config.httpPort !== null) {
    const p = await checkPort(config, db.line.includes('a daemon is running'));
    ok &&= p.ok;
    lines.push(p.line);
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
  try {
    // As for a backfill: alert sinks only when named.
    targets = backfillSinks(all, sinkName, false);
  } catch (err) {
    await closeSinks(all);
    store.close();
    throw err;
  }
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
