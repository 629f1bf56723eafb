/**
 * The Docker image, without a Docker engine: the Dockerfile is read instruction by instruction, its
 * build stage's last RUN is run on a scratch copy of the source tree (an installed node_modules as
 * `npm ci` leaves it), the runtime stage's COPY lines pick the runtime tree from the result, and that
 * tree is checked: no build leftovers, and `node dist/cli.js` runs there, SQLite addon included. The
 * HEALTHCHECK command is run as written against a bridge and a worker.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, assertBuilt, bridgeEnv, killLiveChildren, spawnCli, tempDir } from './helpers/cli.js';
import { startSim, type LangfuseSimulator } from './helpers/sim.js';
import { waitFor } from './helpers/wait.js';
import { REDIS_URL, cleanPrefix, redisClient, uniquePrefix } from './queue/helpers.js';

interface Instruction {
  op: string;
  args: string;
}

/** Instructions per stage, continuation lines joined, comments dropped. */
function parseDockerfile(text: string): Instruction[][] {
  const stages: Instruction[][] = [];
  let line = '';
  for (const raw of text.split('\n')) {
    // Comment lines, also inside a continued instruction (Docker drops them there too).
    if (/^\s*#/.test(raw)) continue;
    line += raw.replace(/\\\s*$/, ' ');
    if (/\\\s*$/.test(raw)) continue;
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(line.trim() ? line : '');
    line = '';
    if (!m) continue;
    const ins = { op: m[1]!, args: m[2]!.trim() };
    if (ins.op === 'FROM') stages.push([]);
    stages.at(-1)?.push(ins);
  }
  return stages;
}

const DOCKERFILE = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const stages = parseDockerfile(DOCKERFILE);
const build = stages[0]!;
const runtime = stages.at(-1)!;

function healthcheckArgv(): string[] {
  const hc = runtime.find((i) => i.op === 'HEALTHCHECK');
  const m = /\bCMD\s+(\[.*\])\s*$/.exec(hc?.args ?? '');
  if (!m) throw new Error(`no HEALTHCHECK … CMD [exec form] in the runtime stage: ${hc?.args}`);
  return JSON.parse(m[1]!) as string[];
}

function filesUnder(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => statSync(path.join(dir, f)).isFile());
}

