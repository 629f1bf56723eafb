// Diagnostic (not part of `npm run bench`): one outbox → Dispatcher → webhook sink run with per-Store-method
// timing. Run with `node --cpu-prof --cpu-prof-dir=/tmp/p bench/diagnostics/deliver.mjs` for a profile.
import { join } from 'node:path';
import { instrumentStore } from '../lib/instrument-store.mjs';
import { syntheticEvents } from '../lib/events.mjs';
import { DIST, forkHelper, int, removeDir, silentLogger, tempDir } from '../lib/index.mjs';

const { Store } = await import(join(DIST, 'store/index.js'));
const { Dispatcher } = await import(join(DIST, 'delivery/index.js'));
const { createWebhookSink } = await import(join(DIST, 'sinks/webhook.js'));
const n = Number(process.env.DIAG_EVENTS ?? 20_000);
const receiver = forkHelper('receiver.mjs', {});
const { url } = await receiver.ready;
const dir = tempDir('diag-deliver');
try {
  const events = syntheticEvents(n);
  const store = new Store(join(dir, 'b.db'));
  for (let i = 0; i < n; i += 1000) {
    const batch = events.slice(i, i + 1000).map((e) => ({ id: e.id, type: e.type, ts: e.ts, body: e.body, sinks: ['webhook'] }));
    store.write(() => store.enqueue(batch, { origin: 'bench' }));
  }
  const inst = instrumentStore(Store);
  const secret = `whsec_${Buffer.from('langfuse-bridge-bench-secret-32b').toString('base64')}`;
  const sink = createWebhookSink({ type: 'webhook', name: 'webhook', url, secret, signature: 'standard', events: ['*'], timeoutSeconds: 10, concurrency: 32 }, { userAgent: 'x' });
  const dispatcher = new Dispatcher(store, [sink], { retry: { maxAttempts: 10, baseSeconds: 5 }, logger: await silentLogger(), origin: 'bench' });
  const t = performance.now();
  dispatcher.start();
  await dispatcher.drain(); // as runBackfill does (polls every 100 ms)
  const ms = performance.now() - t;
  await dispatcher.stop(1000);
  await sink.close();
  store.close();
  console.log(`${int(n)} deliveries in ${(ms / 1000).toFixed(2)} s (${int(n / (ms / 1000))}/s)\n${inst.report()}`);
} finally {
  await receiver.stop();
  removeDir(dir);
}
