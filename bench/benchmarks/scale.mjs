// scale: the seen-versions table (Store.putSeen / Store.getSeen) at growing sizes. The table is filled in
// batched transactions up to each size; at each size (three rounds, median): 20,000 random lookups of existing keys, 20,000 lookups
// of absent keys (what most lookups of a backfill or a busy poll are), and 20,000 inserts of new keys in
// transactions of 1,000. Sizes: BENCH_SCALE (default 1e6,4e6: the growth from the first size to the
// second is what is judged; one size alone is a reference, not judged).
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DIST, dbSize, fix, int, log, mb, median, removeDir, status, tempDir } from '../lib/index.mjs';

const { Store } = await import(join(DIST, 'store/index.js'));

const PROJECT = 'bench-project';
const OPS = Number(process.env.BENCH_SCALE_OPS ?? 20_000);
const ROUNDS = Math.max(1, Number(process.env.BENCH_SCALE_ROUNDS ?? 3));

// Deterministic keys: row i → (kind, id). Mix per trace: 2 trace rows, 3 generation rows, 2 score rows out of 7.
function mix32(x) {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}
const h8 = (x) => x.toString(16).padStart(8, '0');
function keyOf(i) {
  const k = i % 7;
  const a = h8(mix32(i));
  const b = h8(mix32(i ^ 0x5bd1e995));
  if (k < 3 && k >= 2) return { kind: 'obs', id: a + b };
  if (k < 2) return { kind: 'trace', id: a + b + h8(mix32(i + 0x9e3779b9)) + h8(mix32(i * 31 + 7)) };
  if (k < 5) return { kind: 'obs', id: a + b };
  return { kind: 'score', id: a + b + h8(mix32(i + 0x85ebca6b)) + h8(mix32(i * 17 + 3)) };
}
const TS = '2026-11-26T12:34:56.789Z';
function rowOf(i) {
  const { kind, id } = keyOf(i);
  if (kind === 'trace') {
    const detail = JSON.stringify({ n: 'qa-pipeline', u: `user-${i % 50}`, s: `sess-${i % 400}`, e: 'production', g: ['rag'], t: TS, m: null, a: null });
    return { kind, id, version: null, level: 1, created: 1, detail };
  }
  if (kind === 'obs') return { kind, id, version: TS, level: 1, created: 1, detail: null };
  return { kind, id, version: h8(mix32(i * 7)) + h8(mix32(i * 13)), level: 0, created: 1, detail: null };
}

function rand(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    return mix32(a);
  };
}

/**
 * Fills rows [from, to) in random key order, as a bridge would over time. By default through a second
 * connection with a large page cache and synchronous=OFF, only so that 10 M rows fill in minutes; the table,
 * its indexes and the key order are the same as Store.putSeen makes them, and every measured operation goes
 * through the bridge's own Store. BENCH_SCALE_FILL=store fills through Store.putSeen instead (slow).
 */
