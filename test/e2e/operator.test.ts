/**
 * The operator commands as the contract promises them: `check` exercises what `run` needs, `status`
 * reads the database only and says what needs a human, one daemon per database, and a database that
 * cannot be used is one line naming it. The built CLI, a real simulator, real SQLite files.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createServer, type Server } from 'node:net';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { CLI, assertBuilt, bridgeEnv, killLiveChildren, runCli, spawnCli, tempDir, type CliProcess } from '../helpers/cli.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startSim, type LangfuseSimulator } from '../helpers/sim.js';
import { waitFor } from '../helpers/wait.js';

const tmp = tempDir('lfb-operator-');
let sim: LangfuseSimulator;
let legacy: LangfuseSimulator;
let rx: Receiver;

beforeAll(async () => {
  assertBuilt();
  [sim, legacy, rx] = await Promise.all([startSim({ generation: 'v4' }), startSim({ generation: 'v2' }), startReceiver()]);
});
afterAll(async () => {
  await killLiveChildren();
  await Promise.all([sim?.stop(), legacy?.stop(), rx?.stop()]);
  for (const p of immutable) chattr('-i', p);
  tmp.cleanup();
});

let n = 0;
const dbPath = (): string => path.join(tmp.dir, `o${++n}`, 'bridge.db');
function env(extra: Record<string, string | undefined> = {}, o: { url?: string; database?: string } = {}): Record<string, string> {
  return bridgeEnv({ langfuseUrl: o.url ?? sim.url, database: o.database ?? dbPath(), webhookUrl: rx.url, extra: { BRIDGE_POLL_INTERVAL_SECONDS: '1', ...extra } });
}

function expectOneLine(p: CliProcess, code: number, pattern: RegExp): void {
  expect(p.exit?.code, p.describe()).toBe(code);
  const lines = p.stderr.trimEnd().split('\n');
  expect(lines, p.describe()).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(p.stderr).not.toMatch(/^\s+at /m);
}

/** A database `run` would use, created by `replay` (which opens it for writing and finds nothing to do). */
async function createdDatabase(e: Record<string, string>): Promise<string> {
  const p = await runCli(['replay'], e, 20_000);
  expect(p.exit?.code, p.describe()).toBe(0);
  return e.BRIDGE_DATABASE!;
}

/** Waits until `run` holds the lock and has polled once. */
async function started(d: CliProcess, e: Record<string, string>): Promise<void> {
  await waitFor(() => !d.running || (existsSync(e.BRIDGE_DATABASE!) && readDaemon(e.BRIDGE_DATABASE!)?.pid === d.pid && d.stderr.includes('connected to Langfuse')), 20_000, 'the daemon to start');
  expect(d.running, d.describe()).toBe(true);
}

function readDaemon(file: string): { pid: number; host: string; expiresAt: number; heartbeatAt: number; stoppedAt: number | null } | null {
  const db = new Database(file, { readonly: true });
  try {
    const v = db.prepare(`SELECT value FROM meta WHERE key = 'daemon'`).pluck().get() as string | undefined;
    return v ? JSON.parse(v) : null;
  } finally {
    db.close();
  }
}

function writeMeta(file: string, key: string, value: unknown): void {
  const db = new Database(file);
  try {
    db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, JSON.stringify(value));
  } finally {
    db.close();
  }
}

