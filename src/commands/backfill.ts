/**
 * `backfill`: one bounded pass over [from, to) per project, delivered like live events, never moving the
 * live cursor. Its terminal display and resume message are in backfill-progress.ts.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { projectConfigs, type BridgeConfig } from '../config/index.js';
import { Dispatcher } from '../delivery/index.js';
import type { DeliveryStatus } from '../delivery/states.js';
import { UsageError } from '../errors.js';
import { shortWaitText, type LangfuseClient } from '../langfuse/client.js';
import type { WaitReason } from '../langfuse/rate-limiter.js';
import { Poller, type BackfillProgress } from '../poll/index.js';
import { closeSinks, createSinks } from '../sinks/index.js';
import { ProgressDisplay, sayInterrupted } from './backfill-progress.js';
import { createClient, emptyCounts, onDatabase, openStore, projectLogger, redisBackend, resolveSinks } from './shared.js';

/**
 * `backfill` as the CLI calls it: the pass with its progress shown, and its exit code: 0 when every
 * delivery succeeded, 3 when some were dead-lettered. Ctrl-C (130) or SIGTERM (143) ends it with the
 * command that resumes it.
 */
export async function backfillCommand(
  config: BridgeConfig,
  logger: Logger,
  o: { from: Date; to?: Date; redeliver: boolean; sink?: string; alerts: boolean; project?: string; configFile: string | null },
): Promise<number> {
  const toMs = (o.to ?? new Date()).getTime();
  if (o.from.getTime() >= toMs) throw new UsageError(`--from must be before --to (got ${o.from.toISOString()} ≥ ${new Date(toMs).toISOString()})`);
  const display = new ProgressDisplay(logger);
  const abort = new AbortController();
  // Exits as shells report a signal: 130 for Ctrl-C (SIGINT), 143 for SIGTERM.
  let signalExit = 130;
  process.once('SIGINT', () => abort.abort(new Error('interrupted')));
  process.once('SIGTERM', () => {
    signalExit = 143;
    abort.abort(new Error('interrupted'));
  });
  const range = { from: o.from.toISOString(), to: new Date(toMs).toISOString() };
  let r: Awaited<ReturnType<typeof runBackfill>>;
  try {
    r = await onDatabase(config.database, () =>
      runBackfill(config, logger, {
        fromMs: o.from.getTime(),
        toMs,
        redeliver: o.redeliver,
        sink: o.sink ?? null,
        alerts: o.alerts,
        project: o.project ?? null,
        signal: abort.signal,
        onStart: display.onStart,
        onProgress: display.onProgress,
      }),
    );
  } catch (err) {
    display.stop();
    if (!abort.signal.aborted) throw err;
    display.endLine();
    sayInterrupted({ configFile: o.configFile, ...range, redeliver: o.redeliver, sink: o.sink ?? null, alerts: o.alerts, project: o.project ?? null });
    process.exit(signalExit);
  }
  display.stop();
  display.endLine();
  const summary = { events: r.events, queued: r.inserted, delivered: r.delivered, dead: r.dead, seconds: Math.round((Date.now() - display.began) / 100) / 10 };
  process.stdout.isTTY ? logger.info(summary, r.exitCode ? 'backfill done; some deliveries were dead-lettered' : 'backfill done') : logger.info(summary, 'backfill done');
  return r.exitCode;
}

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

export async function runBackfill(config: BridgeConfig, logger: Logger, o: BackfillOptions, opts: { stdout?: NodeJS.WritableStream } = {}): Promise<{ exitCode: number; events: number; inserted: number; delivered: number; dead: number }> {
  let targets = projectConfigs(config);
  if (o.project) {
    if (config.projects.length === 0) throw new UsageError(`--project ${o.project} needs "projects" in the config file; none are configured`);
    targets = targets.filter((pc) => pc.projectName === o.project);
    if (targets.length === 0) throw new UsageError(`--project ${o.project} is not a configured project; configured: ${config.projects.map((p) => p.name).join(', ')}`);
  }
  const queue = await redisBackend(config, logger);
  const store = openStore(config, logger);
  const { sinks: all } = await createSinks(config, logger, { stdout: opts.stdout });
  const sinks = resolveSinks(all, o.sink, o.alerts);
  // The same pass run again resumes under the same origin; a --redeliver pass is always a new one,
  // so that each of its deliveries is sent again exactly once.
  const pass = createHash('sha1').update(JSON.stringify([o.fromMs, o.toMs, o.redeliver, sinks.map((s) => s.name)])).digest('hex').slice(0, 12);
  const origin = `backfill:${pass}${o.redeliver ? `:${Date.now().toString(36)}` : ''}`;
  // Redis mode: relay this backfill's rows and wait until their jobs ended (workers deliver them).
  const dispatcher = queue
    ? new queue.QueueDelivery(store, sinks, config, logger, { origin, reconcileMs: 1_000 })
    : new Dispatcher(store, sinks, { retry: config.retry, logger, origin });
  const prunedBefore = store.meta.prunedBefore();
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
      const log = projectLogger(pc, logger);
      const client = createClient(pc, log, { store, role: 'backfill' });
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
    store.meta.forgetResumePoints(origin);
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
  const t = emptyCounts();
  for (const c of m.values()) for (const k of Object.keys(t) as DeliveryStatus[]) t[k] += c[k];
  return t;
}

