// Diagnostic (the ingest benchmark also runs it, for its second line, not judged): what the durable
// writes of the ingest benchmark cost on their own, through the Store's real code paths, with no HTTP,
// parsing, detection or delivery.
// Per event: one seen lookup and write, one event and one outbox row written claimed, then settled
// delivered; 72,000 events in 32 commits, bodies of the benchmark's mean size (471 bytes).
// Two key orders: `hashed` (event and entity ids are hashes, as in real data: each lands at a random
// place in its index) and `ordered` (the same ids sorted: the best case no real data gives).
//   DIAG_EVENTS=72000     events written (the ingest benchmark's count)
//   DIAG_PREFILL=300000   rows already in the database (seen, events, delivered outbox) before measuring
//   DIAG_RUNS=3           rounds; each round runs both orders, alternating
//   DIAG_COMMITS=32       commits the events are spread over (the benchmark's backfill makes 32)
//   DIAG_JSON=1           also print the medians as one JSON line (for bench/benchmarks/ingest.mjs)
// Usage: node bench/diagnostics/storage-floor.mjs
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST, int, removeDir, tempDir } from '../lib/index.mjs';

const { Store } = await import(join(DIST, 'store/index.js'));

const N = Number(process.env.DIAG_EVENTS ?? 72_000);
const COMMITS = Number(process.env.DIAG_COMMITS ?? 32);
const PREFILL = Number(process.env.DIAG_PREFILL ?? 0);
const RUNS = Number(process.env.DIAG_RUNS ?? 3);
const BODY = 'x'.repeat(471);
const PROJECT = 'bench-project';
const hashed = Array.from({ length: N }, (_, i) => createHash('md5').update(`e${i}`).digest('hex'));
const ordered = [...hashed].sort();

const writtenBytes = () => Number(/write_bytes: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))?.[1] ?? 0);
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function fill(store, n) {
  const now = Date.now() - 86_400_000;
  const ids = Array.from({ length: n }, (_, i) => createHash('md5').update(`p${i}`).digest('hex'));
  for (let k = 0; k < n; k += 50_000) {
    store.write(() => {
      const part = ids.slice(k, k + 50_000);
      for (const id of part) store.putSeen(PROJECT, { kind: 'obs', id, version: 'v', level: 0, created: 1, detail: null }, now);
      store.enqueue(part.map((id) => ({ id: `evt_${id}`, type: 'trace.created', ts: '', body: BODY, sinks: ['stdout'] })), {}, now);
    });
  }
  // Its own connection: the Store keeps its connection to itself.
  const db = new Database(store.file);
  db.exec(`UPDATE outbox SET status = 'delivered', delivered_at = created_at`);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

function run(ids) {
  const dir = tempDir('floor');
  const store = new Store(join(dir, 'b.db'));
  try {
    if (PREFILL) fill(store, PREFILL);
    const w0 = writtenBytes();
    const c0 = cpuMs();
    const t0 = performance.now();
    const per = Math.ceil(N / COMMITS);
    for (let c = 0; c < COMMITS; c++) {
      const now = Date.now();
      const claimed = [];
      const claimer = {
        origin: null,
        leaseUntil: () => now + 120_000,
        claimed: (row) => claimed.push({ seq: row.seq, eventId: row.eventId, sink: row.sink, status: 'delivered' }),
        queued: () => undefined,
      };
      store.write(() => {
        const events = [];
        for (let i = c * per; i < Math.min(N, (c + 1) * per); i++) {
          const id = ids[i];
          if (!store.getSeen(PROJECT, 'obs', id)) store.putSeen(PROJECT, { kind: 'obs', id, version: '2026-11-26T11:08:39.385Z', level: 0, created: 1, detail: null }, now);
          events.push({ id: `evt_${id}`, type: 'generation.created', ts: '2026-11-26T11:08:39.385Z', body: BODY, sinks: ['stdout'] });
        }
        store.enqueue(events, { origin: 'backfill:floor' }, now, claimer);
      });
      // Settled as the dispatcher does: a few hundred outcomes a transaction.
      for (let k = 0; k < claimed.length; k += 500) store.settle(claimed.slice(k, k + 500));
    }
    return { ms: performance.now() - t0, cpuMs: cpuMs() - c0, bytes: writtenBytes() - w0 };
  } finally {
    store.close();
    removeDir(dir);
  }
}

console.log(`storage floor: ${int(N)} events in ${COMMITS} commits${PREFILL ? `, into a database already holding ${int(PREFILL)} of each row` : ', fresh database'}`);
const results = { hashed: [], ordered: [] };
for (let r = 0; r < RUNS; r++) {
  for (const [name, ids] of [['hashed', hashed], ['ordered', ordered]]) {
    const x = run(ids);
    results[name].push(x);
    console.log(`  ${name.padEnd(8)} ${(x.ms / 1000).toFixed(2)} s wall, ${(x.cpuMs / 1000).toFixed(2)} s CPU, ${(x.bytes / 1e6).toFixed(0)} MB written`);
  }
}
const med = (a, k) => [...a.map((x) => x[k])].sort((p, q) => p - q)[Math.floor(a.length / 2)];
for (const name of ['hashed', 'ordered']) {
  console.log(`median ${name.padEnd(8)} ${(med(results[name], 'ms') / 1000).toFixed(2)} s wall, ${(med(results[name], 'cpuMs') / 1000).toFixed(2)} s CPU, ${(med(results[name], 'bytes') / 1e6).toFixed(0)} MB written (${(med(results[name], 'bytes') / N / 1024).toFixed(1)} KB per event)`);
}
if (process.env.DIAG_JSON === '1') {
  const summary = Object.fromEntries(['hashed', 'ordered'].map((k) => [k, { ms: med(results[k], 'ms'), cpuMs: med(results[k], 'cpuMs'), bytes: med(results[k], 'bytes') }]));
  console.log(JSON.stringify({ events: N, commits: COMMITS, ...summary }));
}