// --- read-only files: root ignores permission bits, so the immutable attribute stands in for a read-only mount.
const immutable: string[] = [];
function chattr(flag: '+i' | '-i', p: string): boolean {
  try {
    execFileSync('chattr', [flag, p], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
/** A small tmpfs of its own (root with CAP_SYS_ADMIN): a disk that fills up for real. */
function mountSmall(dir: string, size: string): boolean {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const canMount = ((): boolean => {
  const probe = path.join(tmp.dir, 'mount-probe');
  const ok = mountSmall(probe, '64k');
  if (ok) execFileSync('umount', [probe]);
  return ok;
})();

const canChattr = ((): boolean => {
  const probe = path.join(tmp.dir, 'chattr-probe');
  writeFileSync(probe, '');
  const ok = chattr('+i', probe);
  if (ok) chattr('-i', probe);
  return ok;
})();
function makeImmutable(...paths: string[]): void {
  for (const p of paths) {
    expect(chattr('+i', p), `chattr +i ${p}`).toBe(true);
    immutable.push(p);
  }
}

/** Overwrites every page but the first (the schema) with garbage: "database disk image is malformed". */
function corrupt(file: string): void {
  const size = statSync(file).size;
  expect(size).toBeGreaterThan(8192);
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.alloc(size - 4096, 0xa5), 0, size - 4096, 4096);
  closeSync(fd);
}

describe.concurrent('check exercises what run needs', () => {
  it('a forced BRIDGE_LANGFUSE_API=v4 on a v2 server fails, naming the endpoints not served', async () => {
    const p = await runCli(['check'], env({ BRIDGE_LANGFUSE_API: 'v4' }, { url: legacy.url }), 30_000);
    expect(p.exit?.code, p.describe()).toBe(1);
    expect(p.stdout).not.toMatch(/✔ API generation: v4/);
    expect(p.stdout).toMatch(/^✘ API generation: v4 .*BRIDGE_LANGFUSE_API=v4.*\/api\/public\/v2\/observations/m);
    expect(p.stdout).toMatch(/^✘ stream scores: \/api\/public\/v3\/scores not served/m);
  });

  it('refused keys are said once, in one line', async () => {
    const p = await runCli(['check'], env({ LANGFUSE_SECRET_KEY: 'sk-lf-wrong' }), 30_000);
    expect(p.exit?.code, p.describe()).toBe(1);
    const line = p.stdout.split('\n').find((l) => /refused the credentials/.test(l));
    expect(line, p.stdout).toMatch(/^✘ /);
    expect(line!.match(/refused the credentials/g)).toHaveLength(1);
  });

  it('a base URL that answers 404 everywhere is named, not taken for a legacy server; its user and password are not shown', async () => {
    const u = new URL(sim.url);
    const p = await runCli(['check'], env({}, { url: `http://admin:hunter2@${u.host}/api/public` }), 30_000);
    expect(p.exit?.code, p.describe()).toBe(1);
    expect(p.stdout).toMatch(/^✘ Langfuse .*404 to every API path: LANGFUSE_BASE_URL .*\/api\/public/m);
    expect(p.stdout).not.toMatch(/credentials accepted|API generation/);
    expect(p.stdout + p.stderr).not.toContain('hunter2');
    expect(p.stdout + p.stderr).not.toContain('admin');
  });

  it('a legacy server: every endpoint of each configured stream, one line each', async () => {
    const p = await runCli(['check'], env({ BRIDGE_STREAMS: 'traces,generations,scores,prompts' }, { url: legacy.url }), 30_000);
    expect(p.exit?.code, p.describe()).toBe(0);
    expect(p.stdout).toMatch(/^✔ API generation: legacy/m);
    expect(p.stdout).toMatch(/^✔ stream traces: \/api\/public\/traces, \/api\/public\/observations served$/m);
    expect(p.stdout).toMatch(/^✔ stream scores: \/api\/public\/scores served$/m);
    expect(p.stdout).toMatch(/^✔ stream prompts: \/api\/public\/v2\/prompts served$/m);
  });

  it('a missing database is fine for run, and check does not create it', async () => {
    const e = env();
    const p = await runCli(['check'], e, 30_000);
    expect(p.exit?.code, p.describe()).toBe(0);
    expect(p.stdout).toMatch(/^✔ database .*does not exist yet/m);
    expect(existsSync(e.BRIDGE_DATABASE!)).toBe(false);
    expect(existsSync(path.dirname(e.BRIDGE_DATABASE!))).toBe(false);
  });

  it('a database folder that cannot be created, a damaged file and a newer schema each fail check with a line naming the file', async () => {
    const blocker = path.join(tmp.dir, `regular-file-${++n}`);
    writeFileSync(blocker, 'not a folder');
    const noFolder = await runCli(['check'], env({}, { database: path.join(blocker, 'sub', 'b.db') }), 30_000);
    expect(noFolder.exit?.code, noFolder.describe()).toBe(1);
    expect(noFolder.stdout).toMatch(new RegExp(`^✘ database ${blocker}/sub/b\\.db: does not exist and cannot be created: ${blocker} is not a folder`, 'm'));

    const damaged = env();
    corrupt(await createdDatabase(damaged));
    const bad = await runCli(['check'], damaged, 30_000);
    expect(bad.exit?.code, bad.describe()).toBe(1);
    expect(bad.stdout).toMatch(new RegExp(`^✘ database ${damaged.BRIDGE_DATABASE} is damaged \\(database disk image is malformed\\)`, 'm'));
    expect(bad.stdout).toMatch(/^✔ Langfuse/m);

    const newer = env();
    const db = new Database(await createdDatabase(newer));
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    const n1 = await runCli(['check'], newer, 30_000);
    expect(n1.exit?.code, n1.describe()).toBe(1);
    expect(n1.stdout).toMatch(/^✘ database .* this build is older/m);
    expect(new Database(newer.BRIDGE_DATABASE!, { readonly: true }).pragma('user_version', { simple: true })).toBe(MIGRATIONS.length + 1);
  });

  it('an older schema is reported as upgraded by run, and left as it is', async () => {
    const e = env();
    mkdirSync(path.dirname(e.BRIDGE_DATABASE!), { recursive: true });
    const db = new Database(e.BRIDGE_DATABASE!);
    db.pragma('journal_mode = WAL');
    for (const m of MIGRATIONS.slice(0, 2)) db.exec(m);
    db.pragma('user_version = 2');
    db.close();
    const p = await runCli(['check'], e, 30_000);
    expect(p.exit?.code, p.describe()).toBe(0);
    expect(p.stdout).toMatch(new RegExp(`^✔ database .*: schema 2, \`langfuse-bridge run\` upgrades it to ${MIGRATIONS.length}`, 'm'));
    expect(new Database(e.BRIDGE_DATABASE!, { readonly: true }).pragma('user_version', { simple: true })).toBe(2);
  });

  it('unreachable Redis, a handler module that does not load and a taken ops port fail check', async () => {
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    const cfg = path.join(tmp.dir, `handler-${++n}.json`);
    const mod = path.join(tmp.dir, `broken-${n}.mjs`);
    writeFileSync(mod, 'export default (event) => { ;;; this is not javascript');
    writeFileSync(cfg, JSON.stringify({ sinks: [{ type: 'handler', name: 'mine', module: mod }] }));
    try {
      const p = await runCli(['--config', cfg, 'check'], env({ BRIDGE_REDIS_URL: 'redis://127.0.0.1:1', BRIDGE_HTTP_PORT: String(port) }), 40_000);
      expect(p.exit?.code, p.describe()).toBe(1);
      expect(p.stdout).toMatch(/^✔ Langfuse/m);
      expect(p.stdout).toMatch(/^✘ Redis: /m);
      expect(p.stdout).toMatch(/^✘ sinks: handler module .*broken-\d+\.mjs.* failed to load/m);
      expect(p.stdout).toMatch(new RegExp(`^✘ ops server: cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\)`, 'm'));
    } finally {
      taken.close();
    }
  });

  it('prints its results before any log line', async () => {
    // One file for both streams, as a terminal shows them: the order is observable.
    const out = path.join(tmp.dir, `combined-${++n}.txt`);
    const fd = openSync(out, 'w');
    const child = spawn(process.execPath, [CLI, 'check'], { env: env({}, { url: 'http://127.0.0.1:1' }), stdio: ['ignore', fd, fd] });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    closeSync(fd);
    const text = readFileSync(out, 'utf8');
    expect(code, text).toBe(1);
    const lines = text.trimEnd().split('\n');
    const firstLog = lines.findIndex((l) => l.startsWith('{'));
    const lastResult = lines.map((l) => /^[✔✘] /.test(l)).lastIndexOf(true);
    expect(firstLog, text).toBeGreaterThan(-1);
    expect(lastResult, text).toBeLessThan(firstLog);
    expect(lines[0]).toMatch(/^✘ Langfuse http:\/\/127\.0\.0\.1:1 unreachable/);
  });
});

describe('status reads the database only', () => {
  it('a missing file is one line naming it, and is not created', async () => {
    const e = env();
    const p = await runCli(['status'], e, 20_000);
    expectOneLine(p, 2, new RegExp(`database ${e.BRIDGE_DATABASE} does not exist; check BRIDGE_DATABASE`));
    expect(p.stdout).toBe('');
    expect(existsSync(e.BRIDGE_DATABASE!)).toBe(false);
    // --json: a script reading stdout gets the error as JSON too.
    const j = await runCli(['status', '--json'], e, 20_000);
    expect(j.exit?.code, j.describe()).toBe(2);
    expect(JSON.parse(j.stdout)).toEqual({ error: expect.stringMatching(/does not exist; check BRIDGE_DATABASE/) });
  });

  it('a daemon that has not polled once since it started (keys refused) needs attention', async () => {
    const e = env({ LANGFUSE_SECRET_KEY: 'sk-lf-wrong', BRIDGE_HEALTH_MAX_AGE_SECONDS: '2' });
    const d = spawnCli(['run'], e);
    await waitFor(() => !d.running || d.stderr.includes('refused the credentials'), 20_000, 'the refused poll');
    expect(d.running, d.describe()).toBe(true);
    await waitFor(async () => {
      const s = await runCli(['status', '--check', '--json'], e, 20_000);
      return s.exit?.code === 1 && /no successful poll since the daemon started/.test(s.stdout);
    }, 20_000, 'status --check to name the daemon that never polled');
    d.kill('SIGTERM');
    expect((await d.wait(15_000)).code, d.describe()).toBe(0);
  });

  it('an older schema is named with the command that upgrades it, a newer one with "this build is older"; neither is changed', async () => {
    const older = env();
    mkdirSync(path.dirname(older.BRIDGE_DATABASE!), { recursive: true });
    const db = new Database(older.BRIDGE_DATABASE!);
    for (const m of MIGRATIONS.slice(0, 2)) db.exec(m);
    db.pragma('user_version = 2');
    db.close();
    const p = await runCli(['status'], older, 20_000);
    expectOneLine(p, 2, /schema 2, older than this build's \d+; run `langfuse-bridge run` to upgrade it/);
    expect(new Database(older.BRIDGE_DATABASE!, { readonly: true }).pragma('user_version', { simple: true })).toBe(2);

    const newer = env();
    const db2 = new Database(await createdDatabase(newer));
    db2.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db2.close();
    const q = await runCli(['status', '--json'], newer, 20_000);
    expectOneLine(q, 2, /this build is older/);
    expect(JSON.parse(q.stdout).error).toMatch(/this build is older/);
  });

  it('a damaged file is one line naming it', async () => {
    const e = env();
    corrupt(await createdDatabase(e));
    const p = await runCli(['status'], e, 20_000);
    expectOneLine(p, 2, new RegExp(`^langfuse-bridge: database ${e.BRIDGE_DATABASE} is damaged \\(database disk image is malformed\\)`));
  });

  it('the daemon: running with its pid and host, then stopped, then killed; --check says when a human is needed', async () => {
    const e = env();
    const id = `op-${++n}`;
    const d = spawnCli(['run'], e);
    await started(d, e);
    // Something to deliver, so that a sink has a last success.
    sim.addObservation({ traceId: id, id: `${id}-gen`, type: 'GENERATION', startTime: new Date().toISOString(), model: 'gpt-4o', promptTokens: 1, completionTokens: 1 });
    await waitFor(() => rx.accepted.some((r) => r.body.includes(`${id}-gen`)), 20_000, 'the delivery');

    const live = await runCli(['status', '--check'], e, 20_000);
    expect(live.exit?.code, live.describe()).toBe(0);
    expect(live.stdout).toMatch(new RegExp(`^daemon +running: pid ${d.pid} on host ${os.hostname().replace(/[.]/g, '\\.')}, since \\d+ s ago; heartbeat \\d+ s ago$`, 'm'));
    expect(live.stdout).toMatch(/^traces,generations +\d+ s +\d+ s ago +ok /m);
    expect(live.stdout).toMatch(/^ {2}last success \d+ s ago$/m);
    expect(live.stdout).toMatch(/^✔ nothing needs attention$/m);
    const json = JSON.parse((await runCli(['status', '--json'], e, 20_000)).stdout) as {
      daemon: { state: string; pid: number; host: string; heartbeatAgeSeconds: number };
      streams: Array<{ behindSeconds: number; lastPollAgeSeconds: number }>;
      sinks: Array<{ name: string; state: unknown; lastSuccessAt: string | null; deadByReason: unknown[] }>;
      attention: string[];
    };
    expect(json.daemon).toMatchObject({ state: 'running', pid: d.pid, host: os.hostname() });
    expect(json.daemon.heartbeatAgeSeconds).toBeLessThan(30);
    for (const s of json.streams) expect(s.behindSeconds).toBeLessThan(60);
    expect(json.sinks).toEqual([expect.objectContaining({ name: 'webhook', state: 'ok', lastSuccessAt: expect.any(String), deadByReason: [] })]);
    expect(json.attention).toEqual([]);

    d.kill('SIGTERM');
    expect((await d.wait(15_000)).code, d.describe()).toBe(0);
    const stopped = await runCli(['status', '--check'], e, 20_000);
    expect(stopped.exit?.code, stopped.describe()).toBe(1);
    expect(stopped.stdout).toMatch(new RegExp(`^daemon +NOT RUNNING: stopped \\d+ s ago \\(pid ${d.pid} on host `, 'm'));
    expect(stopped.stdout).toMatch(/^ {2}✘ no daemon is running: it stopped \d+ s ago$/m);

    const d2 = spawnCli(['run'], e);
    await started(d2, e);
    d2.kill('SIGKILL');
    await d2.exited;
    const killed = await runCli(['status', '--check', '--json'], e, 20_000);
    expect(killed.exit?.code, killed.describe()).toBe(1);
    const k = JSON.parse(killed.stdout) as { daemon: { state: string; pid: number }; attention: string[] };
    expect(k.daemon).toMatchObject({ state: 'dead', pid: d2.pid });
    expect(k.attention).toEqual([expect.stringMatching(/^no daemon is running: last heartbeat \d+ s ago \(pid \d+ on host .*\), and it did not stop cleanly$/)]);
  });

  it('dead letters grouped by reason, the next retry, and --check until they are replayed', async () => {
    const e = env({ BRIDGE_RETRY_MAX_ATTEMPTS: '2', BRIDGE_RETRY_BASE_SECONDS: '30' });
    const r2 = await startReceiver();
    e.BRIDGE_WEBHOOK_URL = r2.url;
    // 410: dead at once; the other event gets 500 (retried in 30 s).
    r2.setResponder((req) => (req.body.includes('"trace.created"') ? { status: 410, body: 'gone' } : { status: 500, body: 'boom' }));
    const d = spawnCli(['run'], e);
    try {
      await started(d, e);
      const id = `dead-${++n}`;
      sim.addObservation({ traceId: id, id: `${id}-gen`, type: 'GENERATION', startTime: new Date().toISOString(), model: 'gpt-4o', promptTokens: 1, completionTokens: 1 });
      await waitFor(() => r2.requests.some((r) => r.body.includes(`${id}-gen`)) && r2.requests.some((r) => r.body.includes('"trace.created"')), 20_000, 'both attempts');
      const st = await waitFor(
        async () => {
          const p = await runCli(['status', '--json', '--check'], e, 20_000);
          const j = JSON.parse(p.stdout) as { sinks: Array<{ dead: number; retrying: number; nextRetryAt: string | null; lastError: string | null; deadByReason: Array<{ reason: string; count: number }> }>; deadLast24h: number; attention: string[] };
          return j.sinks[0]!.dead >= 1 && j.sinks[0]!.retrying >= 1 ? { p, j } : null;
        },
        20_000,
        'a dead letter and a retry',
        250,
      );
      expect(st.p.exit?.code, st.p.describe()).toBe(1);
      const sink = st.j.sinks[0]!;
      expect(sink.deadByReason).toEqual([{ reason: expect.stringContaining('410'), count: sink.dead, lastAt: expect.any(String) }]);
      expect(Date.parse(sink.nextRetryAt!)).toBeGreaterThan(Date.now());
      expect(sink.lastError).toEqual(expect.any(String));
      expect(st.j.attention).toEqual([expect.stringMatching(/^\d+ dead letter\(s\) in the last 24 h not replayed/)]);
      const text = await runCli(['status'], e, 20_000);
      expect(text.stdout).toMatch(/^ {2}dead: \d+ × .*410.* \(last \d+ s ago\)$/m);
      expect(text.stdout).toMatch(/ · next retry in \d+ s/);

      // Replayed: nothing needs a human any more (the daemon runs, the sweep keeps up).
      r2.setResponder(() => ({ status: 200 }));
      expect((await runCli(['replay'], e, 20_000)).exit?.code).toBe(0);
      const after = await runCli(['status', '--check'], e, 20_000);
      expect(after.exit?.code, after.describe()).toBe(0);
    } finally {
      d.kill('SIGTERM');
      await d.wait(15_000);
      await r2.stop();
    }
  });
});

describe('status shows backfills', () => {
  it('a backfill in progress, and after it was killed, with its open deliveries and how far it read', async () => {
    const toMs = Date.now() - 3 * 3_600_000;
    const fromMs = toMs - 600_000;
    sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 5, errorRate: 0, warningRate: 0 });
    const r3 = await startReceiver();
    r3.setMode({ status: 500 });
    const e = env({ BRIDGE_RETRY_BASE_SECONDS: '60' });
    e.BRIDGE_WEBHOOK_URL = r3.url;
    try {
      const b = spawnCli(['backfill', '--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()], e);
      type B = { backfills: Array<{ origin: string; open: number; since: string | null; readUpTo: Record<string, string> }> };
      const during = await waitFor(
        async () => {
          if (!existsSync(e.BRIDGE_DATABASE!)) return null;
          const p = await runCli(['status', '--json'], e, 20_000);
          const j = p.exit?.code === 0 ? (JSON.parse(p.stdout) as B) : null;
          return j && j.backfills.length === 1 && j.backfills[0]!.open > 0 ? j : null;
        },
        30_000,
        'the backfill in status',
        250,
      );
      expect(b.running, b.describe()).toBe(true);
      expect(during.backfills[0]).toMatchObject({ origin: expect.stringMatching(/^backfill:/), since: expect.any(String) });
      // The whole range is read; the backfill waits for its deliveries.
      expect(during.backfills[0]!.readUpTo).toEqual({ observations: new Date(toMs).toISOString(), scores: new Date(toMs).toISOString() });
      b.kill('SIGKILL');
      await b.exited;
      const text = await runCli(['status'], e, 20_000);
      expect(text.stdout).toMatch(/^backfills in progress or interrupted:\n {2}backfill:\S+: \d+ deliveries open since \d+ s ago/m);
    } finally {
      await r3.stop();
    }
  });
});

describe('one daemon per database', () => {
  it('a second run exits 2 naming the first; backfill, replay, status and check still work; after a SIGKILL a new run starts', async () => {
    const e = env();
    const first = spawnCli(['run'], e);
    await started(first, e);
    const second = await runCli(['run'], e, 20_000);
    expectOneLine(second, 2, new RegExp(`another \`langfuse-bridge run\` is running on ${e.BRIDGE_DATABASE}: pid ${first.pid} on host .+, since 20\\d\\d-.*Z \\(\\d+ s ago\\)`));
    expect(second.stdout).toBe('');

    const [b, r, s, c] = await Promise.all([
      runCli(['backfill', '--from', new Date(Date.now() - 60_000).toISOString()], e, 40_000),
      runCli(['replay'], e, 20_000),
      runCli(['status'], e, 20_000),
      runCli(['check'], e, 30_000),
    ]);
    expect(b.exit?.code, b.describe()).toBe(0);
    expect(r.exit?.code, r.describe()).toBe(0);
    expect(s.exit?.code, s.describe()).toBe(0);
    expect(c.exit?.code, c.describe()).toBe(0);
    expect(c.stdout).toMatch(new RegExp(`^✔ database .*a daemon is running on it \\(pid ${first.pid} on host `, 'm'));
    expect(first.running).toBe(true);

    first.kill('SIGKILL');
    await first.exited;
    const third = spawnCli(['run'], e);
    await started(third, e);
    third.kill('SIGTERM');
    expect((await third.wait(15_000)).code, third.describe()).toBe(0);
  });

  it('a second run with the same ops port names the running daemon, not the port', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe: Server = createServer().listen(0, '127.0.0.1', () => {
        const p = (probe.address() as { port: number }).port;
        probe.close(() => resolve(p));
      });
    });
    const e = env({ BRIDGE_HTTP_PORT: String(port) });
    const first = spawnCli(['run'], e);
    await started(first, e);
    const second = await runCli(['run'], e, 20_000);
    expectOneLine(second, 2, new RegExp(`another \`langfuse-bridge run\` is running on ${e.BRIDGE_DATABASE}: pid ${first.pid} on host `));
    first.kill('SIGTERM');
    expect((await first.wait(15_000)).code, first.describe()).toBe(0);
  });

  it("another host's lock holds until it expires, then a new run takes it", async () => {
    const e = env();
    const file = await createdDatabase(e);
    const now = Date.now();
    const other = { owner: 'elsewhere:4242:x', pid: 4242, host: 'elsewhere', version: '0.0.1', startedAt: now - 3_600_000, heartbeatAt: now - 1_000, expiresAt: now + 29_000, stoppedAt: null };
    writeMeta(file, 'daemon', other);
    const refused = await runCli(['run'], e, 20_000);
    expectOneLine(refused, 2, /is running on .*: pid 4242 on host elsewhere, since .* \(1 h ago\)/);

    // The same daemon stopped renewing 31 s ago: its lock has expired by itself.
    writeMeta(file, 'daemon', { ...other, heartbeatAt: now - 31_000, expiresAt: now - 1_000 });
    const d = spawnCli(['run'], e);
    await started(d, e);
    d.kill('SIGTERM');
    expect((await d.wait(15_000)).code, d.describe()).toBe(0);
  });
});

describe('a database that cannot be used is one line naming the file', () => {
  it('a folder that cannot be created (its parent is a file): run, backfill and replay exit 2', async () => {
    const blocker = path.join(tmp.dir, `regular-file-${++n}`);
    writeFileSync(blocker, 'not a folder');
    const e = env({}, { database: path.join(blocker, 'b.db') });
    for (const args of [['run'], ['backfill', '--from', '2026-11-01T00:00:00Z'], ['replay']]) {
      const p = await runCli(args, e, 20_000);
      expectOneLine(p, 2, new RegExp(`^langfuse-bridge: database ${blocker}/b\\.db: ${blocker} is not a folder; point BRIDGE_DATABASE at a file in a folder that exists or can be created$`));
    }
  });

  it('a damaged file: run, backfill and replay exit 2 and do not poll', async () => {
    // A Langfuse of its own: no other test's daemon can have called it.
    const own = await startSim({ generation: 'v4' });
    try {
      const e = env({}, { url: own.url });
      corrupt(await createdDatabase(e));
      for (const args of [['run'], ['backfill', '--from', new Date(Date.now() - 60_000).toISOString()], ['replay']]) {
        const p = await runCli(args, e, 20_000);
        expectOneLine(p, 2, new RegExp(`^langfuse-bridge: database ${e.BRIDGE_DATABASE} is damaged \\(database disk image is malformed\\); move it aside`));
      }
      // None of them called Langfuse: `run` stopped before its first poll.
      expect(own.requests).toEqual([]);
    } finally {
      await own.stop();
    }
  });

  it('a file that is not SQLite: run exits 2 naming it', async () => {
    const e = env();
    mkdirSync(path.dirname(e.BRIDGE_DATABASE!), { recursive: true });
    // 0600, as the bridge makes its files: a looser one would add a warning that it tightened it.
    writeFileSync(e.BRIDGE_DATABASE!, 'hello, this is a text file and not a database at all. '.repeat(100), { mode: 0o600 });
    const p = await runCli(['run'], e, 20_000);
    expectOneLine(p, 2, new RegExp(`database ${e.BRIDGE_DATABASE} is damaged \\(file is not a database\\)`));
  });

  it.skipIf(!canChattr)('read-only (immutable) file and folder: run, backfill, replay exit 2, status says why it cannot read, check fails', async () => {
    const e = env();
    const file = await createdDatabase(e);
    makeImmutable(file, path.dirname(file));
    for (const args of [['run'], ['backfill', '--from', '2026-11-01T00:00:00Z'], ['replay']]) {
      const p = await runCli(args, e, 20_000);
      expectOneLine(p, 2, new RegExp(`^langfuse-bridge: database ${file} is read-only: ${file} is not writable \\(EPERM\\); make it writable`));
    }
    const s = await runCli(['status'], e, 20_000);
    expectOneLine(s, 2, new RegExp(`database ${file} cannot be read: its folder is read-only and SQLite needs to create ${file}-shm beside it`));
    const c = await runCli(['check'], e, 30_000);
    expect(c.exit?.code, c.describe()).toBe(1);
    expect(c.stdout).toMatch(/^✘ database .* is read-only|^✘ database .*cannot be read/m);
  });

  it.skipIf(!canChattr)('a folder that cannot be created (its parent is read-only): run exits 2', async () => {
    const parent = path.join(tmp.dir, `ro-parent-${++n}`);
    mkdirSync(parent);
    makeImmutable(parent);
    const p = await runCli(['run'], env({}, { database: path.join(parent, 'data', 'b.db') }), 20_000);
    expectOneLine(p, 2, new RegExp(`^langfuse-bridge: database ${parent}/data/b\\.db: operation not permitted, mkdir .*; make the file and its folder writable`));
  });

  it.skipIf(!canMount)('a disk that fills up while run runs: it stops with exit 2 and one last line naming the file, instead of polling on', async () => {
    const dir = path.join(tmp.dir, `small-${++n}`);
    expect(mountSmall(dir, '512k')).toBe(true);
    try {
      const now = Date.now();
      sim.generate({ from: new Date(now - 600_000), to: new Date(now - 1_000), traces: 1500, errorRate: 0, warningRate: 0 });
      const e = env({ BRIDGE_START_FROM: new Date(now - 700_000).toISOString() }, { database: path.join(dir, 'b.db') });
      const d = spawnCli(['run'], e);
      const exit = await d.wait(60_000);
      expect(exit.code, d.describe()).toBe(2);
      const last = d.stderr.trimEnd().split('\n').at(-1);
      expect(last).toBe(`langfuse-bridge: database ${e.BRIDGE_DATABASE}: the disk is full (database or disk is full); free some space`);
      expect(d.logs().some((l) => l.msg === 'stopping: the database cannot be used')).toBe(true);
    } finally {
      execFileSync('umount', [dir]);
    }
  });
});
