/**
 * `backfill` on a terminal: the progress line says when the request ceiling is what holds it back
 * (and the setting that raises it), its ETA moves steadily, and Ctrl-C ends the line, says that the
 * same command resumes (and which), and exits 130.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, assertBuilt, killLiveChildren } from '../helpers/cli.js';
import { withHarness } from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

const HOUR = 3_600_000;

beforeAll(() => assertBuilt());
afterAll(async () => killLiveChildren());

/** Runs the built CLI on a pseudo-terminal (Python's pty); `type` writes keys to it, as a person would. */
function onTerminal(args: string[], env: Record<string, string>) {
  const py = 'import os, pty, sys\nsys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))';
  const child = spawn('python3', ['-c', py, process.execPath, CLI, ...args], { env: { ...env, TERM: 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    get out() {
      return out;
    },
    type: (keys: string) => child.stdin.write(keys),
    exited,
    kill: () => child.kill('SIGKILL'),
  };
}

/** The progress line as last drawn (after the last carriage return). */
const frames = (out: string): string[] => out.split('\r').map((f) => f.replace(/\x1b\[2K/g, '').trim()).filter(Boolean);

describe.concurrent('backfill on a terminal', () => {
  it('says the ceiling holds it back, and Ctrl-C ends the line, names the command that resumes and exits 130', () =>
    withHarness({ generation: 'v4', seed: 91 }, async (h) => {
      const { sim } = h;
      const toMs = Math.floor(Date.now() / HOUR) * HOUR - HOUR;
      const fromMs = toMs - 6 * HOUR;
      sim.generate({ from: new Date(fromMs), to: new Date(toMs), traces: 60 });
      const env = h.env({ BRIDGE_MAX_REQUESTS_PER_MINUTE: '6' });
      const range = ['--from', new Date(fromMs).toISOString(), '--to', new Date(toMs).toISOString()];
      const t = onTerminal(['backfill', ...range], env);
      try {
        await waitFor(() => /waiting \d+ s for the request ceiling/.test(t.out), 30_000, 'the progress line saying it waits for the ceiling').catch((e: Error) => {
          throw new Error(`${e.message}\n${t.out.slice(-3000)}`);
        });
        const waiting = frames(t.out).filter((f) => /waiting \d+ s for the request ceiling/.test(f));
        expect(waiting.at(-1)).toMatch(/ · waiting \d+ s for the request ceiling \(6\/min; BRIDGE_MAX_REQUESTS_PER_MINUTE raises it\)$/);
        // Redrawn while it waits (every second), counting down, with an ETA that counts down too.
        const numbers = (re: RegExp): number[] =>
          frames(t.out)
            .map((f) => re.exec(f)?.[1])
            .filter((s): s is string => s !== undefined)
            .map(Number);
        const waits = (): number[] => numbers(/waiting (\d+) s for the request ceiling/);
        await waitFor(() => waits().length >= 2 && waits().at(-1)! <= waits()[0]! - 3, 15_000, 'the line redrawn, counting down').catch((e: Error) => {
          throw new Error(`${e.message}\n${JSON.stringify(frames(t.out).slice(-6), null, 1)}`);
        });
        const etas = frames(t.out)
          .filter((f) => /waiting \d+ s for the request ceiling/.test(f))
          .map((f) => /ETA (?:(\d+) min )?(\d+) s/.exec(f))
          .filter((m): m is RegExpExecArray => m !== null)
          .map((m) => Number(m[1] ?? 0) * 60 + Number(m[2]));
        expect(etas.length, JSON.stringify(frames(t.out).slice(-6), null, 1)).toBeGreaterThanOrEqual(3);
        // Between redraws (no slice finished meanwhile) it goes down by about the second that passed.
        expect(etas.at(-1)!).toBeLessThan(etas.at(-3)!);
        expect(etas.at(-3)! - etas.at(-1)!).toBeLessThanOrEqual(4);

        const before = t.out.length;
        t.type('\x03');
        const code = await Promise.race([t.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 12_000))]);
        const tail = t.out.slice(before);
        expect(code, t.out.slice(-3000)).toBe(130);
        // The progress line is ended before the message, which names the command that resumes.
        expect(tail).toMatch(/^[^\r]*\r?\n/);
        expect(tail).toContain('backfill interrupted; events already queued are kept. Run the same command to resume where it stopped:');
        expect(tail).toContain(`langfuse-bridge backfill --from ${range[1]} --to ${range[3]}`);
        // It does: the same command picks up after the slices already done.
        const again = await h.run(['backfill', ...range], { ...env, BRIDGE_MAX_REQUESTS_PER_MINUTE: '600' }, 30_000);
        expect(again.exit?.code, again.describe()).toBe(0);
        expect(again.logs().some((l) => l.msg === 'resuming an interrupted backfill')).toBe(true);
      } finally {
        t.kill();
      }
    }));
});
