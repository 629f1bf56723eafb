/**
 * What Slack and PagerDuty send for an event is decided once, when it is routed into the outbox, and
 * stored with the row: a process whose rules have changed since still sends what was decided, in
 * process and through Redis, and a dead letter replayed after the change too, without asking its own
 * rules. A row stored before decisions were kept with it is decided at delivery, as it was then.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig, type BridgeConfig } from '../src/config/index.js';
import { Dispatcher } from '../src/delivery/index.js';
import type { DeliveryBackend } from '../src/delivery/backend.js';
import type { AnyBridgeEvent } from '../src/events/types.js';
import { silentLogger } from '../src/ops/logger.js';
import { QueueDelivery } from '../src/queue/index.js';
import { deletePrefix } from '../src/queue/redis.js';
import { routeEvent } from '../src/rules/route.js';
import { closeSinks, createSinks } from '../src/sinks/index.js';
import type { Sink } from '../src/sinks/types.js';
import { errorTrace } from './helpers/events.js';
import { Store } from '../src/store/index.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';
import { REDIS_URL, skipWithout } from './helpers/requirements.js';
import { uniquePrefix } from './queue/helpers.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const ROUTING_KEY = 'R0UTINGKEY0000000000000000000000';

/** When the row was written: checkout errors page as critical. */
const BEFORE = [{ name: 'checkout-errors', when: { level: 'ERROR', traceName: 'checkout' }, sinks: ['slack', 'pd'], severity: 'critical' }];
/** The rules of the process that delivers: they would send this event nowhere. */
const AFTER = [{ name: 'billing-errors', when: { level: 'ERROR', traceName: 'billing' }, sinks: ['slack', 'pd'] }];

const event: AnyBridgeEvent = errorTrace({ projectId: 'proj-1', traceId: 't-1' }, 'trace.updated', 'evt_checkout_1');

interface World {
  dir: string;
  store: Store;
  slack: Receiver;
  pd: Receiver;
}

async function world(): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-decision-'));
  const store = new Store(join(dir, 'b.db'));
  const slack = await startReceiver();
  const pd = await startReceiver();
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => store.close(), () => slack.stop(), () => pd.stop());
  return { dir, store, slack, pd };
}

/** A config with these rules, and how often delivery asked them about an event. */
function configWith(w: World, rules: unknown[], env: Record<string, string> = {}): { config: BridgeConfig; asked: () => number } {
  const file = join(w.dir, `config-${Math.random().toString(36).slice(2)}.json`);
  const sinks = [
    { type: 'slack', name: 'slack', url: w.slack.url },
    { type: 'pagerduty', name: 'pd', routingKey: ROUTING_KEY, eventsUrl: w.pd.url },
  ];
  writeFileSync(file, JSON.stringify({ sinks, rules }));
  const loaded = loadConfig({ env: { LANGFUSE_PUBLIC_KEY: 'pk-lf-x', LANGFUSE_SECRET_KEY: 'sk-lf-x', BRIDGE_DATABASE: join(w.dir, 'b.db'), ...env }, configFile: file });
  let n = 0;
  const real = loaded.rules;
  const rulesSpy: BridgeConfig['rules'] = {
    ...real,
    match: (e) => (n++, real.match(e)),
    forSink: (e, s) => (n++, real.forSink(e, s)),
  };
  return { config: { ...loaded, rules: rulesSpy }, asked: () => n };
}

/** The config's Slack and PagerDuty sinks (without a webhook, it has a stdout sink too). */
async function sinksOf(config: BridgeConfig): Promise<Sink[]> {
  const { sinks } = await createSinks(config, silentLogger());
  cleanups.push(() => closeSinks(sinks));
  return sinks.filter((s) => s.alerting);
}

/** The event into the outbox as the poller writes it: routed by these sinks and rules. */
function enqueue(store: Store, sinks: Sink[], config: BridgeConfig): void {
  const routing = routeEvent(event, sinks, config.rules);
  expect(routing.sinks).toEqual(['slack', 'pd']);
  store.write(() => store.enqueue([{ id: event.id, type: event.event, ts: event.timestamp, body: JSON.stringify(event), ...routing }]));
}

