/**
 * Proxies, in the built CLI: with HTTPS_PROXY every outbound call — Langfuse, the webhook, Slack and
 * PagerDuty, all https with a CA the process trusts through NODE_EXTRA_CA_CERTS — goes through a
 * CONNECT tunnel; NO_PROXY naming one of them sends that one direct and the others still through
 * the proxy.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, bridgeEnv, killLiveChildren, runCli, tempDir } from '../helpers/cli.js';
import { connectProxy, makeCa, tlsFront, type ConnectProxy, type Listening, type TestCa } from '../helpers/proxy.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { simRows, startSim, type LangfuseSimulator } from '../helpers/sim.js';

const HOUR = 3_600_000;
const TARGETS = ['langfuse', 'webhook', 'slack', 'pagerduty'] as const;
type Target = (typeof TARGETS)[number];

let tmp: { dir: string; cleanup: () => void };
let ca: TestCa;
let sim: LangfuseSimulator;
let proxy: ConnectProxy;
const rx = {} as Record<Exclude<Target, 'langfuse'>, Receiver>;
const front = {} as Record<Target, Listening>;
let range: string[];
let errorTraces = 0;
let runs = 0;

beforeAll(async () => {
  assertBuilt();
  tmp = tempDir('lfb-proxy-');
  ca = makeCa(tmp.dir);
  sim = await startSim({ generation: 'v4', seed: 51 });
  const toMs = Date.now() - 60_000;
  const fromMs = toMs - HOUR;
  sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 2, observationsPerTrace: 3, scoresPerTrace: 1, errorRate: 1 });
  errorTraces = new Set(simRows(sim).observations.filter((o) => o.level === 'ERROR').map((o) => o.traceId)).size;
  range = ['--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()];
  [rx.webhook, rx.slack, rx.pagerduty] = await Promise.all([startReceiver(), startReceiver(), startReceiver()]);
  front.langfuse = await tlsFront(ca, sim.url);
  for (const t of ['webhook', 'slack', 'pagerduty'] as const) front[t] = await tlsFront(ca, rx[t].url);
  proxy = await connectProxy();
});

afterAll(async () => {
  await killLiveChildren();
  await Promise.allSettled([proxy?.close(), ...Object.values(front).map((f) => f.close()), ...Object.values(rx).map((r) => r.stop()), sim?.stop()]);
  tmp?.cleanup();
});

function env(extra: Record<string, string>): Record<string, string> {
  const https = (t: Target, p = ''): string => `https://${front[t].hostPort}${p}`;
  return bridgeEnv({
    langfuseUrl: https('langfuse'),
    database: path.join(tmp.dir, `run${++runs}.db`),
    webhookUrl: https('webhook', '/hooks/langfuse'),
    extra: {
      SLACK_WEBHOOK_URL: https('slack', '/services/T000/B000/XXXX'),
      PAGERDUTY_ROUTING_KEY: 'R0UTINGKEY0000000000000000000000',
      PAGERDUTY_EVENTS_URL: https('pagerduty', '/v2/enqueue'),
      NODE_EXTRA_CA_CERTS: ca.caFile,
      HTTPS_PROXY: proxy.url,
      ...extra,
    },
  });
}

/** One backfill with alerts; returns the hosts tunnelled and what each target received. */
async function pass(extra: Record<string, string>): Promise<{ tunnelled: Set<string>; got: Record<Target, number> }> {
  const tunnelsBefore = proxy.tunnels.length;
  const before = { langfuse: sim.requests.length, webhook: rx.webhook.requests.length, slack: rx.slack.requests.length, pagerduty: rx.pagerduty.requests.length };
  const p = await runCli(['backfill', ...range, '--alerts'], env(extra), 60_000);
  expect(p.exit?.code, p.describe()).toBe(0);
  expect(proxy.forwarded, 'plain-HTTP proxy requests').toEqual([]);
  return {
    tunnelled: new Set(proxy.tunnels.slice(tunnelsBefore)),
    got: {
      langfuse: sim.requests.length - before.langfuse,
      webhook: rx.webhook.requests.length - before.webhook,
      slack: rx.slack.requests.length - before.slack,
      pagerduty: rx.pagerduty.requests.length - before.pagerduty,
    },
  };
}

// One proxy whose log the passes read in turn: they run one after the other.
describe('outbound calls behind a proxy', () => {
  it('HTTPS_PROXY: Langfuse, the webhook, Slack and PagerDuty over https, each through a CONNECT tunnel', async () => {
    const { tunnelled, got } = await pass({});
    expect(got.langfuse).toBeGreaterThan(0);
    expect(got.webhook).toBeGreaterThan(errorTraces * 2);
    expect(got.slack).toBeGreaterThanOrEqual(errorTraces);
    expect(got.pagerduty).toBe(errorTraces);
    expect([...tunnelled].sort()).toEqual(TARGETS.map((t) => front[t].hostPort).sort());
  });

  it.each(TARGETS)('NO_PROXY naming the %s host: that one direct, the others through the tunnel', async (direct) => {
    const { tunnelled, got } = await pass({ NO_PROXY: `example.internal,${front[direct].hostPort}` });
    for (const t of TARGETS) expect(got[t], `requests that reached ${t}`).toBeGreaterThan(0);
    expect([...tunnelled].sort()).toEqual(TARGETS.filter((t) => t !== direct).map((t) => front[t].hostPort).sort());
  });
});