function fill(store, file, from, to, onProgress) {
  const BATCH = 10_000;
  if (process.env.BENCH_SCALE_FILL === 'store') {
    for (let i = from; i < to; ) {
      const end = Math.min(to, i + BATCH);
      store.write(() => {
        for (let j = i; j < end; j++) store.putSeen(PROJECT, rowOf(j));
      });
      i = end;
      onProgress?.(i);
    }
    return;
  }
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  db.pragma('cache_size = -1048576');
  db.pragma('busy_timeout = 10000');
  const put = db.prepare(
    `INSERT INTO seen (project, kind, id, version, level, created, detail, seen_at) VALUES (@project, @kind, @id, @version, @level, @created, @detail, @seenAt)
     ON CONFLICT (project, kind, id) DO UPDATE SET version = excluded.version, level = excluded.level, created = excluded.created, detail = excluded.detail, seen_at = excluded.seen_at`,
  );
  const now = Date.now();
  for (let i = from; i < to; ) {
    const end = Math.min(to, i + BATCH * 5);
    db.transaction(() => {
      for (let j = i; j < end; j++) put.run({ project: PROJECT, ...rowOf(j), seenAt: now - (to - j) });
    }).immediate();
    i = end;
    onProgress?.(i);
  }
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

function measure(store, size, seed) {
  const r = rand(seed);
  // lookups of existing keys
  const keys = Array.from({ length: OPS }, () => keyOf(r() % size));
  let t = performance.now();
  let found = 0;
  for (const k of keys) if (store.getSeen(PROJECT, k.kind, k.id)) found++;
  const hitUs = ((performance.now() - t) * 1000) / OPS;
  if (found !== OPS) throw new Error(`scale: only ${found} of ${OPS} existing keys found`);
  // lookups of absent keys (ids beyond the filled range)
  const absent = Array.from({ length: OPS }, (_, j) => keyOf(size + 50_000_000 + (r() % 1_000_000_000) + j));
  t = performance.now();
  let hits = 0;
  for (const k of absent) if (store.getSeen(PROJECT, k.kind, k.id)) hits++;
  const missUs = ((performance.now() - t) * 1000) / OPS;
  // inserts of new keys, transactions of 1,000
  const base = 4_000_000_000 - seed * 1_000_000;
  t = performance.now();
  for (let i = 0; i < OPS; i += 1000) {
    store.write(() => {
      for (let j = i; j < Math.min(OPS, i + 1000); j++) store.putSeen(PROJECT, rowOf(base + j));
    });
  }
  const insertUs = ((performance.now() - t) * 1000) / OPS;
  return { hitUs, missUs, insertUs, absentHits: hits };
}

export async function runScale() {
  const sizes = (process.env.BENCH_SCALE ?? '1e6,4e6')
    .split(',')
    .map((s) => Math.round(Number(s)))
    .filter((n) => n > 0)
    .sort((a, b) => a - b);
  const dir = tempDir('scale');
  const file = join(dir, 'bridge.db');
  // What-if only (the bridge does not do this): extra pragmas on the Store's own connection.
  const whatIf = (process.env.BENCH_SCALE_PRAGMAS ?? '').split(';').map((x) => x.trim()).filter(Boolean);
  const store = new Store(file, { pragmas: whatIf });
  if (whatIf.length) log(`scale: what-if pragmas on the Store's connection: ${whatIf.join('; ')}`);
  const points = [];
  try {
    let filled = 0;
    let extra = 0; // rows added by the measured inserts
    for (const size of sizes) {
      const t = performance.now();
      let last = performance.now();
      fill(store, file, filled, size - extra, (n) => {
        if (performance.now() - last > 15_000) {
          last = performance.now();
          log(`scale: filled ${int(n)} of ${int(size)} (${int((n - filled) / ((performance.now() - t) / 1000))} rows/s)`);
        }
      });
      const fillMs = performance.now() - t;
      const fillRate = (size - extra - filled) / (fillMs / 1000);
      filled = size - extra;
      // Three rounds, the median of each figure: other work on the machine makes single rounds noisy.
      const rounds = [];
      for (let k = 0; k < ROUNDS; k++) {
        rounds.push(measure(store, filled, points.length * 10 + k + 1));
        extra += OPS;
      }
      const m = { hitUs: median(rounds.map((x) => x.hitUs)), missUs: median(rounds.map((x) => x.missUs)), insertUs: median(rounds.map((x) => x.insertUs)) };
      const disk = dbSize(file);
      const p = { size, ...m, disk: disk.total, diskDb: disk.db, diskWal: disk['-wal'], fillRate };
      points.push(p);
      log(`scale: ${int(size)} rows: lookup ${fix(m.hitUs)} µs (absent ${fix(m.missUs)} µs), insert ${fix(m.insertUs)} µs, ${mb(disk.total)} on disk (db ${mb(disk.db)}, wal ${mb(disk['-wal'])}), filled at ${int(fillRate)} rows/s`);
    }
  } finally {
    store.close();
    removeDir(dir);
  }
  const first = points[0];
  const lines = points.map((p) => {
    const growth = p === first ? null : { hit: p.hitUs / first.hitUs, miss: p.missUs / first.missUs, insert: p.insertUs / first.insertUs };
    const ok = growth ? growth.hit <= 2 && growth.miss <= 2 && growth.insert <= 2 : true;
    p.growth = growth;
    p.ok = ok;
    const label = p.size >= 1e6 && p.size % 1e6 === 0 ? `${p.size / 1e6} M` : int(p.size);
    return (
      `scale    ${label.padEnd(6)} lookup ${fix(p.hitUs)} µs (absent ${fix(p.missUs)} µs)  insert ${fix(p.insertUs)} µs  ${mb(p.disk)} on disk (wal ${mb(p.diskWal)})` +
      (growth
        ? `  vs ${first.size / 1e6} M: lookup ${fix(growth.hit)}×, absent ${fix(growth.miss)}×, insert ${fix(growth.insert)}×  target ≤2×  ${status(ok)}`
        : points.length === 1
          ? '  one size: nothing to compare, not judged (the default is BENCH_SCALE=1e6,4e6)'
          : '  (reference size)')
    );
  });
  return { name: 'scale', ok: points.every((p) => p.ok), points, lines, line: lines.join('\n') };
}
