/** `replay`: dead-lettered deliveries back in the queue, for the daemon (or, in Redis mode, the workers) to send. */
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/index.js';
import { alertSinkNames } from '../sinks/kinds.js';
import type { Store } from '../store/index.js';
import { onDatabase, openStore, queueModule, runningDaemon, unknownSink } from './shared.js';

/** `replay` as the CLI calls it: how many deliveries are queued again, and who sends them. */
export async function replayCommand(config: BridgeConfig, logger: Logger, o: { sink: string | null; sinceMs: number | null }): Promise<void> {
  const n = await onDatabase(config.database, () => replayWithQueues(config, o.sink, o.sinceMs, logger));
  const daemon = n ? runningDaemon(config.database) : null;
  const who = daemon ? `; the running daemon (pid ${daemon.pid} on host ${daemon.host}) delivers them` : '; `langfuse-bridge run` delivers them';
  process.stdout.write(`${n} dead-lettered deliveries queued again${n ? who : ''}\n`);
}

export function replay(config: BridgeConfig, sink: string | null, sinceMs: number | null, logger?: Logger): number {
  const store = openStore(config, logger);
  try {
    if (sink) {
      assertKnownSink(config, store, sink);
      return store.replay(sink, sinceMs);
    }
    // History pages nobody: Slack and PagerDuty dead letters go out again only when --sink names them.
    const alerting = alertingSinkNames(config);
    const dead = store.deadSinks();
    const left = dead.filter((name) => alerting.has(name));
    if (left.length) logger?.info({ sinks: left }, 'dead letters of alert sinks are replayed only when --sink names them');
    return dead.filter((name) => !alerting.has(name)).reduce((n, name) => n + store.replay(name, sinceMs), 0);
  } finally {
    store.close();
  }
}

/** `replay`: in Redis mode, failed jobs are retried in place (their rows open again), then dead rows requeued. */
export async function replayWithQueues(config: BridgeConfig, sink: string | null, sinceMs: number | null, logger?: Logger): Promise<number> {
  if (!config.queue.redisUrl) return replay(config, sink, sinceMs, logger);
  const store = openStore(config, logger);
  let retried = 0;
  try {
    if (sink) assertKnownSink(config, store, sink);
    const alerting = alertingSinkNames(config);
    const sinks = sink ? [sink] : [...new Set([...config.sinks.map((s) => s.name), ...store.counts().keys()])].filter((name) => !alerting.has(name));
    retried = await (await queueModule()).retryFailedJobs(config, store, sinks, sinceMs, logger);
  } finally {
    store.close();
  }
  return retried + replay(config, sink, sinceMs);
}

/** `--sink NAME` names a configured sink, or one whose deliveries the database still holds. */
function assertKnownSink(config: BridgeConfig, store: Store, sink: string): void {
  if (!config.sinks.some((s) => s.name === sink) && !store.counts().has(sink)) throw unknownSink(sink, config.sinks.map((s) => s.name));
}

function alertingSinkNames(config: BridgeConfig): Set<string> {
  return new Set(alertSinkNames(config.sinks));
}
