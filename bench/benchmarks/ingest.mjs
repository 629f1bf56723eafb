// ingest: the built CLI's `backfill` against a simulated Langfuse (in a child process) vs a loop that
// only pages and parses the same endpoints.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { summarizeProfile } from '../lib/profile-summary.mjs';
import { PUBLIC_KEY, SECRET_KEY, cleanEnv, forkHelper, int, log, mb, removeDir, runNode, secs, status, tempDir, fix } from '../lib/index.mjs';

const HOUR = 3_600_000;
// Bytes the bridge had written to disk (database, WAL and checkpoints): steady from run to run, unlike time.
const written = (r) => (r.writtenBytes === null ? '' : `, ${(r.writtenBytes / 1e6).toFixed(0)} MB written`);

export async function runIngest(opts = {}) {
  const traces = Number(process.env.BENCH_INGEST_TRACES ?? 20_000);
  const runs = Math.max(1, Number(process.env.BENCH_INGEST_RUNS ?? 2));
  const to = Math.floor(Date.now() / HOUR) * HOUR - HOUR;
  const from = to - 24 * HOUR;
  log(`ingest: generating ${int(traces)} traces × 5 observations + 1 score over 24 h in a simulator child…`);
  const sim = forkHelper('sim-server.mjs', {
    generation: 'v4',
    publicKey: PUBLIC_KEY,
    secretKey: SECRET_KEY,
    batches: [{ from, to, traces, observationsPerTrace: 5, scoresPerTrace: 1 }],
  });
  const dirs = [];
  try {
    const ready = await sim.ready;
    const g = ready.generated[0];
    log(`ingest: simulator at ${ready.url}: ${int(g.observations)} observations (${int(g.generations)} generations), ${int(g.traces)} traces, ${int(g.scores)} scores`);
    const env = (extra = {}) =>
      cleanEnv({ LANGFUSE_PUBLIC_KEY: PUBLIC_KEY, LANGFUSE_SECRET_KEY: SECRET_KEY, LANGFUSE_BASE_URL: ready.url, ...extra });

    const baseline = async () => {
      const r = await runNode(['bench/baselines/ingest.mjs', ready.url, String(from), String(to)], { env: env(), captureStdout: true });
      if (r.code !== 0) throw new Error(`baseline failed (${r.code}): ${r.stderr.slice(-2000)}`);
      return { ...r, out: JSON.parse(r.stdout.trim().split('\n').pop()) };
    };
    const extraFlags = (process.env.BENCH_BRIDGE_NODE_FLAGS ?? '').split(' ').filter(Boolean);
    const bridge = async (flags = []) => {
      const nodeFlags = [...extraFlags, ...flags];
      const dir = tempDir('ingest');
      dirs.push(dir);
      const r = await runNode([process.env.BENCH_BRIDGE_CLI ?? 'dist/cli.js', 'backfill', '--from', new Date(from).toISOString(), '--to', new Date(to).toISOString()], {
        env: env({ BRIDGE_DATABASE: join(dir, 'bridge.db'), BRIDGE_MAX_REQUESTS_PER_MINUTE: '100000', LOG_LEVEL: 'info' }),
        nodeFlags,
      });
      const done = r.stderr
        .split('\n')
        .filter((l) => l.includes('"backfill done'))
        .map((l) => JSON.parse(l))
        .pop();
      if (r.code !== 0 || !done) throw new Error(`bridge backfill failed (exit ${r.code}): ${r.stderr.slice(-2000)}`);
      const calls = await sim.ask({ cmd: 'requests', reset: true });
      return { ...r, done, calls, dir };
    };

    // Warm-up: the simulator sorts lazily on its first read; the JIT of both children is cold either way.
    await baseline();
    await sim.ask({ cmd: 'reset' });
    const b = [];
    const br = [];
    for (let i = 0; i < runs; i++) {
      const x = await baseline();
      await sim.ask({ cmd: 'reset' });
      b.push(x);
      log(`ingest: baseline run ${i + 1}: ${secs(x.ms)} (CPU ${secs(x.cpuMs)}), ${int(x.out.calls)} calls, ${int(x.out.observations + x.out.scores)} rows, peak RSS ${mb(x.maxRssBytes)}`);
      const y = await bridge();
      br.push(y);
      log(`ingest: bridge run ${i + 1}: ${secs(y.ms)} (CPU ${secs(y.cpuMs)}), ${int(y.done.events)} events, ${int(y.done.delivered)} delivered, ${int(y.calls.total)} calls, peak RSS ${mb(y.maxRssBytes)}${written(y)}`);
      removeDir(y.dir);
    }
    const bestB = b.reduce((a, x) => (x.ms < a.ms ? x : a));
    const bestBr = br.reduce((a, x) => (x.ms < a.ms ? x : a));
    const peakRss = Math.max(...br.map((x) => x.maxRssBytes));
    const ratio = bestBr.ms / bestB.ms;
    const events = bestBr.done.delivered;
    const result = {
      name: 'ingest',
      ratio,
      bridgeMs: bestBr.ms,
      baselineMs: bestB.ms,
      // CPU of every thread: steadier than wall time on a shared machine, and it shows how much work is done.
      bridgeCpuMs: Math.min(...br.map((x) => x.cpuMs)),
      bridgeWrittenBytes: bestBr.writtenBytes,
      baselineCpuMs: Math.min(...b.map((x) => x.cpuMs)),
      events,
      eventsPerSec: events / (bestBr.ms / 1000),
      rowsPerSec: (bestB.out.observations + bestB.out.scores) / (bestBr.ms / 1000),
      peakRss,
      baselineRss: Math.max(...b.map((x) => x.maxRssBytes)),
      bridgeCalls: bestBr.calls.byPath,
      baselineCalls: bestB.out.calls,
      ok: ratio <= 1.5 && peakRss <= 200 * 1048576,
    };
    result.line =
      `ingest   ratio ${fix(ratio)}  (bridge ${secs(result.bridgeMs)}, baseline ${secs(result.baselineMs)}; CPU ${secs(result.bridgeCpuMs)} vs ${secs(result.baselineCpuMs)} = ${fix(result.bridgeCpuMs / result.baselineCpuMs)}×)  ${int(result.eventsPerSec)} events/s ` +
      `(${int(events)} events from ${int(bestB.out.observations + bestB.out.scores)} rows${written(bestBr)})  peak RSS ${mb(peakRss)} (baseline ${mb(result.baselineRss)})  ` +
      `target ≤1.5, ≤200 MB  ${status(result.ok)}`;

    // Not a target: what the durable writes of as many events cost alone (no HTTP, parsing or detection),
    // to show how much of the ratio they account for.
    if (process.env.BENCH_INGEST_FLOOR !== '0') {
      log('ingest: measuring the durable writes alone (bench/diagnostics/storage-floor.mjs)…');
      const f = await runNode(['bench/diagnostics/storage-floor.mjs'], {
        env: cleanEnv({ DIAG_EVENTS: String(events), DIAG_COMMITS: String(Math.max(1, Math.round(events / 2_250))), DIAG_RUNS: '1', DIAG_JSON: '1' }),
        captureStdout: true,
      });
      const floor = f.code === 0 ? JSON.parse(f.stdout.trim().split('\n').pop()) : null;
      if (floor) {
        result.floor = floor;
        result.lines = [
          result.line,
          `         durable writes alone (diagnostics/storage-floor): ${secs(floor.hashed.ms)} = ${fix(floor.hashed.ms / bestB.ms)}× the baseline; ` +
            `ids in order, which real ids (hashes) never are: ${secs(floor.ordered.ms)} = ${fix(floor.ordered.ms / bestB.ms)}×  not a target`,
        ];
      }
    }

    if (process.env.BENCH_PROFILE === '1' || (opts.profileOnMiss && !result.ok)) {
      const profDir = tempDir('prof');
      dirs.push(profDir);
      log('ingest: profiling one more bridge run with --cpu-prof…');
      const p = await bridge(['--cpu-prof', '--cpu-prof-dir', profDir]);
      removeDir(p.dir);
      const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
      if (file) {
        const s = summarizeProfile(join(profDir, file), 20);
        result.profile = s;
        log(`ingest profile (${fix(s.totalMs / 1000)} s sampled): top self time by function\n${s.functions.join('\n')}\nby file\n${s.files.join('\n')}`);
      }
    }
    return result;
  } finally {
    await sim.stop();
    for (const d of dirs) removeDir(d);
  }
}
