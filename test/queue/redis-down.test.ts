/**
 * Redis unreachable at start: every command that needs it exits 2 with one line and no stack trace,
 * never a silent fallback to in-process delivery.
 */
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, bridgeEnv, killLiveChildren, runCli, tempDir } from '../helpers/cli.js';

const LINE = 'langfuse-bridge: BRIDGE_REDIS_URL redis://127.0.0.1:1 is unreachable after 1 s (ECONNREFUSED); start Redis or unset BRIDGE_REDIS_URL to deliver in-process';

beforeAll(() => assertBuilt());
afterEach(async () => killLiveChildren());

describe('Redis unreachable at start', () => {
  const tmp = tempDir('lfb-queue-');
  afterAll(() => tmp.cleanup());
  const env = (extra: Record<string, string> = {}) =>
    bridgeEnv({
      langfuseUrl: 'http://127.0.0.1:9',
      database: path.join(tmp.dir, 'down.db'),
      extra: { BRIDGE_REDIS_URL: 'redis://127.0.0.1:1', BRIDGE_REDIS_WAIT_SECONDS: '1', ...extra },
    });

  it.each([['run'], ['worker'], ['backfill', '--from', '2026-01-01T00:00:00Z'], ['replay']])('`%s` exits 2 with one line naming BRIDGE_REDIS_URL', async (...args) => {
    const p = await runCli(args, env(), 20_000);
    expect(p.exit?.code, p.describe()).toBe(2);
    expect(p.stderr.trim()).toBe(LINE);
    expect(p.stderr).not.toMatch(/\n\s+at /);
    expect(p.stdout).toBe('');
  });

  it('hides a password in the URL', async () => {
    const p = await runCli(['worker'], env({ BRIDGE_REDIS_URL: 'redis://:hunter2@127.0.0.1:1' }), 20_000);
    expect(p.exit?.code).toBe(2);
    expect(p.stderr).not.toContain('hunter2');
    expect(p.stderr.trim()).toBe(LINE.replace('redis://127.0.0.1:1', 'redis://:***@127.0.0.1:1'));
  });

  it('status still answers from the database and says Redis is unreachable', async () => {
    const p = await runCli(['status'], env(), 20_000);
    expect(p.exit?.code, p.describe()).toBe(0);
    expect(p.stdout).toMatch(/redis:\/\/127\.0\.0\.1:1 .*UNREACHABLE \(ECONNREFUSED\)/);
  });

  it('worker without BRIDGE_REDIS_URL, run --with-worker without it, a bad URL: exit 2, one line', async () => {
    const plain = bridgeEnv({ langfuseUrl: 'http://127.0.0.1:9', database: path.join(tmp.dir, 'plain.db') });
    const w = await runCli(['worker'], plain, 20_000);
    expect(w.exit?.code).toBe(2);
    expect(w.stderr.trim().split('\n')).toHaveLength(1);
    expect(w.stderr).toMatch(/BRIDGE_REDIS_URL is required by `worker`/);
    const r = await runCli(['run', '--with-worker'], plain, 20_000);
    expect(r.exit?.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--with-worker needs BRIDGE_REDIS_URL/);
    const bad = await runCli(['status'], env({ BRIDGE_REDIS_URL: 'http://127.0.0.1:6379' }), 20_000);
    expect(bad.exit?.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr.trim()).toMatch(/^langfuse-bridge: BRIDGE_REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/);
  });
});
