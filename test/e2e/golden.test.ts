/**
 * Event ids and bodies are pinned: a fixed simulator seed over a fixed range, served by a v4 and by a
 * legacy (v2) server, must give exactly the events in test/golden/. A changed id would redeliver
 * everything to every receiver after an upgrade, so no refactor may change one silently.
 * `UPDATE_GOLDEN=1` rewrites the files (and the test then fails, so a rewrite is never silent);
 * nothing else does.
 *
 * And the contract's promise about upgrades: the same data served legacy, then v4, to the same
 * database delivers nothing new.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiGeneration } from '../../demo/simulator.js';
import { ROOT, assertBuilt, bridgeEnv, killLiveChildren, spawnCli, statusJson, tempDir, type CliProcess } from '../helpers/cli.js';
import { withHarness, type Harness } from '../helpers/harness.js';
import { simRows, startSim, type LangfuseSimulator } from '../helpers/sim.js';
import { waitFor } from '../helpers/wait.js';

const GOLDEN_DIR = path.join(ROOT, 'test', 'golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

const SEED = 3;
const FROM = Date.parse('2026-03-02T09:00:00.000Z');
const TO = FROM + 2 * 3_600_000;
const RANGE = ['--from', new Date(FROM).toISOString(), '--to', new Date(TO).toISOString()];
const ALL_STREAMS = 'traces,generations,scores,prompts';
const at = (minutes: number): string => new Date(TO + minutes * 60_000).toISOString();

interface Ev {
  id: string;
  event: string;
  timestamp: string;
  data: Record<string, unknown>;
}

/** The data every pass reads: traces with observations and scores, and a prompt with two versions. */
function seedData(sim: LangfuseSimulator): void {
  sim.generate({ from: new Date(FROM), to: new Date(TO), traces: 6, observationsPerTrace: 3, scoresPerTrace: 2, errorRate: 0.3, warningRate: 0.3 });
  sim.addPromptVersion({ name: 'support-answer', createdAt: new Date(FROM + 60_000).toISOString(), labels: ['production'], tags: ['support'], commitMessage: 'first' });
  sim.addPromptVersion({ name: 'support-answer', type: 'chat', createdAt: new Date(FROM + 30 * 60_000).toISOString(), config: { temperature: 0.2 } });
}

/**
 * Changes after the first pass, each at a fixed time: a generation re-ingested (legacy servers; v4
 * observations are immutable), a score re-evaluated, a third prompt version taking `production`.
 */
function changeData(sim: LangfuseSimulator, generation: ApiGeneration): void {
  const { observations, scores } = simRows(sim);
  if (generation !== 'v4') {
    const g = observations.find((o) => o.type === 'GENERATION')!;
    sim.updateObservation(g.id, { completionTokens: g.completionTokens + 17, endTime: at(1), updatedAt: at(2) });
  }
  const s = scores.find((x) => x.dataType === 'NUMERIC')!;
  sim.updateScore(s.id, { value: 0.125, comment: 'rescored', updatedAt: at(3) });
  sim.addPromptVersion({ name: 'support-answer', createdAt: at(4), labels: ['production'], commitMessage: 'third' });
}

function stdoutEvents(stdout: string): Ev[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Ev);
}

/** Delivery order depends on which source commits first: the golden files list events in a fixed order. */
function sorted(events: Ev[]): Ev[] {
  return [...events].sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : a.event < b.event ? -1 : a.event > b.event ? 1 : a.id < b.id ? -1 : 1));
}

/** One event per line: small diffs, readable files. */
function render(g: Record<string, Ev[]>): string {
  const parts = Object.entries(g).map(([k, evs]) => `  ${JSON.stringify(k)}: [\n${evs.map((e) => `    ${JSON.stringify(e)}`).join(',\n')}\n  ]`);
  return `{\n${parts.join(',\n')}\n}\n`;
}

/** Waits until the daemon has finished its first poll of every stream and its sinks have nothing left to send. */
async function polledAndDrained(run: CliProcess, env: Record<string, string>, what: string): Promise<void> {
  await waitFor(() => run.logs().some((l) => l.msg === 'poll committed new events' || l.msg === 'poll found nothing new'), 30_000, `${what}: the first poll\n${run.stderr}`);
  await waitFor(
    async () => {
      const s = await statusJson(env);
      return s.streams.length > 0 && s.streams.every((x) => x.lastOutcome === 'ok') && s.sinks.every((k) => k.queued + k.delivering + k.retrying === 0);
    },
    30_000,
    `${what}: every delivery done`,
    300,
  );
}

/** Backfill the range, change the data, then a daemon whose first poll starts at the range. */
async function produce(generation: ApiGeneration): Promise<Record<string, Ev[]>> {
  const sim = await startSim({ generation, seed: SEED });
  const tmp = tempDir();
  try {
    seedData(sim);
    const env = bridgeEnv({
      langfuseUrl: sim.url,
      database: path.join(tmp.dir, 'golden.db'),
      extra: { BRIDGE_STREAMS: ALL_STREAMS, BRIDGE_START_FROM: new Date(FROM).toISOString(), BRIDGE_POLL_INTERVAL_SECONDS: '3600' },
    });
    const bf = spawnCli(['backfill', ...RANGE], env);
    await bf.wait(30_000);
    expect(bf.exit?.code, bf.describe()).toBe(0);

    changeData(sim, generation);
    const run = spawnCli(['run', '--log-level', 'debug'], env);
    await polledAndDrained(run, env, `the ${generation} daemon`);
    run.kill('SIGTERM');
    const exit = await run.wait(15_000);
    expect(exit.code, run.describe()).toBe(0);
    return { backfill: sorted(stdoutEvents(bf.stdout)), 'run after changes': sorted(stdoutEvents(run.stdout)) };
  } finally {
    await sim.stop();
    tmp.cleanup();
  }
}

