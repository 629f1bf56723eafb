/**
 * The command line itself: bad settings and flags exit 2 with one line naming them, `check`,
 * `--help`, `status` on an empty database, `test-event`.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, bridgeEnv, killLiveChildren, runCli, tempDir, type CliProcess } from '../helpers/cli.js';
import { withHarness } from '../helpers/harness.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { parseEvent, signatureProblem, startSim, type LangfuseSimulator } from '../helpers/sim.js';

const tmp = tempDir();
let sim: LangfuseSimulator;
let legacy: LangfuseSimulator;
let rx: Receiver;
// rx only receives from the sink settings; nothing in this file's shared world delivers to it.

beforeAll(async () => {
  assertBuilt();
  [sim, legacy, rx] = await Promise.all([startSim({ generation: 'v4' }), startSim({ generation: 'v2' }), startReceiver()]);
});
afterAll(async () => {
  await killLiveChildren();
  await Promise.all([sim?.stop(), legacy?.stop(), rx?.stop()]);
  tmp.cleanup();
});

let n = 0;
function env(extra: Record<string, string | undefined> = {}, langfuseUrl = sim.url): Record<string, string> {
  return bridgeEnv({ langfuseUrl, database: path.join(tmp.dir, `c${++n}.db`), webhookUrl: rx.url, extra });
}

function expectOneLineError(p: CliProcess, names: string | RegExp): void {
  expect(p.exit?.code, p.describe()).toBe(2);
  const lines = p.stderr.trimEnd().split('\n');
  expect(lines, 'stderr lines').toHaveLength(1);
  if (typeof names === 'string') expect(lines[0]).toContain(names);
  else expect(lines[0]).toMatch(names);
  expect(p.stderr).not.toMatch(/^\s+at /m);
  expect(p.stdout).toBe('');
}

describe.concurrent('bad settings and flags exit 2 with one line that names them', () => {
  const cases: Array<[string, () => { args: string[]; env: Record<string, string> }, string | RegExp]> = [
    ['missing LANGFUSE_PUBLIC_KEY', () => ({ args: ['run'], env: env({ LANGFUSE_PUBLIC_KEY: undefined }) }), 'LANGFUSE_PUBLIC_KEY'],
    ['LANGFUSE_BASE_URL=notaurl', () => ({ args: ['check'], env: env({}, 'notaurl') }), 'LANGFUSE_BASE_URL'],
    ['backfill --from yesterday', () => ({ args: ['backfill', '--from', 'yesterday'], env: env() }), /--from.*yesterday/],
    ['BRIDGE_STREAMS=traces,foo', () => ({ args: ['run'], env: env({ BRIDGE_STREAMS: 'traces,foo' }) }), /BRIDGE_STREAMS.*foo/],
    [
      'a malformed --config file',
      () => {
        const file = path.join(tmp.dir, 'broken.json');
        writeFileSync(file, '{"pollIntervalSeconds": 5,');
        return { args: ['--config', file, 'run'], env: env() };
      },
      /--config .*broken\.json/,
    ],
    [
      'a --config file with an unknown key',
      () => {
        const file = path.join(tmp.dir, 'unknown-key.json');
        writeFileSync(file, JSON.stringify({ pollIntervalSecs: 5 }));
        return { args: ['--config', file, 'run'], env: env() };
      },
      /pollIntervalSecs/,
    ],
    ['BRIDGE_POLL_INTERVAL_SECONDS=abc', () => ({ args: ['run'], env: env({ BRIDGE_POLL_INTERVAL_SECONDS: 'abc' }) }), /BRIDGE_POLL_INTERVAL_SECONDS.*abc/],
    ['a standard-scheme secret without whsec_', () => ({ args: ['run'], env: env({ BRIDGE_WEBHOOK_SECRET: 'plain-secret-string' }) }), /BRIDGE_WEBHOOK_SECRET.*whsec_/],
    ['BRIDGE_WEBHOOK_SIGNATURE=rsa', () => ({ args: ['test-event'], env: env({ BRIDGE_WEBHOOK_SIGNATURE: 'rsa' }) }), /BRIDGE_WEBHOOK_SIGNATURE.*rsa/],
    ['backfill --from after --to', () => ({ args: ['backfill', '--from', '2026-11-02T00:00:00Z', '--to', '2026-11-01T00:00:00Z'], env: env() }), /--from/],
  ];
  it.each(cases)('%s', async (_name, make, names) => {
    const { args, env: e } = make();
    const p = await runCli(args, e, 20_000);
    expectOneLineError(p, names);
  });

  // One run of `status --bogus`, looked at by the two tests below.
  let bogus: Promise<CliProcess> | null = null;
  const unknownFlag = (): Promise<CliProcess> => (bogus ??= runCli(['status', '--bogus'], env(), 20_000));

  // The contract asks for one line; commander's usage error is followed by a second line,
  // "(run with --help for usage)", from `.showHelpAfterError(...)` in src/cli.ts.
  it('an unknown flag (one line only)', async () => {
    expectOneLineError(await unknownFlag(), '--bogus');
  });

  it('an unknown flag exits 2 naming the flag, without a stack trace', async () => {
    const p = await unknownFlag();
    expect(p.exit?.code, p.describe()).toBe(2);
    expect(p.stderr.split('\n')[0]).toContain('--bogus');
    expect(p.stderr).not.toMatch(/^\s+at /m);
  });
});

describe.concurrent('check', () => {
  it('exits 1 and says the credentials were refused when the keys are wrong', async () => {
    const p = await runCli(['check'], env({ LANGFUSE_SECRET_KEY: 'sk-lf-wrong' }), 30_000);
    expect(p.exit?.code, p.describe()).toBe(1);
    expect(p.stdout).toMatch(/refused the credentials/);
    expect(p.stdout).not.toContain('sk-lf-wrong');
    expect(p.stderr).not.toContain('sk-lf-wrong');
  });

  it('exits 0 and names the v4 API generation', async () => {
    const p = await runCli(['check'], env(), 30_000);
    expect(p.exit?.code, p.describe()).toBe(0);
    expect(p.stdout).toMatch(/credentials accepted, project demo-project/);
    expect(p.stdout).toMatch(/API generation: v4/);
    expect(p.stdout).toMatch(/sink webhook \(webhook\): settings valid/);
  });

  it('exits 0 and names the legacy API generation for a v2 server', async () => {
    const p = await runCli(['check'], env({}, legacy.url), 30_000);
    expect(p.exit?.code, p.describe()).toBe(0);
    expect(p.stdout).toMatch(/API generation: legacy/);
    expect(p.stdout).not.toMatch(/API generation: v4/);
  });
});

describe.concurrent('help, status, test-event', () => {
  it('--help exits 0 and shows examples', async () => {
    const p = await runCli(['--help'], env(), 20_000);
    expect(p.exit?.code, p.describe()).toBe(0);
    expect(p.stdout).toMatch(/Examples:/);
    expect(p.stdout).toMatch(/langfuse-bridge backfill --from/);
    for (const cmd of ['run', 'backfill', 'status', 'replay', 'check', 'test-event']) expect(p.stdout).toContain(cmd);
  });

  it('status works on an empty database, as text and as JSON', async () => {
    const e = env();
    // `status` reads only: the database must exist (`replay` creates it, finding nothing to do).
    expect((await runCli(['replay'], e, 20_000)).exit?.code).toBe(0);
    const text = await runCli(['status'], e, 20_000);
    expect(text.exit?.code, text.describe()).toBe(0);
    expect(text.stdout).toMatch(/no poll yet/);
    expect(text.stdout).toMatch(/^webhook\s+ok\s+0\s+0\s+0\s+0\s+0$/m);
    const json = await runCli(['status', '--json'], e, 20_000);
    expect(json.exit?.code, json.describe()).toBe(0);
    const st = JSON.parse(json.stdout) as { streams: unknown[]; sinks: unknown[]; recentDead: unknown[]; oldestPendingAt: unknown };
    expect(st.streams).toEqual([]);
    expect(st.sinks).toEqual([
      { name: 'webhook', state: 'ok', pausedUntil: null, queued: 0, delivering: 0, retrying: 0, delivered: 0, dead: 0, lastSuccessAt: null, lastErrorAt: null, lastError: null, nextRetryAt: null, deadByReason: [] },
    ]);
    expect(st.recentDead).toEqual([]);
    expect(st.oldestPendingAt).toBeNull();
  });

  it('test-event delivers one signed `test` event to the receiver', () =>
    withHarness({ generation: 'v4' }, async (h) => {
      const p = await h.run(['test-event'], h.env(), 30_000);
      expect(p.exit?.code, p.describe()).toBe(0);
      expect(h.rx.requests).toHaveLength(1);
      const r = h.rx.requests[0]!;
      const ev = parseEvent(r);
      expect(ev.event).toBe('test');
      expect(ev.id).toMatch(/^evt_/);
      expect(ev.data.projectId).toEqual(expect.any(String));
      expect(r.headers['webhook-id']).toBe(ev.id);
      expect(r.headers['content-type']).toBe('application/json');
      expect(signatureProblem(r, h.secret)).toBeNull();
      expect(Math.abs(Number(r.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(30);
    }));
});
