// What monitors cost: CPU per evaluation of a 24 h window over 100,000 generations, the memory it
// holds meanwhile, the CPU of recording the facts, and the database growth per 100,000 items.
//   npm run build && node bench/diagnostics/monitors-cost.mjs            (BENCH_ITEMS=100000, BENCH_RUNS=7)
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Store } from '../../dist/store/index.js';
import { compileMonitors, factsOf, measureWindow } from '../../dist/monitors/index.js';

const ITEMS = Number(process.env.BENCH_ITEMS ?? 100_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const DAY = 86_400_000;
const GENERATIONS_PER_TRACE = 3;
const MODELS = ['gpt-4o', 'gpt-4o-mini', 'claude-3-5-sonnet', 'llama-3-70b'];
const TRACE_NAMES = ['rag-query', 'agent-run', 'summarize', 'classify'];

const dir = mkdtempSync(join(tmpdir(), 'bridge-monitors-bench-'));
const file = join(dir, 'b.db');
const store = new Store(file);
// Checkpoints and table sizes on a connection of its own: the Store keeps its connection to itself.
const db = new Database(file);
const project = 'bench-project';
const end = Math.floor(Date.now() / 60_000) * 60_000;
const start = end - DAY;

// Deterministic pseudo-random numbers, so two runs measure the same data.
let seed = 7;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

function generation(i) {
  const t = start + Math.floor((i / ITEMS) * DAY);
  const latency = 0.2 + rand() * rand() * 12;
  return {
    id: `obs-${i}`,
    traceId: `trace-${Math.floor(i / GENERATIONS_PER_TRACE)}`,
    type: 'GENERATION',
    name: 'llm-call',
    level: rand() < 0.03 ? 'ERROR' : 'DEFAULT',
    statusMessage: null,
    startTime: new Date(t).toISOString(),
    endTime: new Date(t + latency * 1000).toISOString(),
    model: MODELS[i % MODELS.length],
    promptTokens: 800,
    completionTokens: 200,
    totalTokens: 1000 + Math.floor(rand() * 500),
    usageDetails: null,
    costDetails: null,
    totalCost: rand() * 0.02,
    updatedAt: null,
    environment: rand() < 0.9 ? 'production' : 'staging',
    userId: null,
    sessionId: null,
    traceName: TRACE_NAMES[Math.floor(i / GENERATIONS_PER_TRACE) % TRACE_NAMES.length],
    tags: ['bench'],
    isRoot: false,
  };
}

const size = () => ['', '-wal'].reduce((n, s) => { try { return n + statSync(file + s).size; } catch { return n; } }, 0);
db.pragma('wal_checkpoint(TRUNCATE)');
const before = size();

// Recording: as the poller does, one transaction per slice of 1,000 items.
const SLICE = 1000;
const cpu0 = process.cpuUsage();
for (let i = 0; i < ITEMS; i += SLICE) {
  const observations = [];
  for (let k = i; k < Math.min(ITEMS, i + SLICE); k++) observations.push(generation(k));
  const facts = factsOf({ observations });
  store.write(() => store.monitors.putFacts(project, facts));
}
const record = process.cpuUsage(cpu0);
db.pragma('wal_checkpoint(TRUNCATE)');
const grown = size() - before;
const rows = db.prepare('SELECT kind, COUNT(*) AS n FROM monitor_facts GROUP BY kind').all();
let tableBytes = null;
try {
  tableBytes = db.prepare("SELECT name, SUM(pgsize) AS bytes FROM dbstat WHERE name LIKE 'monitor_facts%' GROUP BY name").all();
} catch {
  /* dbstat not compiled in */
}

const monitors = compileMonitors(
  [
    { name: 'error-rate-24h', source: 'generations', metric: 'errorRate', window: '1d', op: '>', alert: 0.05, sinks: ['s'] },
    { name: 'p95-latency-24h', source: 'generations', where: { model: 'gpt-4o' }, metric: 'p95', of: 'latency', window: '1d', op: '>', alert: 8, sinks: ['s'] },
    { name: 'p95-latency-24h-all', source: 'generations', metric: 'p95', of: 'latency', window: '1d', op: '>', alert: 8, sinks: ['s'] },
    { name: 'cost-24h', source: 'generations', where: { environment: 'production', traceName: 'rag-*' }, metric: 'sum', of: 'cost', window: '1d', op: '>', alert: 20, sinks: ['s'] },
    { name: 'trace-errors-24h', source: 'traces', metric: 'errorRate', window: '1d', op: '>', alert: 0.05, sinks: ['s'] },
  ],
  { sinks: ['s'], streams: ['traces', 'generations', 'scores'] },
);

const lines = [];
const rssBefore = process.memoryUsage().rss;
let rssPeak = rssBefore;
for (const m of monitors) {
  const times = [];
  let last;
  for (let r = 0; r < RUNS; r++) {
    const c = process.cpuUsage();
    last = measureWindow(store, project, m, end + 1);
    const u = process.cpuUsage(c);
    times.push((u.user + u.system) / 1000);
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  }
  times.sort((a, b) => a - b);
  lines.push(`  ${m.name.padEnd(22)} ${String(last.aggregate.samples).padStart(7)} items  median ${times[Math.floor(times.length / 2)].toFixed(1).padStart(6)} ms CPU  (min ${times[0].toFixed(1)}, max ${times.at(-1).toFixed(1)})  value ${Number(last.value).toPrecision(4)}`);
}

const mb = (b) => `${(b / 1e6).toFixed(1)} MB`;
const per100k = (b, n) => mb((b / n) * 100_000);
const facts = rows.reduce((n, r) => n + r.n, 0);
console.log(`monitors cost: ${ITEMS} generations over 24 h (${GENERATIONS_PER_TRACE} per trace), ${RUNS} runs per monitor, node ${process.version}`);
console.log(`recording: ${((record.user + record.system) / 1000).toFixed(0)} ms CPU for ${facts} facts (${rows.map((r) => `${r.n} ${r.kind}`).join(', ')}): ${(((record.user + record.system) / ITEMS)).toFixed(1)} µs per generation`);
console.log(`database growth: ${mb(grown)} for ${ITEMS} generations and their traces = ${per100k(grown, ITEMS)} per 100,000 generations (${Math.round(grown / facts)} bytes per fact row)`);
if (tableBytes) console.log(`  by b-tree: ${tableBytes.map((t) => `${t.name} ${mb(t.bytes)}`).join(', ')}`);
console.log('evaluation of one 24 h window (SQL aggregate, nothing held in memory):');
for (const l of lines) console.log(l);
console.log(`memory: RSS ${mb(rssBefore)} before the evaluations, ${mb(rssPeak)} at most during them`);
db.close();
store.close();
rmSync(dir, { recursive: true, force: true });
