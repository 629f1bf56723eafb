import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '../../src/commands/shared.js';
import { loadConfig, type BridgeConfig } from '../../src/config/index.js';
import { LangfuseSimulator, type ApiGeneration } from '../../demo/simulator.js';
import type { LangfuseClient } from '../../src/langfuse/client.js';
import { silentLogger } from '../../src/ops/logger.js';
import { Store } from '../../src/store/index.js';

export const HOUR = 3_600_000;
export const iso = (ms: number): string => new Date(ms).toISOString();
export const log = silentLogger();

/** What an in-process backfill test needs: a simulator (v4 unless asked), a fresh store, settings and a client. */
export interface BackfillWorld {
  sim: LangfuseSimulator;
  store: Store;
  config: BridgeConfig;
  client: LangfuseClient;
  close(): Promise<void>;
}

export async function backfillWorld(
  seed: number,
  o: { generation?: ApiGeneration; env?: Record<string, string>; /** the client records its calls in the store's ledger, as the CLI's do */ ledger?: boolean } = {},
): Promise<BackfillWorld> {
  const sim = new LangfuseSimulator({ generation: o.generation ?? 'v4', seed });
  const url = await sim.start();
  const store = new Store(join(mkdtempSync(join(tmpdir(), 'bridge-backfill-')), 'b.db'));
  const config = loadConfig({ env: { LANGFUSE_PUBLIC_KEY: 'pk-lf-demo', LANGFUSE_SECRET_KEY: 'sk-lf-demo', LANGFUSE_BASE_URL: url, BRIDGE_MAX_REQUESTS_PER_MINUTE: '100000', ...o.env } });
  const client = createClient(config, log, { store: o.ledger ? store : undefined });
  return {
    sim,
    store,
    config,
    client,
    async close() {
      store.close();
      await client.close();
      await sim.stop();
    },
  };
}