beforeAll(() => assertBuilt());
afterAll(async () => killLiveChildren());

describe.concurrent('golden events', () => {
  it.each([
    ['v4', 'events-v4.json'],
    ['v2', 'events-legacy.json'],
  ] as const)('a %s server gives exactly the ids and bodies of test/golden/%s', async (generation, file) => {
    const got = await produce(generation);
    const all = [...got.backfill!, ...got['run after changes']!];
    // The fixture covers every event type (v4 observations are immutable: no generation.updated there).
    const types = new Set(all.map((e) => e.event));
    const want = ['trace.created', 'trace.updated', 'generation.created', 'score.created', 'score.updated', 'prompt.created', 'prompt.updated', ...(generation === 'v4' ? [] : ['generation.updated'])];
    expect([...types].sort()).toEqual(want.sort());
    const levels = new Set(all.filter((e) => e.event === 'trace.updated').map((e) => e.data.level));
    expect([...levels].sort()).toEqual(['ERROR', 'WARNING']);
    const scoreTypes = new Set(all.filter((e) => e.event === 'score.created').map((e) => e.data.dataType));
    expect([...scoreTypes].sort()).toEqual(['BOOLEAN', 'CATEGORICAL', 'NUMERIC']);

    const target = path.join(GOLDEN_DIR, file);
    if (UPDATE) {
      mkdirSync(GOLDEN_DIR, { recursive: true });
      writeFileSync(target, render(got));
      throw new Error(`UPDATE_GOLDEN=1: rewrote ${path.relative(ROOT, target)}; review the diff, then run again without it`);
    }
    expect(existsSync(target), `${target} is missing: run this test once with UPDATE_GOLDEN=1 and commit the file`).toBe(true);
    const golden = JSON.parse(readFileSync(target, 'utf8')) as Record<string, Ev[]>;
    // Ids first, so a changed id is named as such; then the bodies, byte for byte.
    for (const phase of Object.keys(golden)) {
      expect(got[phase]!.map((e) => `${e.event} ${e.id}`), `${phase}: event ids`).toEqual(golden[phase]!.map((e) => `${e.event} ${e.id}`));
      expect(got[phase]!.map((e) => JSON.stringify(e)), `${phase}: bodies`).toEqual(golden[phase]!.map((e) => JSON.stringify(e)));
    }
    expect(Object.keys(got)).toEqual(Object.keys(golden));
  });

  it('the ids do not depend on the API generation: legacy and v4 golden files hold the same created ids', () => {
    const read = (f: string): Record<string, Ev[]> => JSON.parse(readFileSync(path.join(GOLDEN_DIR, f), 'utf8')) as Record<string, Ev[]>;
    const v4 = read('events-v4.json');
    const legacy = read('events-legacy.json');
    const ids = (g: Record<string, Ev[]>): string[] => g.backfill!.map((e) => `${e.event} ${e.id}`).sort();
    expect(ids(v4)).toEqual(ids(legacy));
  });

  it('a server upgraded from legacy to v4 redelivers nothing', () =>
    withHarness({ generation: 'v2', seed: SEED }, async (h: Harness) => {
      seedData(h.sim);
      const env = h.env({ BRIDGE_STREAMS: ALL_STREAMS, BRIDGE_START_FROM: new Date(FROM).toISOString(), BRIDGE_POLL_INTERVAL_SECONDS: '3600' });
      // Before the upgrade: a legacy server, everything delivered.
      const bf = await h.run(['backfill', ...RANGE], env, 30_000);
      expect(bf.exit?.code, bf.describe()).toBe(0);
      const before = h.rx.requests.length;
      expect(before).toBeGreaterThan(25);

      // After: the same data from a v4 server at the same address's successor.
      const v4 = await startSim({ generation: 'v4', seed: SEED });
      try {
        seedData(v4);
        const env4 = { ...env, LANGFUSE_BASE_URL: v4.url };
        // The daemon's first poll reads the whole range live...
        const run = h.spawn(['run', '--log-level', 'debug'], env4);
        await polledAndDrained(run, env4, 'the v4 daemon');
        run.kill('SIGTERM');
        expect((await run.wait(15_000)).code, run.describe()).toBe(0);
        expect(v4.requests.some((r) => r.path.startsWith('/api/public/v2/observations')), 'the daemon read the v4 endpoints').toBe(true);
        expect(h.rx.requests.slice(before).map((r) => r.body), 'deliveries by the v4 daemon').toEqual([]);
        // ...and a backfill of it on v4 finds every event already delivered.
        const again = await h.run(['backfill', ...RANGE], env4, 30_000);
        expect(again.exit?.code, again.describe()).toBe(0);
        expect(h.rx.requests.slice(before).map((r) => r.body), 'deliveries by a v4 backfill').toEqual([]);
      } finally {
        await v4.stop();
      }
    }));
});
