/**
 * Runs the BUILT CLI (`node dist/cli.js …`) as a child process: environment, output capture, exit,
 * signals. Every child started here is tracked so a test can clean up after itself.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'dist', 'cli.js');

/** For beforeAll: the e2e tests run the compiled CLI. */
export function assertBuilt(): void {
  if (!existsSync(CLI)) {
    throw new Error(`${CLI} does not exist: run \`npm run build\` first (npm test builds before vitest runs)`);
  }
}

export function webhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

/**
 * A scratch directory, on tmpfs when there is one: a SIGKILLed process loses nothing the kernel
 * already holds, so process-crash tests are as strict there, and fsyncs cost less.
 */
export function tempDir(prefix = 'lfb-e2e-'): { dir: string; cleanup: () => void } {
  const base = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const dir = mkdtempSync(path.join(base, prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface BridgeEnvOptions {
  langfuseUrl: string;
  database: string;
  webhookUrl?: string | null;
  secret?: string;
  publicKey?: string;
  secretKey?: string;
  extra?: Record<string, string | undefined>;
}

/**
 * A clean environment (nothing inherited but PATH/HOME, so no proxy or LOG_LEVEL leaks in) with the
 * settings every e2e test wants: fast retries and a generous request ceiling.
 */
export function bridgeEnv(o: BridgeEnvOptions): Record<string, string> {
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LANGFUSE_PUBLIC_KEY: o.publicKey ?? 'pk-lf-demo',
    LANGFUSE_SECRET_KEY: o.secretKey ?? 'sk-lf-demo',
    LANGFUSE_BASE_URL: o.langfuseUrl,
    BRIDGE_DATABASE: o.database,
    BRIDGE_RETRY_BASE_SECONDS: '0.05',
    BRIDGE_MAX_REQUESTS_PER_MINUTE: '600',
  };
  if (o.webhookUrl) {
    env.BRIDGE_WEBHOOK_URL = o.webhookUrl;
    env.BRIDGE_WEBHOOK_SECRET = o.secret ?? webhookSecret();
  }
  Object.assign(env, o.extra ?? {});
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** ms from spawn to exit */
  ms: number;
}

export class CliProcess {
  stdout = '';
  stderr = '';
  readonly startedAt = Date.now();
  readonly exited: Promise<Exit>;
  exit: Exit | null = null;

  constructor(
    readonly child: ChildProcess,
    readonly args: string[],
  ) {
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => (this.stdout += d));
    child.stderr?.on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        this.exit = { code, signal, ms: Date.now() - this.startedAt };
        live.delete(this);
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exit === null;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.exit === null) this.child.kill(signal);
  }

  /** stderr JSON log lines (non-JSON lines are skipped). */
  logs(): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const line of this.stderr.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* partial line */
      }
    }
    return out;
  }

  /** Waits for exit, SIGKILLing the child (and failing) after timeoutMs. */
  async wait(timeoutMs: number): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), timeoutMs);
    });
    const r = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (r === 'timeout') {
      this.kill('SIGKILL');
      await this.exited;
      throw new Error(`\`${this.args.join(' ')}\` did not exit within ${timeoutMs} ms\n--- stderr (tail) ---\n${this.stderr.slice(-3000)}`);
    }
    return r;
  }

  describe(): string {
    return `\`langfuse-bridge ${this.args.join(' ')}\` exit=${JSON.stringify(this.exit)}\n--- stdout (tail) ---\n${this.stdout.slice(-2000)}\n--- stderr (tail) ---\n${this.stderr.slice(-4000)}`;
  }
}

const live = new Set<CliProcess>();

export function spawnCli(args: string[], env: Record<string, string>, opts: { cwd?: string } = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env, cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = new CliProcess(child, args);
  live.add(p);
  return p;
}

/** Runs a command to completion. */
export async function runCli(args: string[], env: Record<string, string>, timeoutMs = 30_000, opts: { cwd?: string } = {}): Promise<CliProcess> {
  const p = spawnCli(args, env, opts);
  await p.wait(timeoutMs);
  return p;
}

/** SIGKILLs every child this test process started that is still running (afterEach/afterAll). */
export async function killLiveChildren(): Promise<void> {
  const all = [...live];
  for (const p of all) p.kill('SIGKILL');
  await Promise.all(all.map((p) => p.exited));
}

export interface StatusJson {
  database: string;
  streams: Array<{ project: string; source: string; streams: string[]; cursor: string | null; lastPollAt: string | null; lastOutcome: string | null; lastError: string | null }>;
  sinks: Array<{ name: string; state: string; pausedUntil: string | null; queued: number; delivering: number; retrying: number; delivered: number; dead: number }>;
  oldestPendingAt: string | null;
  recentDead: Array<{ eventId: string; sink: string; type: string; attempts: number; deadAt: string; lastError: string | null }>;
}

export async function statusJson(env: Record<string, string>): Promise<StatusJson> {
  const p = await runCli(['status', '--json'], env, 20_000);
  if (p.exit?.code !== 0) throw new Error(`status --json failed: ${p.describe()}`);
  return JSON.parse(p.stdout) as StatusJson;
}
