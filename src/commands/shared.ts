/**
 * What more than one command uses, written once: the Langfuse client, the database, the sinks `--sink`
 * picks, the daemon already on a database, and the signals a long-lived command stops on.
 */
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/index.js';
import type { DeliveryStatus } from '../delivery/states.js';
import { UsageError } from '../errors.js';
import { LangfuseClient } from '../langfuse/client.js';
import { ago } from '../ops/ago.js';
import type { Sink } from '../sinks/types.js';
import { Store, databaseProblem, peekDatabase } from '../store/index.js';
import { daemonState, readDaemon, type DaemonRecord } from '../store/daemon.js';
import { USER_AGENT } from '../version.js';

/** The Redis backend loads only when BRIDGE_REDIS_URL asks for it: it weighs on every start otherwise. */
export const queueModule = () => import('../queue/index.js');

/**
 * Redis mode (BRIDGE_REDIS_URL): the queue backend, once Redis answers; null without it. No silent
 * fallback to in-process delivery when Redis does not answer.
 */
export async function redisBackend(config: BridgeConfig, logger: Logger) {
  if (!config.queue.redisUrl) return null;
  const queue = await queueModule();
  await queue.waitForRedis(config.queue, logger);
  return queue;
}

export interface ClientOptions {
  /** Shares the project's request ceiling with every other process on this database. */
  store?: Store;
  /** Who waits, in what the client logs: a live poll or a backfill. */
  role?: 'live' | 'backfill';
  /** `check`: two quick attempts and at most 15 s a call, where a daemon would keep waiting. */
  probe?: boolean;
}

/** The client of one project, with the project's keys, host, request ceiling and timeouts. */
export function createClient(config: BridgeConfig, logger: Logger, o: ClientOptions = {}): LangfuseClient {
  const max = config.langfuse.maxRequestsPerMinute;
  const explicit = config.langfuse.maxRequestsPerMinuteSet !== false;
  const role = o.role ?? 'live';
  return new LangfuseClient({
    ledger: o.store?.callLedger(`${config.langfuse.baseUrl}|${config.langfuse.publicKey}`, { max, explicit, role }),
    baseUrl: config.langfuse.baseUrl,
    publicKey: config.langfuse.publicKey,
    secretKey: config.langfuse.secretKey,
    maxRequestsPerMinute: max,
    maxRequestsPerMinuteSet: explicit,
    role,
    timeoutSeconds: o.probe ? Math.min(config.langfuse.timeoutSeconds, 15) : config.langfuse.timeoutSeconds,
    logger,
    userAgent: USER_AGENT,
    ...(o.probe ? { maxAttempts: 2, backoffBaseMs: 500 } : {}),
  });
}

/** The log of one project's work: with several projects, each line names its project. */
export function projectLogger(config: BridgeConfig, logger: Logger): Logger {
  return config.projectName !== undefined ? logger.child({ project: config.projectName }) : logger;
}

/**
 * Opens the database for writing (creating and upgrading it as needed). Upgrading an existing one to
 * a newer schema is logged first: on a large database it takes a while. A file that cannot be used
 * is a DatabaseError naming it and the fix.
 */
export function openStore(config: BridgeConfig, logger?: Logger): Store {
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

/** A failure of the database file (SQLite, the file system) as the DatabaseError naming it; anything else as it was. */
export function asDatabaseError(err: unknown, file: string): unknown {
  return databaseProblem(err, file) ?? err;
}

/** A command's work, whose database failures, wherever they arise, come out as the DatabaseError naming the file. */
export async function onDatabase<T>(file: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw asDatabaseError(err, file);
  }
}

/** A sink's deliveries by status, before there are any. */
export function emptyCounts(): Record<DeliveryStatus, number> {
  return { queued: 0, delivering: 0, retrying: 0, delivered: 0, dead: 0 };
}

/** `--sink NAME` naming no sink: the flag, and the sinks there are. */
export function unknownSink(name: string, configured: string[]): UsageError {
  return new UsageError(`--sink ${name} is not a configured sink; configured: ${configured.join(', ')}`);
}

/**
 * The sinks a pass over history or a test event goes to: the one `--sink` names, or every sink but the
 * alert sinks unless `alerts` asks for them. History does not page people.
 */
export function resolveSinks(all: Sink[], sinkName: string | null, alerts: boolean): Sink[] {
  if (sinkName) {
    const s = all.find((x) => x.name === sinkName);
    if (!s) throw unknownSink(sinkName, all.map((x) => x.name));
    return [s];
  }
  return all.filter((s) => !s.alerting || alerts);
}

/** The daemon holding this database's lock, read without opening it for writing; null when none (or no file yet). */
export function runningDaemon(file: string): DaemonRecord | null {
  if (file === ':memory:' || !existsSync(file)) return null;
  try {
    const d = readDaemon(peekDatabase(file));
    return daemonState(d) === 'running' ? d : null;
  } catch {
    return null; // opening it for writing says what is wrong with it
  }
}

export function describeDaemon(d: DaemonRecord, now = Date.now()): string {
  return `pid ${d.pid} on host ${d.host}, since ${new Date(d.startedAt).toISOString()} (${ago(d.startedAt, now)})`;
}

/**
 * Runs a long-lived command (`run`, `worker`) until SIGINT/SIGTERM: then it stops taking work and has
 * 10 s to finish; a second signal exits at once (deliveries in flight stay queued).
 */
export async function untilStopped(handle: { stop(): void; done: Promise<void> }, log: Logger): Promise<void> {
  let stopping = false;
  const onSignal = (sig: string): void => {
    if (stopping) {
      log.warn({ signal: sig }, 'second signal: exiting now; deliveries in flight stay queued');
      process.exit(130);
    }
    stopping = true;
    log.info({ signal: sig }, 'shutting down');
    handle.stop();
    setTimeout(() => {
      log.error('shutdown took longer than 10 s; exiting');
      process.exit(1);
    }, 9_500).unref();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  await handle.done;
}
