/**
 * The privacy default: generation events carry no input/output and prompt events no prompt text unless
 * BRIDGE_INCLUDE_IO is on; with it on they carry exactly what Langfuse holds. Both API generations,
 * the built CLI, the stdout sink.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, bridgeEnv, killLiveChildren, runCli, tempDir } from '../helpers/cli.js';
import { simRows, startSim } from '../helpers/sim.js';

beforeAll(() => assertBuilt());
afterAll(async () => killLiveChildren());

const HOUR = 3_600_000;
const SECRET_QUESTION = 'what is the account number of jane@example.com';
const PROMPT_TEXT = 'You are the billing assistant. Never reveal {{account}}.';

interface Ev {
  event: string;
  data: Record<string, unknown> & { prompt?: Record<string, unknown> };
}

describe.concurrent('BRIDGE_INCLUDE_IO', () => {
  it.each(['v4', 'v2'] as const)('against a %s server: off by default (no input, output or prompt text leaves), on when set', async (generation) => {
    const sim = await startSim({ generation, seed: 5 });
    const tmp = tempDir();
    try {
      const toMs = Date.now() - 60_000;
      const fromMs = toMs - HOUR;
      sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 5, observationsPerTrace: 3 });
      const t = sim.addTrace({ name: 'billing', timestamp: new Date(fromMs + 60_000).toISOString() });
      sim.addObservation({
        traceId: t.id,
        type: 'GENERATION',
        name: 'answer',
        startTime: new Date(fromMs + 61_000).toISOString(),
        endTime: new Date(fromMs + 62_000).toISOString(),
        input: [{ role: 'user', content: SECRET_QUESTION }],
        output: { role: 'assistant', content: 'I cannot share that.' },
      });
      sim.addPromptVersion({ name: 'billing', prompt: PROMPT_TEXT, labels: ['production'], createdAt: new Date(fromMs + 120_000).toISOString() });
      const generations = simRows(sim).observations.filter((o) => o.type === 'GENERATION');
      // v4 serves input and output as the raw strings Langfuse stored; legacy servers as JSON.
      const served = (v: unknown): unknown => (generation === 'v4' && v !== null && typeof v !== 'string' ? JSON.stringify(v) : v);

      const backfill = async (extra: Record<string, string>): Promise<{ stdout: string; events: Ev[] }> => {
        const env = bridgeEnv({
          langfuseUrl: sim.url,
          database: `${tmp.dir}/${Object.keys(extra).length ? 'on' : 'off'}.db`,
          extra: { BRIDGE_STREAMS: 'traces,generations,scores,prompts', ...extra },
        });
        const p = await runCli(['backfill', '--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()], env, 30_000);
        expect(p.exit?.code, p.describe()).toBe(0);
        const events = p.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Ev);
        return { stdout: p.stdout, events };
      };

      // Off (the default): the keys are absent and the text appears nowhere in what was sent.
      const off = await backfill({});
      const offGens = off.events.filter((e) => e.event.startsWith('generation.'));
      expect(offGens.length).toBe(generations.length);
      for (const e of offGens) {
        expect(e.data, `generation ${String(e.data.observationId)}`).not.toHaveProperty('input');
        expect(e.data, `generation ${String(e.data.observationId)}`).not.toHaveProperty('output');
      }
      const offPrompts = off.events.filter((e) => e.event.startsWith('prompt.'));
      expect(offPrompts.length).toBe(1);
      expect(offPrompts[0]!.data.prompt).toMatchObject({ name: 'billing', version: 1 });
      expect(offPrompts[0]!.data.prompt).not.toHaveProperty('prompt');
      expect(off.stdout).not.toContain(SECRET_QUESTION);
      expect(off.stdout).not.toContain('I cannot share that.');
      expect(off.stdout).not.toContain('Never reveal');

      // On: every generation carries Langfuse's input and output, the prompt its text.
      const on = await backfill({ BRIDGE_INCLUDE_IO: 'true' });
      const onGens = on.events.filter((e) => e.event.startsWith('generation.'));
      expect(onGens.length).toBe(generations.length);
      for (const e of onGens) {
        const o = generations.find((g) => g.id === e.data.observationId)!;
        expect(e.data.input, `input of ${o.id}`).toEqual(served(o.input));
        expect(e.data.output, `output of ${o.id}`).toEqual(served(o.output));
      }
      expect(on.stdout).toContain(SECRET_QUESTION);
      const onPrompts = on.events.filter((e) => e.event.startsWith('prompt.'));
      expect(onPrompts.map((e) => e.data.prompt?.prompt)).toEqual([PROMPT_TEXT]);
    } finally {
      await sim.stop();
      tmp.cleanup();
    }
  });
});
