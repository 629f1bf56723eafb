/**
 * Monitors end to end: the built CLI against the simulated Langfuse, a real webhook receiver and a
 * real PagerDuty stand-in. An error burst fires exactly one alert and recovery resolves it, with a
 * SIGKILL of the daemon in between; `check` and `status` show the monitor; a bad monitor exits 2.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, bridgeEnv, killLiveChildren, runCli, spawnCli, statusJson, tempDir } from '../helpers/cli.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startSim, type LangfuseSimulator } from '../helpers/sim.js';
import { waitFor } from '../helpers/wait.js';

beforeAll(() => assertBuilt());
afterAll(async () => killLiveChildren());

const ROUTING_KEY = 'a'.repeat(32);

function configFile(dir: string, hook: Receiver, pd: Receiver, monitors: unknown[]): string {
  const file = path.join(dir, 'bridge.json');
  const config = {
    sinks: [
      { type: 'webhook', name: 'hook', url: hook.url, signature: 'none', events: 'monitor.*' },
      { type: 'pagerduty', name: 'oncall', routingKey: ROUTING_KEY, eventsUrl: pd.url },
    ],
    rules: [],
    monitors,
  };
  writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
  return file;
}

const ERRORS = { name: 'rag-errors', source: 'generations', where: { traceName: 'rag-*' }, metric: 'errorRate', window: '10s', every: '2s', delay: '2s', op: '>', alert: 0.3, minSamples: 5, sinks: ['hook', 'oncall'] };

function addGeneration(sim: LangfuseSimulator, level: 'DEFAULT' | 'ERROR', at = Date.now()): void {
  const t = sim.addTrace({ name: 'rag-query', timestamp: new Date(at).toISOString(), environment: 'production' });
  sim.addObservation({ traceId: t.id, type: 'GENERATION', name: 'llm', model: 'gpt-4o', level, startTime: new Date(at).toISOString(), endTime: new Date(at + 800).toISOString(), environment: 'production' });
}

describe('monitors', () => {
  it('an error burst fires one alert; after a SIGKILL, recovery resolves it once; PagerDuty sees trigger then resolve with one dedup_key', async () => {
    const [sim, hook, pd] = await Promise.all([startSim({ generation: 'v4' }), startReceiver(), startReceiver()]);
    const tmp = tempDir();
    let trickling = true;
    try {
      const env = bridgeEnv({
        langfuseUrl: sim.url,
        database: path.join(tmp.dir, 'b.db'),
        extra: { BRIDGE_POLL_INTERVAL_SECONDS: '1', BRIDGE_LOOKBACK_SECONDS: '30', BRIDGE_START_FROM: new Date(Date.now() - 20_000).toISOString() },
      });
      const args = ['run', '--config', configFile(tmp.dir, hook, pd, [ERRORS])];
      // Healthy traffic all along: 4 generations a second.
      const trickle = (async () => {
        while (trickling) {
          addGeneration(sim, 'DEFAULT');
          await new Promise((r) => setTimeout(r, 250));
        }
      })();
      const monitorEvents = (): Array<{ id: string; event: string; data: Record<string, unknown> }> =>
        hook.requests.map((r) => JSON.parse(r.body) as { id: string; event: string; data: Record<string, unknown> }).filter((e) => e.event.startsWith('monitor.'));
      const pages = (): Array<{ event_action: string; dedup_key: string; payload?: { severity: string } }> => pd.requests.map((r) => JSON.parse(r.body) as { event_action: string; dedup_key: string });

      let daemon = spawnCli(args, env);
      // A first healthy evaluation, then the burst.
      await waitFor(async () => (await statusJson(env).catch(() => null) as { monitors?: Array<{ lastEvaluation: string | null }> } | null)?.monitors?.[0]?.lastEvaluation, 20_000, 'a first evaluation');
      const burstAt = Date.now();
      for (let i = 0; i < 40; i++) addGeneration(sim, 'ERROR', burstAt + i * 10);
      await waitFor(() => pages().length >= 1, 20_000, 'the PagerDuty trigger');
      // Let the delivery be marked delivered, then kill the daemon between the alert and the resolve.
      await waitFor(() => monitorEvents().length >= 1, 10_000, 'the webhook alert');
      await new Promise((r) => setTimeout(r, 500));
      daemon.kill('SIGKILL');
      await daemon.wait(10_000);
      expect(pages().filter((p) => p.event_action === 'resolve')).toEqual([]);

      daemon = spawnCli(args, env);
      await waitFor(() => pages().some((p) => p.event_action === 'resolve'), 30_000, 'the PagerDuty resolve');
      await waitFor(() => monitorEvents().some((e) => e.event === 'monitor.resolved'), 10_000, 'the webhook resolve');
      // A few more windows: nothing else.
      await new Promise((r) => setTimeout(r, 3000));
      daemon.kill('SIGTERM');
      await daemon.wait(15_000);

      expect(pages().map((p) => [p.event_action, p.payload?.severity ?? null]), daemon.describe()).toEqual([
        ['trigger', 'critical'],
        ['resolve', null],
      ]);
      expect(new Set(pages().map((p) => p.dedup_key))).toEqual(new Set([`langfuse-bridge:demo-project:monitor:rag-errors`]));
      const events = monitorEvents();
      expect(events.map((e) => e.event)).toEqual(['monitor.alert', 'monitor.resolved']);
      expect(events[0]!.data).toMatchObject({ projectId: 'demo-project', monitor: 'rag-errors', severity: 'alert', previousSeverity: 'ok', threshold: 0.3, op: '>', metric: 'errorRate', window: '10s' });
      expect(events[1]!.data).toMatchObject({ severity: 'ok', previousSeverity: 'alert' });
      expect(Number(events[0]!.data.samples)).toBeGreaterThanOrEqual(ERRORS.minSamples);

      const st = (await statusJson(env)) as unknown as { monitors: Array<{ monitor: string; severity: string; lastEvaluation: string | null }> };
      expect(st.monitors).toMatchObject([{ monitor: 'rag-errors', severity: 'ok' }]);
      const check = await runCli(['check', '--config', args[2]!], env, 30_000);
      expect(check.stdout).toMatch(/✔ monitor rag-errors: error rate [\d.]+ % \(> 30 % alerts\) over 10s to \S+, \d+ item\(s\): ok/);
    } finally {
      trickling = false;
      await Promise.allSettled([sim.stop(), hook.stop(), pd.stop()]);
      tmp.cleanup();
    }
  }, 90_000);

  it('backfill records what monitors read but evaluates nothing; check then evaluates a full window from it', async () => {
    const [sim, hook, pd] = await Promise.all([startSim({ generation: 'v4' }), startReceiver(), startReceiver()]);
    const tmp = tempDir();
    try {
      const env = bridgeEnv({ langfuseUrl: sim.url, database: path.join(tmp.dir, 'b.db') });
      // 50 minutes ago: a burst of errors among healthy generations; the backfill reads the whole hour
      // the window spans, so the window is complete.
      const from = Date.now() - 50 * 60_000;
      for (let i = 0; i < 60; i++) addGeneration(sim, i % 2 ? 'ERROR' : 'DEFAULT', from + i * 1000);
      const hourly = { ...ERRORS, window: '1h', every: '1m', delay: '0s', minSamples: 1 };
      const file = configFile(tmp.dir, hook, pd, [hourly]);
      const p = await runCli(['backfill', '--from', new Date(Date.now() - 65 * 60_000).toISOString(), '--alerts', '--config', file], env, 60_000);
      expect(p.exit?.code, p.describe()).toBe(0);
      expect(pd.requests).toEqual([]);
      expect(hook.requests).toEqual([]);
      const status = await runCli(['status', '--json', '--config', file], env, 20_000);
      expect((JSON.parse(status.stdout) as { monitors: unknown[] }).monitors).toMatchObject([{ monitor: 'rag-errors', lastEvaluation: null }]);
      const check = await runCli(['check', '--config', file], env, 30_000);
      expect(check.stdout).toMatch(/✔ monitor rag-errors: error rate 50 % \(> 30 % alerts\) over 1h to \S+, 60 item\(s\): alert/);
    } finally {
      await Promise.allSettled([sim.stop(), hook.stop(), pd.stop()]);
      tmp.cleanup();
    }
  }, 90_000);

  it('a bad monitor stops every command with exit 2 and one line naming the monitor and the field', async () => {
    const tmp = tempDir();
    try {
      const file = path.join(tmp.dir, 'bad.json');
      writeFileSync(file, JSON.stringify({ monitors: [{ ...ERRORS, sinks: ['stdout'], window: 'fifteen minutes' }] }), { mode: 0o600 });
      const env = bridgeEnv({ langfuseUrl: 'http://127.0.0.1:9', database: path.join(tmp.dir, 'b.db') });
      for (const cmd of ['run', 'check']) {
        const p = await runCli([cmd, '--config', file], env, 20_000);
        expect(p.exit?.code, p.describe()).toBe(2);
        const lines = p.stderr.trim().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/monitors\[0\] \("rag-errors"\)\.window must be a duration such as "30s", "15m", "1h", "1d", got "fifteen minutes"/);
      }
    } finally {
      tmp.cleanup();
    }
  });
});
