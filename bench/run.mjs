// Benchmarks of langfuse-bridge, each figure a ratio against a baseline measured in the same run.
//   npm run bench                       all five in benchmarks/ (scale at 1e6 and 4e6 rows; queue-scale
//                                       only with a Redis, else skipped)
//   node bench/run.mjs ingest deliver   a subset
//   BENCH_SCALE=1e6,1e7 node bench/run.mjs scale
// See bench/README.md for the knobs.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DEMO_DIST, DIST, log } from './lib/index.mjs';

const ALL = ['ingest', 'deliver', 'idle', 'scale', 'queue-scale'];
const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = asked.filter((a) => !ALL.includes(a));
if (unknown.length) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; choose from ${ALL.join(', ')}`);
  process.exit(2);
}
const which = asked.length ? ALL.filter((a) => asked.includes(a)) : ALL;
if (!existsSync(join(DIST, 'cli.js')) || !existsSync(join(DEMO_DIST, 'simulator.js'))) {
  console.error('the benchmarks run the built bridge and simulator: npm run build && npm run build:demo first (npm run bench does both)');
  process.exit(2);
}

const os = await import('node:os');
const loadAtStart = os.loadavg()[0];
if (loadAtStart > 1) log(`note: load average ${loadAtStart.toFixed(1)} on ${os.cpus().length} cores before starting: other work on this machine will add noise`);
const results = [];
const started = Date.now();
for (const name of which) {
  const began = Date.now();
  try {
    const mod = await import(`./benchmarks/${name}.mjs`);
    // benchmarks/queue-scale.mjs exports runQueueScale
    const fn = mod[`run${name.replace(/(^|-)(\w)/g, (_, _dash, c) => c.toUpperCase())}`];
    const r = await fn({ profileOnMiss: process.env.BENCH_PROFILE_ON_MISS === '1' });
    results.push(...(Array.isArray(r) ? r : [r]));
  } catch (err) {
    results.push({ name, ok: false, line: `${name.padEnd(8)} FAILED: ${(err && err.stack) || err}` });
  }
  log(`${name}: done in ${((Date.now() - began) / 1000).toFixed(0)} s`);
}

const lines = results.flatMap((r) => (Array.isArray(r.lines) ? r.lines : [r.line]));
process.stdout.write(
  `\nlangfuse-bridge bench (${new Date().toISOString()}, node ${process.version}, ${os.cpus().length} cores, ${((Date.now() - started) / 1000).toFixed(0)} s, ` +
    `load average ${loadAtStart.toFixed(1)} at start, ${os.loadavg()[0].toFixed(1)} at end)\n`,
);
process.stdout.write(`${lines.join('\n')}\n`);
if (process.env.BENCH_JSON) {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(process.env.BENCH_JSON, JSON.stringify(results, null, 2));
}
process.exitCode = results.every((r) => r.ok) ? 0 : 1;
