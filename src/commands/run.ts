/**
 * `run`, the daemon: one poller per project on the interval, the dispatcher (or the Redis relay)
 * delivering all the while, the ops server and console, until SIGINT/SIGTERM. The lock and heartbeat
 * that keep it to one daemon per database are in store/daemon.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { projectConfigs, type BridgeConfig } from '../config/index.js';
import { Dispatcher } from '../delivery/index.js';
import type { AttemptOutcome, SinkState } from '../delivery/states.js';
import { DaemonRunningError, LockLostError, UsageError, type BridgeError, oneLine } from '../errors.js';
import { LangfuseError } from '../langfuse/client.js';
import { MonitorRunner } from '../monitors/index.js';
import { sleep } from '../langfuse/rate-limiter.js';
import { createConsole } from '../ops/console/index.js';
import { scheduleDigest } from '../ops/digest.js';
import { Metrics } from '../ops/metrics.js';
import { health, paceWarnings, startOpsServer, type OpsServer } from '../ops/server.js';
import { Poller } from '../poll/index.js';
import { closeSinks, createSinks } from '../sinks/index.js';
import { alertSinkNames } from '../sinks/kinds.js';
import type { Sink } from '../sinks/types.js';
import type { SlackSinkConfig } from '../sinks/slack/index.js';
import { databaseProblem, type Store } from '../store/index.js';
import { DAEMON_HEARTBEAT_MS, acquireDaemonLock, releaseDaemonLock, renewDaemonLock, type DaemonRecord } from '../store/daemon.js';
import { VERSION } from '../version.js';
import { recordPollPace, type PollPace } from './poll-pace.js';
import { asDatabaseError, createClient, describeDaemon, onDatabase, openStore, projectLogger, redisBackend, runningDaemon, untilStopped } from './shared.js';
import { statusReportWithQueues } from './status.js';

/** `run` as the CLI calls it: the daemon, until a signal stops it. */
export async function runCommand(config: BridgeConfig, logger: Logger, o: { withWorker: boolean }): Promise<void> {
  if (o.withWorker && !config.queue.redisUrl) throw new UsageError('--with-worker needs BRIDGE_REDIS_URL (Redis queues); without it `run` delivers in-process already');
  await onDatabase(config.database, async () => untilStopped(await runDaemon(config, logger, { withWorker: o.withWorker }), logger));
}

export interface RunHandle {
  /** Resolves when the daemon has stopped and closed the database. */
  done: Promise<void>;
  stop(): void;
  metrics: Metrics;
  /** With BRIDGE_HTTP_PORT: where /healthz and /metrics are served. */
  opsUrl?: string;
}

function anotherDaemon(database: string, holder: DaemonRecord): string {
  return `another \`langfuse-bridge run\` is running on ${database}: ${describeDaemon(holder)}; stop it first, or give this one its own BRIDGE_DATABASE`;
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
  const queue = await redisBackend(config, logger);
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
    const log = projectLogger(pc, logger);
    const client = createClient(pc, log, { store });
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
      { store, logger, status: () => statusReportWithQueues(config), sinkNames: () => sinks.map((s) => s.name), wake: () => dispatcher.wake() },
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
  const monitors = new MonitorRunner({
    store,
    monitors: config.monitors,
    sinkNames: sinks.map((s) => s.name),
    alertSinks: alertSinkNames(config.sinks),
    projects: () => projects.flatMap((p) => (p.poller.projectId ? [{ projectId: p.poller.projectId, langfuseBaseUrl: p.config.langfuse.baseUrl }] : [])),
    // The id a project's keys had at its last connection counts too: a firing monitor is kept at start.
    projectName: (id) => projects.find((p) => (p.poller.projectId ?? store.meta.projectId(p.config.langfuse.publicKey)) === id)?.config.projectName ?? null,
    defaultLangfuseBaseUrl: config.langfuse.baseUrl,
    logger,
    onQueued: () => dispatcher.wake(),
  });
  monitors.start();

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
      else logger.warn({ err: oneLine(err) }, 'could not renew the daemon lock; trying again shortly');
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
        else logger.error({ err: oneLine(err) }, 'poll failed; retrying next interval');
        metrics.lastPollError = Date.now();
      }
      if (prunes && Date.now() - lastPrune > 3_600_000) {
        lastPrune = Date.now();
        try {
          const p = store.prune(config.retentionDays);
          if (p.outbox || p.seen || p.attempts) logger.info(p, 'pruned rows older than the retention');
        } catch (err) {
          logger.warn({ err: oneLine(err) }, 'prune failed');
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
    monitors.stop();
    digest?.stop();
    // Each step on its own: a database that failed must not keep the rest from closing.
    const step = async (what: string, fn: () => unknown): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        if (!fatal) logger.warn({ err: oneLine(err) }, `could not ${what}`);
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
