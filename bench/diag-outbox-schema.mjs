// Diagnostic (not part of `npm run bench`): what the outbox's storage layout costs per delivery.
// Runs the same claim → settle cycle (claims of 64, outcomes settled in batches of 64, as the Dispatcher
// does under load) over N queued deliveries on
//   current   the real Store (dist/store) and its schema
//   proposed  a sketch: outbox keyed by an ascending integer (rowid = write order), UNIQUE(event_id, sink),
//             and partial indexes that only hold the rows each query needs
// and reports time, bytes written (/proc/self/io wchar) and fsyncs avoided per delivery.
// Usage: node bench/diag-outbox-schema.mjs [N=20000]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { syntheticEvents } from './events.mjs';
import { DIST, int, removeDir, tempDir } from './lib.mjs';

const { Store } = await import(join(DIST, 'store/index.js'));
const N = Number(process.argv[2] ?? 20_000);
const BATCH = 64;
const events = syntheticEvents(N);

const wchar = () => Number(/wchar: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))[1]);

function cycle(label, api) {
  let t = performance.now();
  let w = wchar();
  for (let i = 0; i < N; i += 1000) api.enqueue(events.slice(i, i + 1000));
  const enqueueMs = performance.now() - t;
  const enqueueBytes = wchar() - w;
  t = performance.now();
  w = wchar();
  let claimMs = 0;
  let settleMs = 0;
  let pendingMs = 0;
  let delivered = 0;
  for (let k = 0; ; k++) {
    let s = performance.now();
    const rows = api.claim(BATCH);
    claimMs += performance.now() - s;
    if (!rows.length) break;
    s = performance.now();
    api.settle(rows);
    settleMs += performance.now() - s;
    delivered += rows.length;
    if (k % 10 === 0) {
      s = performance.now();
      api.pending();
      pendingMs += performance.now() - s;
    }
  }
  const ms = performance.now() - t;
  const bytes = wchar() - w;
  console.log(
    `${label.padEnd(9)} enqueue ${int((enqueueMs * 1000) / N).padStart(4)} µs/event ${int(enqueueBytes / N).padStart(6)} B/event | ` +
      `claim+settle ${int((ms * 1000) / delivered).padStart(5)} µs/delivery (claim ${int((claimMs * 1000) / delivered)}, settle ${int((settleMs * 1000) / delivered)}, pending() ${(pendingMs / Math.ceil(delivered / BATCH / 10)).toFixed(2)} ms/call) ` +
      `${int(bytes / delivered).padStart(6)} B written/delivery  → ${int(delivered / (ms / 1000))} deliveries/s max`,
  );
}

// --- current: the real Store ---
{
  const dir = tempDir('schema-cur');
  const store = new Store(join(dir, 'b.db'));
  cycle('current', {
    enqueue: (evs) => store.write(() => store.enqueue(evs.map((e) => ({ id: e.id, type: e.type, ts: e.ts, body: e.body, sinks: ['webhook'] })), { origin: 'bench' })),
    claim: (n) => store.claim('webhook', n, 120_000, 'bench'),
    settle: (rows) => store.settle(rows.map((r) => ({ eventId: r.eventId, sink: r.sink, status: 'delivered' }))),
    pending: () => store.pending('bench'),
  });
  store.close();
  removeDir(dir);
}

// --- proposed: ascending integer key and partial indexes ---
{
  const dir = tempDir('schema-new');
  const db = new Database(join(dir, 'b.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(`
    CREATE TABLE events (id TEXT PRIMARY KEY, type TEXT NOT NULL, ts TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL);
    CREATE TABLE outbox (
      seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL, sink TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
      next_at INTEGER NOT NULL, owner TEXT, lease_until INTEGER, last_error TEXT, origin TEXT NOT NULL DEFAULT 'live',
      created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, delivered_at INTEGER, dead_at INTEGER,
      UNIQUE (event_id, sink));
    CREATE INDEX outbox_due ON outbox (sink, next_at, seq) WHERE status IN ('queued', 'retrying');
    CREATE INDEX outbox_open ON outbox (origin, status) WHERE status IN ('queued', 'retrying', 'delivering');
    CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE status = 'delivered';
  `);
  const evIns = db.prepare('INSERT OR IGNORE INTO events (id, type, ts, body, created_at) VALUES (?, ?, ?, ?, ?)');
  const obIns = db.prepare(`INSERT OR IGNORE INTO outbox (event_id, sink, status, next_at, origin, created_at, updated_at) VALUES (?, ?, 'queued', ?, ?, ?, ?)`);
  const claim = db.prepare(`
    UPDATE outbox SET status = 'delivering', attempts = attempts + 1, owner = @owner, lease_until = @leaseUntil, updated_at = @now
    WHERE seq IN (SELECT seq FROM outbox WHERE sink = @sink AND status IN ('queued', 'retrying') AND next_at <= @now AND (@origin IS NULL OR origin = @origin)
                  ORDER BY next_at, seq LIMIT @limit)
    RETURNING seq, event_id AS eventId, attempts`);
  const body = db.prepare('SELECT body, type FROM events WHERE id = ?');
  const done = db.prepare(`UPDATE outbox SET status = 'delivered', delivered_at = @now, updated_at = @now, owner = NULL, lease_until = NULL, last_error = NULL WHERE seq = @seq AND status = 'delivering'`);
  const pending = db.prepare(`SELECT COUNT(*) AS n FROM outbox WHERE status IN ('queued', 'retrying', 'delivering') AND origin = ?`);
  console.log(`proposed claim plan: ${db.prepare(`EXPLAIN QUERY PLAN SELECT seq FROM outbox WHERE sink = 'w' AND status IN ('queued', 'retrying') AND next_at <= 1 AND ('o' IS NULL OR origin = 'o') ORDER BY next_at, seq LIMIT 5`).all().map((p) => p.detail).join(' | ')}`);
  cycle('proposed', {
    enqueue: (evs) =>
      db.transaction(() => {
        const now = Date.now();
        for (const e of evs) {
          evIns.run(e.id, e.type, e.ts, e.body, now);
          obIns.run(e.id, 'webhook', now, 'bench', now, now);
        }
      }).immediate(),
    claim: (n) =>
      db.transaction(() => {
        const now = Date.now();
        const rows = claim.all({ owner: 'me', leaseUntil: now + 120_000, now, sink: 'webhook', origin: 'bench', limit: n });
        rows.sort((a, b) => a.seq - b.seq);
        return rows.map((r) => ({ ...r, ...body.get(r.eventId) }));
      }).immediate(),
    settle: (rows) =>
      db.transaction(() => {
        const now = Date.now();
        for (const r of rows) done.run({ seq: r.seq, now });
      }).immediate(),
    pending: () => pending.get('bench').n,
  });
  db.close();
  removeDir(dir);
}
