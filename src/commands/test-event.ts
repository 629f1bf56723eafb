/** `test-event`: one synthetic `test` event through the outbox to the sinks, like a dashboard's "Send test event". */
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/index.js';
import { Dispatcher } from '../delivery/index.js';
import { testEvent } from '../events/index.js';
import { routeTo } from '../rules/route.js';
import type { Sink } from '../sinks/types.js';
import { closeSinks, createSinks } from '../sinks/index.js';
import { onDatabase, openStore, resolveSinks } from './shared.js';

/** `test-event` as the CLI calls it: one result line per sink on stdout; 0 when every one was delivered. */
export async function testEventCommand(config: BridgeConfig, logger: Logger, o: { sink: string | null }): Promise<number> {
  const r = await onDatabase(config.database, () => sendTestEvent(config, logger, o.sink));
  process.stdout.write(`${r.results.join('\n')}\n`);
  return r.ok ? 0 : 1;
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
    targets = resolveSinks(all, sinkName, false);
  } catch (err) {
    await closeSinks(all);
    store.close();
    throw err;
  }
  const skipped = sinkName ? [] : all.filter((s) => s.alerting);
  const projectId = store.meta.projectId(config.langfuse.publicKey) ?? 'test-project';
  const ev = testEvent(projectId);
  const origin = `test:${ev.id}`;
  store.write(() => store.enqueue([{ id: ev.id, type: ev.event, ts: ev.timestamp, body: JSON.stringify(ev), ...routeTo(ev, targets, config.rules) }], { origin }));
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
  store.forgetOrigin(origin);
  await closeSinks(all);
  store.close();
  return { ok: results.every((r) => !r.startsWith('✘')), results };
}
