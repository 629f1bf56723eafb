// Summarises a V8 .cpuprofile (from `node --cpu-prof`): top functions by self time, and self time per file.
// Usage: node bench/lib/profile-summary.mjs <file.cpuprofile> [top=25]
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT } from './index.mjs';

function shortUrl(url) {
  if (!url) return '';
  let p = url;
  try {
    if (url.startsWith('file://')) p = relative(ROOT, fileURLToPath(url));
  } catch {
    /* keep as is */
  }
  return p;
}

export function summarizeProfile(file, top = 25) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  // samples[i] was taken timeDeltas[i] µs after samples[i-1]; attribute each delta to its sample's node.
  const deltas = prof.timeDeltas ?? [];
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = deltas[i + 1] ?? 0;
    self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + dt);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byFn = new Map();
  const byFile = new Map();
  for (const [id, us] of self) {
    const n = byId.get(id);
    const cf = n.callFrame;
    const url = shortUrl(cf.url);
    const key = `${cf.functionName || '(anonymous)'}  ${url ? `${url}:${cf.lineNumber + 1}` : ''}`.trim();
    byFn.set(key, (byFn.get(key) ?? 0) + us);
    const fileKey = url
      ? url.replace(/^node_modules\/([^/]+(?:\/[^/]+)?)\/.*/, (m, pkg) => (pkg.startsWith('@') ? `node_modules/${pkg}` : `node_modules/${pkg.split('/')[0]}`))
      : cf.functionName.startsWith('(')
        ? cf.functionName
        : '(native / builtins)';
    byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + us);
  }
  const rows = (m) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => `${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${k}`);
  return { totalMs: total / 1000, functions: rows(byFn), files: rows(byFile) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node bench/lib/profile-summary.mjs <file.cpuprofile> [top]');
    process.exit(2);
  }
  const s = summarizeProfile(file, Number(process.argv[3] ?? 25));
  console.log(`sampled ${s.totalMs.toFixed(0)} ms\n\nself time by function:\n${s.functions.join('\n')}\n\nself time by file:\n${s.files.join('\n')}`);
}
