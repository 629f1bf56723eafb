/**
 * The built CLI's manners: usage errors in one `langfuse-bridge:` line with a "did you mean", bad flags
 * and log levels exit 2, and a webhook sink never goes out unsigned unless told `none` by name.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, bridgeEnv, killLiveChildren, runCli, tempDir, type CliProcess } from '../helpers/cli.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { parseEvent } from '../helpers/sim.js';

const tmp = tempDir('lfb-manners-');
let rx: Receiver;

beforeAll(async () => {
  assertBuilt();
  rx = await startReceiver();
});
afterAll(async () => {
  await killLiveChildren();
  await rx?.stop();
  tmp.cleanup();
});

let n = 0;
/** Nothing here calls Langfuse: the URL only has to be well-formed. */
function env(extra: Record<string, string | undefined> = {}): Record<string, string> {
  return bridgeEnv({ langfuseUrl: 'http://127.0.0.1:9', database: path.join(tmp.dir, `m${++n}.db`), webhookUrl: rx.url, extra });
}

function expectOneLineError(p: CliProcess, names: string | RegExp): string {
  expect(p.exit?.code, p.describe()).toBe(2);
  const lines = p.stderr.trimEnd().split('\n');
  expect(lines, p.describe()).toHaveLength(1);
  const line = lines[0]!;
  expect(line.startsWith('langfuse-bridge: '), line).toBe(true);
  if (typeof names === 'string') expect(line).toContain(names);
  else expect(line).toMatch(names);
  expect(p.stdout).toBe('');
  return line;
}

describe.concurrent('usage errors are one line with the program name and a suggestion', () => {
  it('an unknown command names the one meant', async () => {
    const line = expectOneLineError(await runCli(['stauts'], env(), 20_000), "unknown command 'stauts'");
    expect(line).toContain('(did you mean status?)');
  });

  it('an unknown command with nothing close lists the commands', async () => {
    const line = expectOneLineError(await runCli(['frobnicate'], env(), 20_000), "unknown command 'frobnicate'");
    expect(line).toMatch(/commands: run, backfill, status, replay, worker, check, test-event/);
  });

  it('an unknown option names the one meant and the command’s help', async () => {
    const line = expectOneLineError(await runCli(['status', '--jsn'], env(), 20_000), "unknown option '--jsn'");
    expect(line).toContain('(did you mean --json?)');
    expect(line).toContain('see langfuse-bridge status --help');
    const sub = expectOneLineError(await runCli(['backfill', '--from', '2026-11-01', '--sinc', 'webhook'], env(), 20_000), "unknown option '--sinc'");
    expect(sub).toContain('(did you mean --sink?)');
  });

  it('a bad --log-level, or LOG_LEVEL, names it and the choices', async () => {
    expectOneLineError(await runCli(['--log-level', 'loud', 'status'], env(), 20_000), /--log-level.*'loud'.*fatal, error, warn, info, debug, trace/);
    expectOneLineError(await runCli(['status'], env({ LOG_LEVEL: 'loud' }), 20_000), /'loud' from env 'LOG_LEVEL'.*fatal, error, warn/);
    // A flag wins over the environment (`replay`: `status` needs an existing database).
    const ok = await runCli(['--log-level', 'warn', 'replay'], env({ LOG_LEVEL: 'loud' }), 20_000);
    expect(ok.exit?.code, ok.describe()).toBe(0);
  });
});

describe.concurrent('bad flag values exit 2 in one line', () => {
  for (const args of [['test-event'], ['replay'], ['backfill', '--from', '2026-11-01T00:00:00Z']]) {
    it(`${args[0]} --sink naming no sink`, async () => {
      const line = expectOneLineError(await runCli([...args, '--sink', 'nope'], env(), 20_000), '--sink nope is not a configured sink');
      expect(line).toContain('configured: webhook');
    });
  }

  it('worker --sink naming no sink (with Redis queues)', async () => {
    const e = env({ BRIDGE_REDIS_URL: 'redis://127.0.0.1:6379', BRIDGE_QUEUE_PREFIX: `lfb-manners-${process.pid}`, BRIDGE_REDIS_WAIT_SECONDS: '5' });
    const line = expectOneLineError(await runCli(['worker', '--sink', 'nope'], e, 20_000), '--sink nope is not a configured sink');
    expect(line).toContain('configured: webhook');
  });

  it('replay --since that is no time', async () => {
    expectOneLineError(await runCli(['replay', '--since', 'last-tuesday'], env(), 20_000), /--since must be an ISO 8601 time.*"last-tuesday"/);
  });
});

describe.concurrent('a webhook sink without a secret', () => {
  it('stops every command that builds sinks, naming BRIDGE_WEBHOOK_SECRET', async () => {
    for (const args of [['run'], ['test-event'], ['check']]) {
      const line = expectOneLineError(await runCli(args, env({ BRIDGE_WEBHOOK_SECRET: undefined }), 20_000), /^langfuse-bridge: BRIDGE_WEBHOOK_SECRET is required/);
      expect(line).toContain('BRIDGE_WEBHOOK_SIGNATURE=none');
    }
  });

  it('sends unsigned only with BRIDGE_WEBHOOK_SIGNATURE=none', async () => {
    const e = env({ BRIDGE_WEBHOOK_SECRET: undefined, BRIDGE_WEBHOOK_SIGNATURE: 'none', BRIDGE_WEBHOOK_URL: `${rx.url}?unsigned=1` });
    const p = await runCli(['test-event'], e, 30_000);
    expect(p.exit?.code, p.describe()).toBe(0);
    const got = rx.requests.filter((r) => r.path.includes('unsigned'));
    expect(got).toHaveLength(1);
    const ev = parseEvent(got[0]!);
    expect(ev.event).toBe('test');
    expect(got[0]!.headers['webhook-id']).toBe(ev.id);
    expect(got[0]!.headers['webhook-signature']).toBeUndefined();
    expect(got[0]!.headers['x-langfuse-signature']).toBeUndefined();
  });
});
