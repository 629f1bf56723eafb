/** `worker`: delivers from the Redis queues that `run` relays its outbox to, until SIGINT/SIGTERM. */
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/index.js';
import { untilStopped } from './shared.js';

export async function workerCommand(config: BridgeConfig, logger: Logger, o: { sink: string | null; concurrency: number | null }): Promise<void> {
  // Loaded here: the Redis client weighs on every other command's start.
  const { runWorker } = await import('../queue/worker.js');
  await untilStopped(await runWorker(config, logger, o), logger);
}
