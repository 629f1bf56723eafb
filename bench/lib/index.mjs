// Shared helpers for the benchmarks, baselines and diagnostics: paths, child processes, timing, formatting.
import { fork, spawn } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const LIB_DIR = dirname(fileURLToPath(import.meta.url));
export const ROOT = dirname(dirname(LIB_DIR));
/** The bridge as `npm run build` leaves it. */
export const DIST = join(ROOT, 'dist');
/** The simulated Langfuse as `npm run build:demo` leaves it. */
export const DEMO_DIST = join(ROOT, 'dist-demo');
export const RSS_PRELOAD = join(LIB_DIR, 'rss-preload.cjs');

export const PUBLIC_KEY = 'pk-lf-bench';
export const SECRET_KEY = 'sk-lf-bench';

export const now = () => performance.now();

export function int(n) {
  return Math.round(n).toLocaleString('en-US');
}
export function fix(n, d = 2) {
  return Number(n).toFixed(d);
}
export function secs(ms) {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}
export function mb(bytes) {
  return `${(bytes / 1048576).toFixed(bytes < 10 * 1048576 ? 1 : 0)} MB`;
}

export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), `lfb-bench-${prefix}-`));
}
export function removeDir(dir) {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    /* best effort */
  }
}

/** Size on disk of a SQLite database: the file plus its -wal and -shm. */
export function dbSize(file) {
  let total = 0;
  const parts = {};
  for (const suffix of ['', '-wal', '-shm']) {
    const p = file + suffix;
    const n = existsSync(p) ? statSync(p).size : 0;
    parts[suffix || 'db'] = n;
    total += n;
  }
  return { total, ...parts };
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A minimal environment for a child: no inherited BRIDGE_/LANGFUSE_/proxy settings. */
export function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(BRIDGE_|LANGFUSE_|SLACK_|PAGERDUTY_|HTTPS?_PROXY$|NO_PROXY$|NODE_OPTIONS$|LOG_LEVEL$)/i.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/**
 * Runs `node <args>` with the max-RSS preload; stdout goes to /dev/null unless captured.
 * Resolves with wall time (spawn → exit), exit code, captured stderr/stdout and peak RSS.
 */
export function runNode(args, { env, captureStdout = false, nodeFlags = [] } = {}) {
  return new Promise((resolve, reject) => {
    const devnull = captureStdout ? null : openSync('/dev/null', 'w');
    const started = now();
    const child = spawn(process.execPath, [...nodeFlags, '--require', RSS_PRELOAD, ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', captureStdout ? 'pipe' : devnull, 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => (stderr += d));
    if (captureStdout) {
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d) => (stdout += d));
    }
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      const ms = now() - started;
      if (devnull !== null) closeSync(devnull);
      // let the stderr pipe drain
      setImmediate(() => {
        const m = /BENCH_MAXRSS_KB (\d+)/.exec(stderr);
        const c = /BENCH_CPU_US (\d+)/.exec(stderr);
        const w = /BENCH_WRITE_BYTES (\d+)/.exec(stderr);
        resolve({ code, signal, ms, stderr, stdout, maxRssBytes: m ? Number(m[1]) * 1024 : null, cpuMs: c ? Number(c[1]) / 1000 : null, writtenBytes: w ? Number(w[1]) : null, pid: child.pid });
      });
    });
  });
}

/**
 * Forks a child helper of bench/lib (sim-server.mjs, receiver.mjs) with an IPC channel. `ready` resolves
 * with its first message; `ask(msg)` sends a request and resolves with the reply carrying the same `id`.
 */
export function forkHelper(file, config) {
  const child = fork(join(LIB_DIR, file), [JSON.stringify(config)], {
    cwd: ROOT,
    env: cleanEnv(),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [],
  });
  let nextId = 1;
  const waiting = new Map();
  let readyResolve;
  let readyReject;
  const ready = new Promise((res, rej) => {
    readyResolve = res;
    readyReject = rej;
  });
  child.on('message', (m) => {
    if (m && m.type === 'ready') return readyResolve(m);
    const w = waiting.get(m?.id);
    if (w) {
      waiting.delete(m.id);
      w(m);
    }
  });
  child.on('exit', (code) => readyReject(new Error(`${file} exited with code ${code} before it was ready`)));
  return {
    child,
    ready,
    ask(msg) {
      const id = nextId++;
      return new Promise((res) => {
        waiting.set(id, res);
        child.send({ ...msg, id });
      });
    },
    async stop() {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.send({ cmd: 'stop' });
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    },
  };
}

/** A logger that drops everything (pino, as the bridge uses). */
export async function silentLogger() {
  const { silentLogger: make } = await import(join(DIST, 'ops/logger.js'));
  return make();
}

export function status(ok) {
  return ok ? 'OK' : 'MISS';
}

export function log(...parts) {
  process.stderr.write(`${parts.join(' ')}\n`);
}
