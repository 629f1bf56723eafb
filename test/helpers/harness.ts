/**
 * One test's world: a simulated Langfuse, a receiver, a scratch directory and the CLI processes the
 * test started. Tests that run concurrently each get their own; close() ends only this one's
 * processes (by pid) and servers.
 */
import path from 'node:path';
import type { SimulatorOptions } from '../../demo/simulator.js';
import { bridgeEnv, spawnCli, statusJson, tempDir, webhookSecret, type CliProcess, type StatusJson } from './cli.js';
import { startReceiver, type Receiver } from './receiver.js';
import { startSim, type LangfuseSimulator } from './sim.js';

export class Harness {
  readonly procs = new Set<CliProcess>();
  readonly secret = webhookSecret();
  private dbs = 0;

  constructor(
    readonly sim: LangfuseSimulator,
    readonly rx: Receiver,
    readonly dir: string,
    private readonly cleanupDir: () => void,
  ) {}

  /** A fresh database path in this test's directory. */
  db(name = `db${++this.dbs}`): string {
    return path.join(this.dir, `${name}.db`);
  }

  /** The bridge's environment for this world (webhook sink → this receiver, signed with this.secret). */
  env(extra: Record<string, string | undefined> = {}, database = this.db('main')): Record<string, string> {
    return bridgeEnv({ langfuseUrl: this.sim.url, database, webhookUrl: this.rx.url, secret: this.secret, extra });
  }

  spawn(args: string[], env: Record<string, string>): CliProcess {
    const p = spawnCli(args, env);
    this.procs.add(p);
    void p.exited.then(() => this.procs.delete(p));
    return p;
  }

  async run(args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<CliProcess> {
    const p = this.spawn(args, env);
    await p.wait(timeoutMs);
    return p;
  }

  status(env: Record<string, string>): Promise<StatusJson> {
    return statusJson(env);
  }

  async close(): Promise<void> {
    const live = [...this.procs];
    for (const p of live) p.kill('SIGKILL');
    await Promise.all(live.map((p) => p.exited));
    await Promise.allSettled([this.rx.stop(), this.sim.stop()]);
    this.cleanupDir();
  }
}

export async function harness(simOpts: SimulatorOptions = {}): Promise<Harness> {
  const [sim, rx] = await Promise.all([startSim(simOpts), startReceiver()]);
  const tmp = tempDir();
  return new Harness(sim, rx, tmp.dir, tmp.cleanup);
}

/** Runs fn with a fresh harness and always closes it. */
export async function withHarness<T>(simOpts: SimulatorOptions, fn: (h: Harness) => Promise<T>): Promise<T> {
  const h = await harness(simOpts);
  try {
    return await fn(h);
  } finally {
    await h.close();
  }
}
