/**
 * Several Langfuse projects in one bridge: each polls in its own loop, a project with refused keys
 * shows in `status` while the others keep flowing, and rules can match on the project.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { runBackfill } from '../src/commands/backfill.js';
import { check } from '../src/commands/check.js';
import { runDaemon } from '../src/commands/run.js';
import { formatStatus, statusReport } from '../src/commands/status.js';
import { UsageError } from '../src/errors.js';
import { loadConfig, projectConfigs } from '../src/config/index.js';
import { LangfuseSimulator } from '../demo/simulator.js';
import type { AnyBridgeEvent } from '../src/events/types.js';
import { silentLogger } from '../src/ops/logger.js';
import { compileRules } from '../src/rules/index.js';
import { configErrorOf } from './helpers/config-error.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function waitFor(cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

function configFile(body: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), 'projects-')), 'bridge.json');
  writeFileSync(file, JSON.stringify(body));
  return file;
}

function configError(body: unknown, env: Record<string, string> = {}): string {
  return configErrorOf(() => loadConfig({ env, configFile: configFile(body) }));
}

describe('projects config', () => {
  it('needs no top-level keys and gives one full config per project', () => {
    const file = configFile({
      langfuse: { baseUrl: 'https://lf.example.com' },
      lookbackSeconds: 600,
      projects: [
        { name: 'a', publicKey: '${PK_A}', secretKey: 'sk-a' },
        { name: 'b', publicKey: 'pk-b', secretKey: 'sk-b', baseUrl: 'https://other.example.com/', streams: ['scores'], lookbackSeconds: 60, maxRequestsPerMinute: 100, api: 'v4', startFrom: '2026-11-01' },
      ],
    });
    const config = loadConfig({ env: { PK_A: 'pk-a' }, configFile: file });
    const [a, b, ...rest] = projectConfigs(config);
    expect(rest).toEqual([]);
    expect(a).toMatchObject({ projectName: 'a', lookbackSeconds: 600, streams: config.streams, langfuse: { publicKey: 'pk-a', secretKey: 'sk-a', baseUrl: 'https://lf.example.com', api: 'auto', maxRequestsPerMinute: 30 } });
    expect(b).toMatchObject({ projectName: 'b', lookbackSeconds: 60, streams: ['scores'], langfuse: { publicKey: 'pk-b', baseUrl: 'https://other.example.com', api: 'v4', maxRequestsPerMinute: 100 } });
    expect(b?.startFrom?.toISOString()).toBe('2026-11-01T00:00:00.000Z');
    expect(b?.database).toBe(config.database);

    const single = loadConfig({ env: { LANGFUSE_PUBLIC_KEY: 'pk', LANGFUSE_SECRET_KEY: 'sk' } });
    expect(single.projects).toEqual([]);
    expect(projectConfigs(single)).toEqual([single]);
  });

  it('names the project and field in one line', () => {
    expect(configError({ projects: [{ name: 'a', publicKey: 'p', secretKey: 's' }, { name: 'a', publicKey: 'p2', secretKey: 's2' }] })).toBe(
      'projects[1] ("a").name repeats the name of projects[0]; give each project its own name',
    );
    expect(configError({ projects: [{ name: 'a', publicKey: 'p' }] })).toMatch(/^projects\[0\] \("a"\)\.secretKey is required/);
    expect(configError({ projects: [{ name: 'a', publicKey: 'p', secretKey: 's', streams: ['nope'] }] })).toMatch(/: projects\[0\] \("a"\)\.streams\[0\] must be one of traces, generations, scores, prompts, got "nope"$/);
    expect(configError({ projects: [{ name: 'a', publicKey: 'p', secretKey: 's', baseUrl: 'ftp://x' }] })).toMatch(/^projects\[0\] \("a"\)\.baseUrl must be/);
    expect(configError({ projects: [{ name: 'b', publicKey: 'p', secretKey: 's', lookbackSeconds: -1 }] })).toMatch(/: projects\[0\] \("b"\)\.lookbackSeconds must be a whole number of seconds from 0 to 604800, got -1$/);
    expect(configError({ projects: [{ name: 'b', publicKey: 'p', secretKey: 's', colour: 'red' }] })).toMatch(/projects\[0\] \("b"\) has unknown key\(s\) colour/);
  });
});

describe('rules', () => {
  it('match on the project', () => {
    const rules = compileRules([{ name: 'b-errors', when: { project: 'proj-b', level: 'ERROR' }, sinks: ['slack'] }], [{ name: 'slack', type: 'slack' }]);
    const trace = (projectId: string) =>
      ({
        event: 'trace.updated',
        id: `evt-${projectId}`,
        timestamp: new Date().toISOString(),
        data: { projectId, traceId: 't1', name: 'x', level: 'ERROR', environment: 'default', tags: [] },
      }) as unknown as AnyBridgeEvent;
    expect(rules.match(trace('proj-b')).map((m) => m.rule)).toEqual(['b-errors']);
    expect(rules.match(trace('proj-a'))).toEqual([]);
    const wild = compileRules([{ name: 'any-proj', when: { project: ['proj-*'] }, sinks: ['slack'] }], [{ name: 'slack', type: 'slack' }]);
    expect(wild.rules[0]?.events).toEqual(['trace.created']);
    expect(() => compileRules([{ name: 'x', when: { project: 3 }, sinks: ['slack'] }], [{ name: 'slack', type: 'slack' }])).toThrow(
      'rules[0] ("x").when.project must be a Langfuse project id or a list of them, got 3',
    );
  });
});

describe('daemon with several projects', () => {
  it('keeps one project flowing while the other is refused, and shows both in status', async () => {
    const simA = new LangfuseSimulator({ projectId: 'proj-a', publicKey: 'pk-a', secretKey: 'sk-a' });
    const simB = new LangfuseSimulator({ projectId: 'proj-b', publicKey: 'pk-b', secretKey: 'sk-b' });
    const urlA = await simA.start();
    const urlB = await simB.start();
    cleanups.push(() => simA.stop(), () => simB.stop());
    const now = Date.now();
    const ts = (s: number) => new Date(now - s * 1000).toISOString();
    simA.addTrace({ id: 'a-trace', name: 'in-a', timestamp: ts(40) });
    simB.addTrace({ id: 'b-trace', name: 'in-b', timestamp: ts(40) });
    simB.addObservation({ traceId: 'b-trace', id: 'b-gen', type: 'GENERATION', startTime: ts(40), model: 'gpt-4o', promptTokens: 10, completionTokens: 5 });

    const db = join(mkdtempSync(join(tmpdir(), 'projects-')), 'b.db');
    const file = configFile({
      projects: [
        { name: 'alpha', publicKey: 'pk-a', secretKey: 'sk-WRONG', baseUrl: urlA },
        { name: 'beta', publicKey: 'pk-b', secretKey: 'sk-b', baseUrl: urlB },
      ],
    });
    const config = loadConfig({
      configFile: file,
      env: { BRIDGE_DATABASE: db, BRIDGE_POLL_INTERVAL_SECONDS: '1', BRIDGE_START_FROM: ts(120), BRIDGE_MAX_REQUESTS_PER_MINUTE: '600', BRIDGE_STDOUT: 'true' },
    });
    const lines: string[] = [];
    const stdout = new Writable({
      write(chunk: Buffer, _e, cb) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(l);
        cb();
      },
    });
    const h = await runDaemon(config, silentLogger(), { stdout });
    let stopped = false;
    cleanups.push(async () => {
      if (!stopped) {
        h.stop();
        await h.done;
      }
    });

    await waitFor(() => lines.some((l) => l.includes('"generation.created"')) && lines.some((l) => l.includes('"trace.created"')));
    // The refused project keeps failing on every interval while the other one keeps flowing.
    const later = new Date().toISOString();
    simB.addTrace({ id: 'b-later', name: 'later-in-b', timestamp: later });
    simB.addObservation({ traceId: 'b-later', id: 'b-later-gen', type: 'GENERATION', startTime: later, model: 'gpt-4o', promptTokens: 1, completionTokens: 1 });
    await waitFor(() => lines.some((l) => l.includes('b-later')));
    h.stop();
    await h.done;
    stopped = true;

    const events = lines.map((l) => JSON.parse(l) as { event: string; data: { projectId: string } });
    expect(events.length).toBeGreaterThanOrEqual(3);
    expect(new Set(events.map((e) => e.data.projectId))).toEqual(new Set(['proj-b']));

    const r = statusReport(config);
    const good = r.streams.filter((s) => s.project === 'proj-b');
    expect(good.map((s) => s.source).sort()).toEqual(['observations', 'scores']);
    for (const s of good) {
      expect(s.lastOutcome).toBe('ok');
      expect(s.cursor).not.toBeNull();
    }
    const bad = r.streams.filter((s) => s.project === 'alpha');
    expect(bad.map((s) => s.source).sort()).toEqual(['observations', 'scores']);
    for (const s of bad) {
      expect(s.lastOutcome).toBe('error');
      expect(s.lastError).toContain('refused the credentials');
      expect(s.cursor).toBeNull();
    }
    const text = formatStatus(r);
    expect(text).toContain('project alpha');
    expect(text).toContain('project proj-b');

    // check: one line per project.
    const c = await check(config, silentLogger());
    expect(c.ok).toBe(false);
    expect(c.lines[0]).toMatch(/^✘ project alpha: Langfuse refused the credentials/);
    expect(c.lines[1]).toMatch(/^✔ project beta: Langfuse .*credentials accepted, project proj-b, API generation: v4/);

    // backfill --project: only that one; an unknown name is a bad flag.
    const opts = { fromMs: now - 120_000, toMs: Date.now(), redeliver: true, sink: null, alerts: false };
    await expect(runBackfill(config, silentLogger(), { ...opts, project: 'gamma' })).rejects.toSatisfy((e) => e instanceof UsageError && e.exitCode === 2 && /gamma.*alpha, beta/.test(e.message));
    const before = lines.length;
    const b = await runBackfill(config, silentLogger(), { ...opts, project: 'beta' }, { stdout });
    expect(b.exitCode).toBe(0);
    expect(b.events).toBeGreaterThanOrEqual(3);
    expect(lines.slice(before).every((l) => l.includes('"proj-b"'))).toBe(true);
  }, 30_000);
});
