/**
 * `test-event`: without --sink it reaches the webhook, stdout and handler sinks only — no Slack post,
 * no PagerDuty page — and says which sinks it left out; an alert sink gets it when named. Results go
 * to stdout, one line per sink, like `check`; a failed test event is not offered to `replay`.
 */
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, bridgeEnv, killLiveChildren, runCli, statusJson, tempDir, webhookSecret } from '../helpers/cli.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';

const ROUTING_KEY = 'R0UTINGKEY0000000000000000000000';

let hook: Receiver;
let slack: Receiver;
let pd: Receiver;
const tmp = tempDir('lfb-testevent-');

beforeAll(async () => {
  assertBuilt();
  [hook, slack, pd] = await Promise.all([startReceiver(), startReceiver(), startReceiver()]);
});
afterEach(async () => killLiveChildren());
afterAll(async () => {
  await Promise.allSettled([hook.stop(), slack.stop(), pd.stop()]);
  tmp.cleanup();
});

function env(name: string): Record<string, string> {
  return bridgeEnv({
    langfuseUrl: 'http://127.0.0.1:9',
    database: path.join(tmp.dir, `${name}.db`),
    webhookUrl: hook.url,
    secret: webhookSecret(),
    extra: { SLACK_WEBHOOK_URL: slack.url, PAGERDUTY_ROUTING_KEY: ROUTING_KEY, PAGERDUTY_EVENTS_URL: pd.url },
  });
}

describe('test-event', () => {
  it('without --sink reaches the webhook only, pages nobody, and prints its results on stdout', async () => {
    const before = { hook: hook.requests.length, slack: slack.requests.length, pd: pd.requests.length };
    const p = await runCli(['test-event'], env('default'), 30_000);
    expect(p.exit?.code, p.describe()).toBe(0);
    expect(hook.requests.length - before.hook).toBe(1);
    expect(slack.requests.length - before.slack).toBe(0);
    expect(pd.requests.length - before.pd).toBe(0);
    const lines = p.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^✔ webhook: delivered evt_/);
    expect(lines.slice(1)).toEqual([
      '- slack: not sent (slack alerts real people; send it one with --sink slack)',
      '- pagerduty: not sent (pagerduty alerts real people; send it one with --sink pagerduty)',
    ]);
    expect(p.stderr).not.toMatch(/✔|✘/);
  });

  it('with --sink pagerduty triggers and resolves an incident, and sends nothing else', async () => {
    const before = { hook: hook.requests.length, slack: slack.requests.length, pd: pd.requests.length };
    const p = await runCli(['test-event', '--sink', 'pagerduty'], env('pd'), 30_000);
    expect(p.exit?.code, p.describe()).toBe(0);
    expect(p.stdout.trim()).toMatch(/^✔ pagerduty: delivered evt_\S+$/);
    const got = pd.requests.slice(before.pd).map((r) => JSON.parse(r.body) as { event_action: string; routing_key: string });
    expect(got.map((g) => g.event_action)).toEqual(['trigger', 'resolve']);
    expect(hook.requests.length - before.hook).toBe(0);
    expect(slack.requests.length - before.slack).toBe(0);
  });

  it('a failed test event exits 1, says why on stdout and leaves nothing for replay', async () => {
    hook.setMode({ status: 500 });
    try {
      const e = env('failing');
      const p = await runCli(['test-event'], e, 30_000);
      expect(p.exit?.code, p.describe()).toBe(1);
      expect(p.stdout).toMatch(/^✘ webhook: .*500/m);
      const logged = p.logs().filter((l) => l.sink === 'webhook' && l.level === 50);
      expect(logged, p.stderr).toHaveLength(1);
      expect(logged[0]!.msg).toBe('not delivered');
      expect(p.stderr).not.toMatch(/replay/);
      const st = await statusJson(e);
      expect(st.recentDead).toEqual([]);
    } finally {
      hook.setMode(null);
    }
  });
});
