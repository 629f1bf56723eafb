/**
 * History pages nobody: a plain `backfill` (and `--redeliver`) sends nothing to Slack or PagerDuty;
 * `--alerts` does; `--sink` limits a pass to one sink and, naming an alert sink, sends to it;
 * `replay` requeues Slack and PagerDuty dead letters only when `--sink` names them.
 * The built CLI, with loopback receivers standing in for the webhook, Slack and PagerDuty.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, killLiveChildren } from '../helpers/cli.js';
import { withHarness, type Harness } from '../helpers/harness.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { simRows } from '../helpers/sim.js';

beforeAll(() => assertBuilt());
afterAll(async () => killLiveChildren());

const HOUR = 3_600_000;

interface World {
  h: Harness;
  slack: Receiver;
  pd: Receiver;
  range: string[];
  /** traces with an ERROR observation: PagerDuty pages once for each */
  errorTraces: number;
  env(db: string, extra?: Record<string, string>): Record<string, string>;
}

async function withAlertWorld(seed: number, fn: (w: World) => Promise<void>): Promise<void> {
  await withHarness({ generation: 'v4', seed }, async (h) => {
    const [slack, pd] = await Promise.all([startReceiver(), startReceiver()]);
    try {
      const toMs = Date.now() - 60_000;
      const fromMs = toMs - HOUR;
      h.sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 6, observationsPerTrace: 3, scoresPerTrace: 1, errorRate: 0.5, warningRate: 0 });
      const errorTraces = new Set(simRows(h.sim).observations.filter((o) => o.level === 'ERROR').map((o) => o.traceId)).size;
      expect(errorTraces).toBeGreaterThan(0);
      await fn({
        h,
        slack,
        pd,
        errorTraces,
        range: ['--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()],
        env: (db, extra = {}) => h.env({ SLACK_WEBHOOK_URL: slack.url, PAGERDUTY_ROUTING_KEY: 'R0UTINGKEY0000000000000000000000', PAGERDUTY_EVENTS_URL: pd.url, ...extra }, h.db(db)),
      });
    } finally {
      await Promise.all([slack.stop(), pd.stop()]);
    }
  });
}

describe.concurrent('history and alert sinks', () => {
  it('a plain backfill and --redeliver page nobody; --redeliver --sink slack posts to Slack only; --alerts pages both; --sink pagerduty pages PagerDuty only', () =>
    withAlertWorld(21, async ({ h, slack, pd, range, errorTraces, env }) => {
      const counts = (): { webhook: number; slack: number; pd: number } => ({ webhook: h.rx.requests.length, slack: slack.requests.length, pd: pd.requests.length });

      // A plain backfill: everything to the webhook, nothing to Slack or PagerDuty.
      const plain = await h.run(['backfill', ...range], env('a'), 30_000);
      expect(plain.exit?.code, plain.describe()).toBe(0);
      const events = h.rx.requests.length;
      expect(events).toBeGreaterThan(10);
      expect(counts()).toEqual({ webhook: events, slack: 0, pd: 0 });

      // --redeliver resends to the webhook, still to nobody's pager.
      const again = await h.run(['backfill', ...range, '--redeliver'], env('a'), 30_000);
      expect(again.exit?.code, again.describe()).toBe(0);
      expect(counts()).toEqual({ webhook: 2 * events, slack: 0, pd: 0 });

      // --redeliver --sink slack: that sink only, and it is asked for, so it posts.
      const toSlack = await h.run(['backfill', ...range, '--redeliver', '--sink', 'slack'], env('a'), 60_000);
      expect(toSlack.exit?.code, toSlack.describe()).toBe(0);
      const slackPosts = slack.requests.length;
      expect(slackPosts, 'Slack posts for the range').toBeGreaterThanOrEqual(errorTraces);
      expect(counts()).toEqual({ webhook: 2 * events, slack: slackPosts, pd: 0 });

      // --alerts on a fresh database: every sink, PagerDuty paged once per ERROR trace.
      const alerts = await h.run(['backfill', ...range, '--alerts'], env('b'), 60_000);
      expect(alerts.exit?.code, alerts.describe()).toBe(0);
      expect(counts()).toEqual({ webhook: 3 * events, slack: 2 * slackPosts, pd: errorTraces });
      expect(pd.requests.every((r) => (JSON.parse(r.body) as { event_action: string }).event_action === 'trigger')).toBe(true);

      // --sink pagerduty on another fresh database: PagerDuty only.
      const onlyPd = await h.run(['backfill', ...range, '--sink', 'pagerduty'], env('c'), 30_000);
      expect(onlyPd.exit?.code, onlyPd.describe()).toBe(0);
      expect(counts()).toEqual({ webhook: 3 * events, slack: 2 * slackPosts, pd: 2 * errorTraces });
    }));

  it('replay requeues Slack and PagerDuty dead letters only when --sink names them', () =>
    withAlertWorld(22, async ({ h, slack, pd, range, errorTraces, env }) => {
      // Every sink refuses for good: the webhook 410, Slack 404, PagerDuty 400.
      h.rx.setMode({ status: 410 });
      slack.setMode({ status: 404, body: 'no_service' });
      pd.setMode({ status: 400, body: '{"status":"invalid event"}' });
      const e = env('d');
      const bf = await h.run(['backfill', ...range, '--alerts'], e, 60_000);
      expect(bf.exit?.code, bf.describe()).toBe(3);
      const dead = async (): Promise<Record<string, { dead: number; queued: number }>> =>
        Object.fromEntries((await h.status(e)).sinks.map((s) => [s.name, { dead: s.dead, queued: s.queued }]));
      const before = await dead();
      const webhookDead = before.webhook!.dead;
      const slackDead = before.slack!.dead;
      expect(webhookDead).toBeGreaterThan(10);
      expect(slackDead).toBeGreaterThanOrEqual(errorTraces);
      expect(before.pagerduty).toEqual({ dead: errorTraces, queued: 0 });

      // No --sink: the webhook's dead letters only.
      const all = await h.run(['replay'], e, 20_000);
      expect(all.exit?.code, all.describe()).toBe(0);
      expect(all.stdout).toMatch(new RegExp(`^${webhookDead} dead-lettered deliveries queued again`));
      expect(await dead()).toEqual({ webhook: { dead: 0, queued: webhookDead }, slack: { dead: slackDead, queued: 0 }, pagerduty: { dead: errorTraces, queued: 0 } });

      // --sink names an alert sink: its dead letters, and only its.
      const s = await h.run(['replay', '--sink', 'slack'], e, 20_000);
      expect(s.exit?.code, s.describe()).toBe(0);
      expect(s.stdout).toMatch(new RegExp(`^${slackDead} dead-lettered deliveries queued again`));
      expect(await dead()).toEqual({ webhook: { dead: 0, queued: webhookDead }, slack: { dead: 0, queued: slackDead }, pagerduty: { dead: errorTraces, queued: 0 } });
      const p = await h.run(['replay', '--sink', 'pagerduty'], e, 20_000);
      expect(p.exit?.code, p.describe()).toBe(0);
      expect((await dead()).pagerduty).toEqual({ dead: 0, queued: errorTraces });
    }));
});