async function deliverAll(backend: DeliveryBackend): Promise<void> {
  backend.start();
  try {
    await backend.drain(AbortSignal.timeout(20_000));
  } finally {
    await backend.stop(1_000);
  }
}

function dispatcher(store: Store, sinks: Sink[]): Dispatcher {
  return new Dispatcher(store, sinks, { retry: { maxAttempts: 1, baseSeconds: 0.01 }, logger: silentLogger(), idleMs: 20 });
}

function expectDecidedBefore(w: World): void {
  const slack = w.slack.accepted.map((r) => JSON.parse(r.body) as { text: string; blocks: unknown[] });
  expect(slack).toHaveLength(1);
  expect(JSON.stringify(slack[0]!.blocks)).toContain('rule *checkout-errors*');
  const pd = w.pd.accepted.map((r) => JSON.parse(r.body) as Record<string, any>);
  expect(pd).toHaveLength(1);
  expect(pd[0]).toMatchObject({ event_action: 'trigger', dedup_key: 'langfuse-bridge:proj-1:trace:t-1', payload: { severity: 'critical' } });
}

describe('alerts decided when routed', () => {
  it('a process whose rules changed sends what was decided, and does not ask its rules', async () => {
    const w = await world();
    const before = configWith(w, BEFORE);
    enqueue(w.store, await sinksOf(before.config), before.config);

    const after = configWith(w, AFTER);
    await deliverAll(dispatcher(w.store, await sinksOf(after.config)));
    expectDecidedBefore(w);
    expect(after.asked()).toBe(0);
    expect(w.store.counts().get('slack')).toMatchObject({ delivered: 1 });
    expect(w.store.counts().get('pd')).toMatchObject({ delivered: 1 });
  });

  it('a dead letter replayed after the rules changed sends what was decided', async () => {
    const w = await world();
    const before = configWith(w, BEFORE);
    const sinksBefore = await sinksOf(before.config);
    enqueue(w.store, sinksBefore, before.config);
    w.slack.failNext(404, 1);
    w.pd.failNext(400, 1);
    await deliverAll(dispatcher(w.store, sinksBefore));
    expect(w.store.deadLetters(null, null).map((d) => d.sink).sort()).toEqual(['pd', 'slack']);

    const after = configWith(w, AFTER);
    expect(w.store.replay('slack', null) + w.store.replay('pd', null)).toBe(2);
    const sent = { slack: w.slack.requests.length, pd: w.pd.requests.length };
    await deliverAll(dispatcher(w.store, await sinksOf(after.config)));
    expect(w.slack.requests.length - sent.slack).toBe(1);
    expect(w.pd.requests.length - sent.pd).toBe(1);
    expectDecidedBefore(w);
    expect(after.asked()).toBe(0);
  });

  it('a row stored without a decision (written by an older version) is decided at delivery', async () => {
    const w = await world();
    w.store.write(() => w.store.enqueue([{ id: event.id, type: event.event, ts: event.timestamp, body: JSON.stringify(event), sinks: ['slack', 'pd'] }]));
    const now = configWith(w, BEFORE);
    await deliverAll(dispatcher(w.store, await sinksOf(now.config)));
    expectDecidedBefore(w);
    expect(now.asked()).toBeGreaterThan(0);
  });

  describe.skipIf(skipWithout('redis'))('through Redis', () => {
    it('the job carries the decision to a worker whose rules changed', async () => {
      const w = await world();
      const prefix = uniquePrefix('decision');
      const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
      cleanups.push(async () => {
        await deletePrefix(redis, prefix);
        redis.disconnect();
      });
      const queueEnv = { BRIDGE_REDIS_URL: REDIS_URL, BRIDGE_QUEUE_PREFIX: prefix };
      const before = configWith(w, BEFORE, queueEnv);
      enqueue(w.store, await sinksOf(before.config), before.config);

      const after = configWith(w, AFTER, queueEnv);
      const sinks = await sinksOf(after.config);
      await deliverAll(new QueueDelivery(w.store, sinks, after.config, silentLogger(), { withWorker: true, reconcileMs: 200 }));
      expectDecidedBefore(w);
      expect(after.asked()).toBe(0);
      expect(w.store.counts().get('slack')).toMatchObject({ delivered: 1 });
    });
  });
});