describe('the Dockerfile', () => {
  it('needs no BuildKit frontend from the internet and declares no VOLUME', () => {
    expect(DOCKERFILE).not.toMatch(/^\s*#\s*syntax\s*=/im);
    expect(stages.flat().filter((i) => i.op === 'VOLUME')).toEqual([]);
  });

  it('stops the build at a failed install', () => {
    const shell = build.find((i) => i.op === 'SHELL');
    expect(JSON.parse(shell?.args ?? '[]')).toEqual(['/bin/bash', '-euo', 'pipefail', '-c']);
    const install = build.find((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args));
    expect(install?.args).toMatch(/npm ci\b[^;]*;.*npm ls --all\b.*test -x node_modules\/\.bin\/tsc.*require\('better-sqlite3'\)/);
  });

  it('serves the ops port by default and probes /healthz with node', () => {
    const env = runtime.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ');
    expect(env).toMatch(/\bBRIDGE_HTTP_PORT=9464\b/);
    expect(env).toMatch(/\bBRIDGE_HTTP_HOST=0\.0\.0\.0\b/);
    expect(runtime.find((i) => i.op === 'EXPOSE')?.args).toBe('9464');
    const argv = healthcheckArgv();
    expect(argv[0]).toBe('node');
    expect(argv.join(' ')).toMatch(/\/healthz/);
    expect(runtime.find((i) => i.op === 'USER')?.args).toBe('node');
  });
});

describe('docker-compose.yml', () => {
  const text = readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');
  /** The top-level services, each as its block of lines. */
  const services = new Map<string, string>();
  const body = text.split(/^services:\s*$/m)[1]!.split(/^\S/m)[0]!;
  for (const block of body.split(/^(?= {2}[a-z][\w-]*:\s*$)/m)) {
    const name = /^ {2}([a-z][\w-]*):/.exec(block)?.[1];
    if (name) services.set(name, block);
  }

  it('builds one image, which the bridge and the workers both run; only the bridge has a volume', () => {
    expect([...services.keys()].sort()).toEqual(['bridge', 'redis', 'worker']);
    expect(text.match(/^\s+build:/gm)).toHaveLength(1);
    expect(services.get('bridge')).toMatch(/^ {4}build: \.$/m);
    const image = /^ {4}image: (\S+)$/m.exec(services.get('bridge')!)?.[1];
    expect(image).toBeTruthy();
    expect(/^ {4}image: (\S+)$/m.exec(services.get('worker')!)?.[1]).toBe(image);
    expect(services.get('bridge')).toMatch(/^ {4}volumes:\n {6}- bridge-data:\/app\/data$/m);
    expect(services.get('worker')).not.toMatch(/volumes:/);
  });
});

describe('the runtime image’s files', () => {
  const scratch = tempDir('lfb-image-');
  const app = path.join(scratch.dir, 'app');
  const rt = path.join(scratch.dir, 'runtime');
  let pruneOutput = '';

  beforeAll(() => {
    // The build stage as it stands after `npm ci`: its COPY lines, with the installed node_modules.
    mkdirSync(app);
    for (const f of ['package.json', 'package-lock.json', '.npmrc', 'tsconfig.json', 'src', 'scripts/prune-runtime.mjs', 'node_modules']) {
      cpSync(path.join(ROOT, f), path.join(app, f), { recursive: true, verbatimSymlinks: true });
    }
    const runs = build.filter((i) => i.op === 'RUN');
    const last = runs.at(-1)!.args.replaceAll('/app', app);
    expect(last).toMatch(/npm run build;.*npm prune --omit=dev.*;\s*node scripts\/prune-runtime\.mjs /);
    const r = spawnSync('bash', ['-euo', 'pipefail', '-c', last], { cwd: app, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: process.env.HOME } });
    if (r.status !== 0) throw new Error(`the build stage's last RUN failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    pruneOutput = r.stdout.split('\n').find((l) => l.startsWith('prune-runtime:')) ?? '';
    // The runtime stage: exactly its COPY --from=build lines.
    mkdirSync(rt);
    for (const c of runtime.filter((i) => i.op === 'COPY')) {
      const m = /^--from=build\s+\/app\/(\S+)\s+(\S+)$/.exec(c.args);
      if (!m) throw new Error(`unexpected COPY in the runtime stage: ${c.args}`);
      const to = m[2]!.endsWith('/') ? path.join(rt, m[2]!, path.basename(m[1]!)) : path.join(rt, m[2]!);
      cpSync(path.join(app, m[1]!), to, { recursive: true, verbatimSymlinks: true });
    }
  }, 240_000);
  afterAll(() => scratch.cleanup());

  it('holds no build leftovers: object files, C sources, source maps, type declarations, the demo', () => {
    const files = filesUnder(rt);
    expect(files.length).toBeGreaterThan(100);
    expect(files.filter((f) => /\.(o|a|c|cc|cpp|h|hpp|map|gyp|mk)$|\.d\.[cm]?ts$|(^|\/)Makefile$/.test(f))).toEqual([]);
    expect(files.filter((f) => /\.tsx?$/.test(f))).toEqual([]);
    expect(existsSync(path.join(rt, 'dist', 'demo'))).toBe(false);
    expect(filesUnder(path.join(rt, 'dist')).filter((f) => /(^|\/)(simulator|sim-data|main)\.js$/.test(f))).toEqual([]);
    expect(existsSync(path.join(rt, 'dist', 'cli.js'))).toBe(true);
    expect(readdirSync(path.join(rt, 'node_modules', 'better-sqlite3', 'build', 'Release'))).toEqual(['better_sqlite3.node']);
    for (const gone of ['deps', 'src']) expect(existsSync(path.join(rt, 'node_modules', 'better-sqlite3', gone))).toBe(false);
    // Development dependencies are not there; licences are.
    for (const dev of ['typescript', 'vitest', '@types/node']) expect(existsSync(path.join(rt, 'node_modules', dev))).toBe(false);
    expect(existsSync(path.join(rt, 'node_modules', 'better-sqlite3', 'LICENSE'))).toBe(true);
    const kb = Number(execFileSync('du', ['-sk', rt], { encoding: 'utf8' }).split('\t')[0]);
    // What the README's deployment section states (measured here): well under 30 MB on disk.
    console.log(`runtime tree: ${(kb / 1024).toFixed(1)} MB on disk, ${files.length} files; ${pruneOutput.trim()}`);
    expect(kb).toBeLessThan(30 * 1024);
  });

  it('runs `node dist/cli.js` there: --help, a test event through SQLite, and every module and dependency loads', () => {
    const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', BRIDGE_DATABASE: path.join(scratch.dir, 'data', 'bridge.db') };
    const help = spawnSync(process.execPath, ['dist/cli.js', '--help'], { cwd: rt, encoding: 'utf8', env, timeout: 60_000 });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/Usage: langfuse-bridge/);
    const t = spawnSync(process.execPath, ['dist/cli.js', 'test-event'], { cwd: rt, encoding: 'utf8', env, timeout: 60_000 });
    expect(t.status, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/^✔ stdout: delivered evt_/m);
    // Lazily loaded modules too (the Redis backend, the worker): import every one, and every dependency.
    const probe = path.join(rt, 'load-all.mjs');
    writeFileSync(
      probe,
      `import { readdirSync, readFileSync } from 'node:fs';
const mods = readdirSync('dist', { recursive: true }).filter((f) => f.endsWith('.js') && f !== 'cli.js');
for (const f of mods) await import('./dist/' + f);
const deps = Object.keys(JSON.parse(readFileSync('package.json', 'utf8')).dependencies);
for (const d of deps) await import(d);
console.log(mods.length + ' modules, ' + deps.length + ' dependencies');`,
    );
    const all = spawnSync(process.execPath, [probe], { cwd: rt, encoding: 'utf8', env, timeout: 60_000 });
    expect(all.status, all.stderr).toBe(0);
    expect(all.stdout).toMatch(/^[1-9]\d* modules, [1-9]\d* dependencies$/m);
  }, 240_000);
});

describe('the HEALTHCHECK command', () => {
  let sim: LangfuseSimulator;
  const tmp = tempDir('lfb-hc-');
  const prefix = uniquePrefix('hc');

  beforeAll(async () => {
    assertBuilt();
    sim = await startSim({ seed: 3 });
  });
  afterAll(async () => {
    await killLiveChildren();
    const redis = await redisClient();
    await cleanPrefix(redis, prefix);
    redis.disconnect();
    await sim?.stop();
    tmp.cleanup();
  });

  function probe(port: string): number | null {
    const [cmd, ...args] = healthcheckArgv();
    return spawnSync(cmd === 'node' ? process.execPath : cmd!, args, { env: { PATH: process.env.PATH, BRIDGE_HTTP_PORT: port }, timeout: 10_000 }).status;
  }

  it('passes against a bridge and a worker serving /healthz, fails where nothing answers', async () => {
    const env = bridgeEnv({ langfuseUrl: sim.url, database: path.join(tmp.dir, 'hc.db'), extra: { BRIDGE_HTTP_PORT: '0', BRIDGE_POLL_INTERVAL_SECONDS: '1' } });
    const bridge = spawnCli(['run'], env);
    const bridgePort = await waitFor(() => /"url":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(bridge.stderr)?.[1], 20_000, 'the bridge’s ops server');
    expect(probe(bridgePort)).toBe(0);

    const worker = spawnCli(['worker'], { ...env, BRIDGE_REDIS_URL: REDIS_URL, BRIDGE_QUEUE_PREFIX: prefix });
    const workerPort = await waitFor(() => /"url":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(worker.stderr)?.[1], 20_000, 'the worker’s ops server');
    await waitFor(() => /worker taking jobs/.test(worker.stderr), 20_000, 'the worker to connect');
    expect(probe(workerPort)).toBe(0);

    for (const p of [bridge, worker]) p.kill('SIGTERM');
    for (const p of [bridge, worker]) expect((await p.wait(15_000)).code, p.describe()).toBe(0);
    expect(probe(bridgePort)).toBe(1);
    expect(probe(workerPort)).toBe(1);
  });
});
