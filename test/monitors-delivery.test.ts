/**
 * Monitor notifications through the real dispatcher and PagerDuty sink, against a PagerDuty
 * stand-in that fails for a while: the resolve is never overtaken by the trigger still retrying.
 */
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Dispatcher } from '../src/delivery/index.js';
import type { ObservationRecord } from '../src/events/records.js';
import type { AnyBridgeEvent } from '../src/events/types.js';
import { compileMonitors, evaluateMonitor, factsOf } from '../src/monitors/index.js';
import { silentLogger } from '../src/ops/logger.js';
import { createPagerDutySink } from '../src/sinks/pagerduty.js';
import { Store } from '../src/store/index.js';
import { tempDir } from './helpers/cli.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';
import { waitFor } from './helpers/wait.js';

const P = 'proj-1';
const MIN = 60_000;
const T0 = Date.parse('2026-11-27T10:00:00.000Z');

function generation(tsMs: number, i: number): ObservationRecord {
  const at = new Date(tsMs).toISOString();
  return {
    id: `o${i}`, traceId: `t${i}`, type: 'GENERATION', name: 'llm', level: 'DEFAULT', statusMessage: null, startTime: at, endTime: at, model: 'gpt-4o',
    promptTokens: 1, completionTokens: 1, totalTokens: 2, usageDetails: null, costDetails: null, totalCost: 0, updatedAt: null, environment: 'production',
    userId: null, sessionId: null, traceName: 'rag', tags: null, isRoot: true,
  };
}

describe('monitor notifications to PagerDuty', () => {
  let dir: { dir: string; cleanup: () => void };
  let rx: Receiver;
  let store: Store;
  let dispatcher: Dispatcher | null = null;

  beforeEach(async () => {
    dir = tempDir('lfb-monitor-pd-');
    rx = await startReceiver();
    store = new Store(path.join(dir.dir, 'bridge.db'));
  });
  afterEach(async () => {
    await dispatcher?.stop(1000);
    store.close();
    await rx.stop();
    dir.cleanup();
  });

  /**
   * A count monitor paging a real PagerDuty sink (the stand-in `rx`) through a real dispatcher: its
   * first window fires (the trigger, returned); `recover()` writes the next, empty window's resolve.
   */
  function startAlert(): { trigger: AnyBridgeEvent; recover(): AnyBridgeEvent } {
    const [m] = compileMonitors([{ name: 'busy', source: 'generations', metric: 'count', window: '1m', delay: '0s', op: '>', alert: 0, sinks: ['pd'] }], {
      sinks: ['pd'],
      streams: ['traces', 'generations', 'scores'],
    });
    const sink = createPagerDutySink(
      { type: 'pagerduty', name: 'pd', routingKey: 'R'.repeat(32), eventsUrl: rx.url, events: ['*'], timeoutSeconds: 5 },
      {
        decideNow: () => {
          throw new Error('a monitor notification was decided about at delivery');
        },
        unrouted: false,
        langfuseBaseUrl: 'https://lf.example',
        userAgent: 'test',
      },
    );
    dispatcher = new Dispatcher(store, [sink], { retry: { maxAttempts: 50, baseSeconds: 0.05 }, logger: silentLogger(), idleMs: 20 });
    dispatcher.start();
    const polledTo = (ms: number): void => {
      store.putCursor({ ...store.getCursor(P, 'observations'), cursorMs: ms });
      store.write(() => store.monitors.noteFactsRead(P, 'observations', 0, ms));
    };
    const evaluate = (): AnyBridgeEvent => evaluateMonitor(store, P, m!, 'https://lf.example', Date.now(), ['pd'])!.event!;
    store.write(() => store.monitors.putFacts(P, factsOf({ observations: [generation(T0 + 1000, 1)] })));
    polledTo(T0 + MIN);
    const trigger = evaluate();
    return {
      trigger,
      recover: () => {
        polledTo(T0 + 2 * MIN);
        return evaluate();
      },
    };
  }

  it('a resolve queued while the trigger is still retrying supersedes it: the last thing PagerDuty accepts is the resolve', async () => {
    let failing = true;
    rx.setResponder(() => (failing ? { status: 500, body: 'down' } : { status: 202, body: '{"status":"success"}' }));
    const { trigger, recover } = startAlert();
    expect(trigger.event).toBe('monitor.alert');
    // The trigger fails a few times: its next attempt moves further out each time.
    await waitFor(() => (store.eventDetail(trigger.id)?.sinks[0]?.attempts.length ?? 0) >= 4, 15_000);
    const resolve = recover();
    expect(resolve.event).toBe('monitor.resolved');
    await waitFor(() => (store.eventDetail(resolve.id)?.sinks[0]?.attempts.length ?? 0) >= 1, 15_000);
    failing = false;
    await waitFor(() => store.pending() === 0, 15_000);
    await new Promise((r) => setTimeout(r, 300));

    const accepted = rx.accepted.map((r) => (JSON.parse(r.body) as { event_action: string }).event_action);
    expect(accepted.at(-1)).toBe('resolve');
    expect(accepted).toEqual(['resolve']);
    // The trigger was closed unsent, and says so.
    const superseded = store.eventDetail(trigger.id)!.sinks[0]!;
    expect(superseded.attempts.at(-1)!.error).toBe(`superseded by ${resolve.id} before it was sent: not sent`);
  }, 40_000);

  it('a trigger that fails while its resolve is written (the attempt in flight) is closed unsent, not retried after the resolve', async () => {
    // Every answer takes 400 ms: the first (the trigger's) is a failure, every later one is accepted.
    let requests = 0;
    rx.setDelay(400);
    rx.setResponder(() => (requests++ === 0 ? { status: 500, body: 'down' } : { status: 202, body: '{"status":"success"}' }));
    const { trigger, recover } = startAlert();
    await waitFor(() => requests >= 1, 10_000);
    // While the trigger's attempt is in flight, the monitor recovers and its resolve is written.
    const resolve = recover();
    expect(resolve.event).toBe('monitor.resolved');
    await waitFor(() => store.pending() === 0, 15_000);
    await new Promise((r) => setTimeout(r, 300));

    const accepted = rx.accepted.map((r) => (JSON.parse(r.body) as { event_action: string }).event_action);
    expect(accepted).toEqual(['resolve']);
    const closed = store.eventDetail(trigger.id)!.sinks[0]!;
    expect(closed.attempts.at(-1)!.error).toBe(`superseded by ${resolve.id} before it was sent: not sent`);
  }, 40_000);
});
