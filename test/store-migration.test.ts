import { spawn } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../src/store/migrations.js';
import { OWNER, Store } from '../src/store/index.js';
import { sqlite } from './helpers/sqlite.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

/** A database as the previous schema (2) left it, with outbox rows in every state. */
function schema2Database(extraEvents = 0): string {
  const file = join(mkdtempSync(join(tmpdir(), 'bridge-migrate-')), 'b.db');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  for (const m of MIGRATIONS.slice(0, 2)) db.exec(m);
  db.pragma('user_version = 2');
  const now = Date.now();
  const ev = db.prepare('INSERT INTO events (id, type, ts, body, created_at) VALUES (?, ?, ?, ?, ?)');
  const ob = db.prepare(
    `INSERT INTO outbox (event_id, sink, status, attempts, next_at, owner, lease_until, last_error, origin, created_at, updated_at, delivered_at, dead_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  for (let i = 0; i < 5; i++) ev.run(`evt_${i}`, 'trace.created', new Date(0).toISOString(), JSON.stringify({ id: `evt_${i}`, n: i }), now);
  ob.run('evt_0', 'hook', 'delivered', 1, now, null, null, null, 'live', now, now, now, null);
  ob.run('evt_0', 'slack', 'dead', 5, now, null, null, 'HTTP 500', 'live', now, now, null, now);
  ob.run('evt_1', 'hook', 'queued', 0, now - 1, null, null, null, 'live', now, now, null, null);
  ob.run('evt_2', 'hook', 'retrying', 2, now - 1, null, null, 'timeout', 'backfill:x', now, now, null, null);
  // Claimed by a process that no longer exists on this host.
  ob.run('evt_3', 'hook', 'delivering', 1, now, `${OWNER.split(':')[0]}:999999999:x`, now + 60_000, null, 'live', now, now, null, null);
  // Enough delivered history for an upgrade that lasts a while.
  const body = 'x'.repeat(471);
  db.transaction(() => {
    for (let i = 0; i < extraEvents; i++) {
      ev.run(`evt_old_${i}`, 'trace.created', '', body, now);
      ob.run(`evt_old_${i}`, 'hook', 'delivered', 1, now, null, null, null, 'live', now, now, now, null);
    }
  })();
  db.close();
  return file;
}

describe('schema 3: the outbox keyed by event write order', () => {
  it('migrates a schema-2 database with every row, state and body kept', () => {
    const upgrades: Array<[number, number]> = [];
    const store = new Store(schema2Database(), { onUpgrade: (from, to) => upgrades.push([from, to]) });
    cleanups.push(() => store.close());
    expect(sqlite(store).pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    expect(upgrades).toEqual(Array.from({ length: MIGRATIONS.length - 2 }, (_, i) => [i + 2, i + 3]));
    expect(store.counts().get('hook')).toEqual({ queued: 1, retrying: 1, delivering: 1, delivered: 1, dead: 0 });
    expect(store.counts().get('slack')).toMatchObject({ dead: 1 });
    expect(store.deadLetters(null, null)).toMatchObject([{ eventId: 'evt_0', sink: 'slack', type: 'trace.created', attempts: 5, lastError: 'HTTP 500' }]);

    // The stalled claim is taken back, then everything due is claimed with its body.
    expect(store.recoverStalled()).toBe(1);
    const claimed = store.claim('hook', 10, 60_000);
    expect(claimed.map((c) => [c.eventId, JSON.parse(c.body).n])).toEqual([
      ['evt_1', 1],
      ['evt_2', 2],
      ['evt_3', 3],
    ]);

    // An event stored before the migration, sent to a new sink: one new row, the old ones untouched.
    const r = store.write(() => store.enqueue([{ id: 'evt_0', type: 'trace.created', ts: '', body: 'ignored', sinks: ['hook', 'slack', 'pager'] }]));
    expect(r).toEqual({ inserted: 1, requeued: 0, skipped: 2 });
    expect(store.claim('pager', 10, 60_000).map((c) => c.body)).toEqual([JSON.stringify({ id: 'evt_0', n: 0 })]);
  });

  it('a new database is created, not upgraded', () => {
    const upgrades: number[] = [];
    const store = new Store(join(mkdtempSync(join(tmpdir(), 'bridge-migrate-')), 'b.db'), { onUpgrade: (from) => upgrades.push(from) });
    cleanups.push(() => store.close());
    expect(upgrades).toEqual([]);
    expect(sqlite(store).pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
  });

  it('keeps (event, sink) unique and finds rows by event without a random-order index', () => {
    const store = new Store(schema2Database());
    cleanups.push(() => store.close());
    const indexes = sqlite(store).prepare(`SELECT name FROM pragma_index_list('outbox') WHERE "unique" = 1`).all() as Array<{ name: string }>;
    const columns = indexes.map((i) => (sqlite(store).prepare(`SELECT name FROM pragma_index_info(?)`).all(i.name) as Array<{ name: string }>).map((c) => c.name).join(','));
    expect(columns).toEqual(['event_seq,sink']);
    // Redelivery and adoption find the existing row by its event.
    const again = store.write(() => store.enqueue([{ id: 'evt_0', type: 'trace.created', ts: '', body: 'x', sinks: ['hook'] }], { redeliver: true, origin: 'backfill:y' }));
    expect(again.requeued).toBe(1);
    const adopted = store.write(() => store.enqueue([{ id: 'evt_1', type: 'trace.created', ts: '', body: 'x', sinks: ['hook'] }], { origin: 'backfill:y' }));
    expect(adopted.requeued).toBe(1);
    expect(store.pending('backfill:y')).toBe(2);
    // A new event is numbered after the migrated ones.
    store.write(() => store.enqueue([{ id: 'evt_new', type: 'trace.created', ts: '', body: '{}', sinks: ['hook'] }]));
    expect(sqlite(store).prepare(`SELECT seq FROM events WHERE id = 'evt_new'`).pluck().get()).toBe(6);
  });

  it('leaves the same schema as a new database, and gives back the space the upgrade took', () => {
    const file = schema2Database();
    const upgraded = new Store(file);
    cleanups.push(() => upgraded.close());
    const fresh = new Store(join(mkdtempSync(join(tmpdir(), 'bridge-migrate-')), 'b.db'));
    cleanups.push(() => fresh.close());
    const schema = (s: Store): unknown => sqlite(s).prepare(`SELECT type, name, sql FROM sqlite_schema ORDER BY type, name`).all();
    expect(schema(upgraded)).toEqual(schema(fresh));
    // Both went through the same last migration: check that it rebuilt every index the queries use.
    const indexes = (table: string): string[] => (sqlite(upgraded).prepare(`SELECT name FROM pragma_index_list(?) WHERE origin = 'c' ORDER BY name`).all(table) as Array<{ name: string }>).map((r) => r.name);
    expect(indexes('outbox')).toEqual(['outbox_dead', 'outbox_delivered', 'outbox_due', 'outbox_open']);
    expect(indexes('events')).toEqual(['events_age']);
    expect(statSync(`${file}-wal`).size).toBe(0);
  });

  it('a process of the older version still running on an upgraded file fails loudly instead of dropping rows', () => {
    const store = new Store(schema2Database());
    cleanups.push(() => store.close());
    // The outbox insert of schema 2, as an older process would still run it.
    const older = sqlite(store).prepare(
      `INSERT OR IGNORE INTO outbox (event_id, sink, status, attempts, next_at, created_at, updated_at, origin) VALUES ('evt_4', 'hook', 'queued', 0, 0, 0, 0, 'live')`,
    );
    expect(() => older.run()).toThrow(/upgraded by a newer langfuse-bridge/);
    expect(store.counts().get('hook')?.queued).toBe(1);
  });

  it('a process killed mid-upgrade leaves the old schema whole; the next start upgrades it with every row', async () => {
    const file = schema2Database(100_000);
    const built = pathToFileURL(resolve('dist/store/index.js')).href;
    const child = spawn(process.execPath, [
      '--input-type=module',
      '-e',
      `const { Store } = await import(${JSON.stringify(built)}); new Store(${JSON.stringify(file)}, { onUpgrade: () => console.log('upgrading') });`,
    ]);
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, signal) => r(signal)));
    // SIGKILL as soon as the upgrade has begun (inside its transaction).
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('upgrading')) child.kill('SIGKILL');
    });
    expect(await exited).toBe('SIGKILL');
    const raw = new Database(file, { readonly: true });
    expect(raw.pragma('user_version', { simple: true })).toBe(2);
    raw.close();

    const store = new Store(file);
    cleanups.push(() => store.close());
    expect(sqlite(store).pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    expect(store.counts().get('hook')).toEqual({ queued: 1, retrying: 1, delivering: 1, delivered: 100_001, dead: 0 });
    expect(sqlite(store).prepare('SELECT COUNT(*) FROM events').pluck().get()).toBe(100_005);
  }, 60_000);
});

describe('the outbox row keeps what the router decided (its route)', () => {
  const ROUTE_VERSION = MIGRATIONS.findIndex((m) => m.includes('ADD COLUMN route'));

  /** A database as the schema before the route column left it: a queued and a dead Slack row. */
  function beforeRoutesDatabase(): string {
    const file = join(mkdtempSync(join(tmpdir(), 'bridge-migrate-')), 'b.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    for (const m of MIGRATIONS.slice(0, ROUTE_VERSION)) db.exec(m);
    db.pragma(`user_version = ${ROUTE_VERSION}`);
    const now = Date.now();
    const ev = db.prepare('INSERT INTO events (id, type, ts, body, created_at) VALUES (?, ?, ?, ?, ?)');
    const ob = db.prepare(`INSERT INTO outbox (event_seq, event_id, sink, status, attempts, next_at, last_error, created_at, updated_at, dead_at) VALUES (?, ?, 'slack', ?, ?, ?, ?, ?, ?, ?)`);
    for (let i = 1; i <= 2; i++) ev.run(`evt_${i}`, 'trace.updated', '', JSON.stringify({ id: `evt_${i}` }), now);
    ob.run(1, 'evt_1', 'queued', 0, now - 1, null, now, now, null);
    ob.run(2, 'evt_2', 'dead', 3, now - 1, 'HTTP 500', now, now, now);
    db.close();
    return file;
  }

  it('upgrades with every row kept and no decision for the rows written before; new rows store theirs', () => {
    const upgrades: Array<[number, number]> = [];
    const store = new Store(beforeRoutesDatabase(), { onUpgrade: (from, to) => upgrades.push([from, to]) });
    cleanups.push(() => store.close());
    expect(upgrades[0]).toEqual([ROUTE_VERSION, ROUTE_VERSION + 1]);
    expect(store.counts().get('slack')).toMatchObject({ queued: 1, dead: 1 });
    // Rows from before carry no decision: their sink decides at delivery, as it did.
    expect(store.claim('slack', 10, 60_000).map((c) => [c.eventId, c.route])).toEqual([['evt_1', null]]);
    expect(store.replay('slack', null)).toBe(1);
    expect(store.claim('slack', 10, 60_000).map((c) => [c.eventId, c.route])).toEqual([['evt_2', null]]);

    const route = '[{"rule":"error-traces","action":"trigger","dedupKey":"k","severity":"error","mode":"once","label":"error trace"}]';
    store.write(() => store.enqueue([{ id: 'evt_3', type: 'trace.updated', ts: '', body: '{"id":"evt_3"}', sinks: ['slack', 'hook'], routes: { slack: route } }]));
    expect(store.claim('slack', 10, 60_000).map((c) => [c.eventId, c.route])).toEqual([['evt_3', route]]);
    expect(store.claim('hook', 10, 60_000).map((c) => [c.eventId, c.route])).toEqual([['evt_3', null]]);
  });
});
