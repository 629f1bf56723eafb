/**
 * The durable state: cursors, seen versions, events, the outbox (one row per event × sink) and its
 * dead letters. Everything the bridge promises about "nothing lost, nothing twice" rests here:
 * events, seen versions and a cursor are written in one transaction, and a delivery is claimed
 * atomically so two processes on one database never send it twice.
 */
import { accessSync, chmodSync, closeSync, constants, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import os from 'node:os';
import Database from 'better-sqlite3';
import { insertAttempts, pruneAttempts, type Attempt } from '../delivery/attempts.js';
import { DatabaseError } from '../errors.js';
import type { CallLedger, LedgerAnswer, LedgerOwner, LedgerPeer } from '../langfuse/rate-limiter.js';
import type { AttemptOutcome, DeliveryStatus, FinalStatus, SinkState } from '../delivery/states.js';
import { MIGRATIONS } from './migrations.js';
import { MonitorTables } from './monitors.js';

export interface SeenRow {
  kind: string;
  id: string;
  version: string | null;
  level: number;
  created: number;
  detail: string | null;
}

export interface NewEvent {
  id: string;
  type: string;
  /** The event's own timestamp (ISO), from Langfuse's data. */
  ts: string;
  body: string;
  /** The sinks this event goes to. */
  sinks: string[];
}

export interface CursorRow {
  project: string;
  source: string;
  cursorMs: number | null;
  sweepFloorMs: number | null;
  sweepPosMs: number | null;
  sweepStartedAt: number | null;
  lastSweepDoneAt: number | null;
  lastPollAt: number | null;
  lastOkAt: number | null;
  lastOutcome: string | null;
  lastError: string | null;
}

export interface ClaimedDelivery {
  /** The outbox row: its position in write order. */
  seq: number;
  eventId: string;
  sink: string;
  attempts: number;
  body: string;
  type: string;
  /** Until when this process holds the row; another may take it back after that. */
  leaseUntil: number;
}

export interface DeliveryOutcome {
  seq: number;
  eventId: string;
  sink: string;
  status: AttemptOutcome | 'released';
  nextAt?: number;
  error?: string | null;
  /** The attempt that led here, for the attempt log (none for a row released unsent). */
  attempt?: Attempt;
}

export interface EnqueueOptions {
  /** Resend even if already delivered (backfill --redeliver). */
  redeliver?: boolean;
  /** Tag for the rows this call creates or resets, so a backfill can wait for its own. */
  origin?: string;
}

/**
 * An in-process dispatcher with room to spare: new outbox rows it can take are written already
 * claimed by it (as a claim would leave them) and handed over in memory once the transaction
 * commits, which saves a claim transaction and a read of each body.
 */
export interface Claimer {
  /** Only rows of this origin (null: any). */
  readonly origin: string | null;
  /** The lease a new row of this sink gets if the dispatcher takes it now; null: leave it queued. */
  leaseUntil(sink: string, now: number): number | null;
  /** Called inside the transaction for each row written claimed. */
  claimed(row: ClaimedDelivery): void;
  /** Called inside the transaction when a new row of this sink had to stay queued. */
  queued(sink: string): void;
}

export interface EnqueueResult {
  inserted: number;
  requeued: number;
  skipped: number;
}

/** A sink's state as the process delivering to it last recorded it (see src/delivery/health.ts). */
export interface RecordedSinkState {
  state: SinkState;
  /** When it took this state (ms). */
  since: number;
  /** While open: when the next probe goes. */
  nextProbeAt?: number | null;
}

/** Owner of rows handed to the Redis queues (BRIDGE_REDIS_URL): closed by a relay, not by a lease. */
export const REDIS_OWNER = 'redis';
/** Lease of relayed rows: never runs out, so no in-process dispatcher takes them back. */
const REDIS_LEASE = 8_640_000_000_000_000;

export interface RelayRow {
  eventId: string;
  sink: string;
  /** next_at when handed over: part of the job id. */
  gen: number;
  /** Attempts made before the hand-over (rows that were retrying in-process). */
  attempts: number;
  body: string;
  type: string;
}

export interface RelayOutcome {
  eventId: string;
  sink: string;
  gen: number;
  status: FinalStatus;
  error?: string | null;
  /** Attempts the job made, when known. */
  attempts?: number;
}

/** Who holds a claim: host, pid and start time, so a restarted process can tell a dead owner. */
export const OWNER = `${os.hostname()}:${process.pid}:${Date.now().toString(36)}`;

export function ownerIsDead(owner: string): boolean {
  const [host, pid] = owner.split(':');
  if (host !== os.hostname() || !pid) return false;
  // This process's pid but another start: a restarted container reuses its pid (1, say), so the
  // owner before it is gone.
  if (owner !== OWNER && Number(pid) === process.pid) return true;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export interface StoreOptions {
  /** Told before an existing database is upgraded to a newer schema, which may take a while on a large one. */
  onUpgrade?(from: number, to: number): void;
  /**
   * Told once when existing files (the database, its -wal or -shm, say from an older version) were
   * readable or writable by other users: each was set to 0600, or could not be (not its owner).
   */
  onLoosePermissions?(files: LooseFile[]): void;
  /**
   * Read only (`status`, `check`): never creates, upgrades or writes the file. A missing file, one of
   * a newer schema, or one of an older schema (which `run` upgrades) throws a DatabaseError naming it.
   */
  readonly?: boolean;
}

export interface LooseFile {
  file: string;
  /** The mode it had, e.g. 0o644. */
  mode: number;
  tightened: boolean;
}

/**
 * The database holds event bodies (trace names, user ids, error messages; prompts and completions
 * with BRIDGE_INCLUDE_IO): only its owner may read it. A folder created for it is 0700, a new file
 * 0600, created here before SQLite opens it (SQLite would create it 0644 under the usual umask, and
 * gives the -wal and -shm files the main file's mode). Existing files open to others are set to 0600.
 */
export function secureDatabaseFile(file: string): LooseFile[] {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  try {
    closeSync(openSync(file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600));
    return [];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const loose: LooseFile[] = [];
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    let mode: number;
    try {
      mode = statSync(f).mode & 0o777;
    } catch {
      continue;
    }
    if ((mode & 0o077) === 0) continue;
    let tightened = true;
    try {
      chmodSync(f, 0o600);
    } catch {
      tightened = false;
    }
    loose.push({ file: f, mode, tightened });
  }
  return loose;
}

/** The schema this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * What an error from SQLite or the file system means for the database file, as one line naming the
 * file and the fix; null when it is not a problem of the file (a constraint, a busy timeout, a bug).
 */
export function databaseProblem(err: unknown, file: string): DatabaseError | null {
  if (err instanceof DatabaseError) return err;
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const msg = typeof e?.message === 'string' ? e.message : String(err);
  const at = `database ${file}`;
  if (code === 'SQLITE_CORRUPT' || code.startsWith('SQLITE_CORRUPT_') || code === 'SQLITE_NOTADB') {
    return new DatabaseError(
      `${at} is damaged (${msg}); move it aside and start again with a new file (a backfill re-reads what Langfuse still holds), or point BRIDGE_DATABASE elsewhere`,
      file,
      code,
    );
  }
  if (code === 'SQLITE_READONLY' || code.startsWith('SQLITE_READONLY_')) {
    return new DatabaseError(`${at} is read-only (${msg}); make the file and its folder writable, or point BRIDGE_DATABASE at a writable place`, file, code);
  }
  if (code === 'SQLITE_CANTOPEN' || code.startsWith('SQLITE_CANTOPEN_')) {
    return new DatabaseError(`${at} cannot be opened (${msg}); make sure it is a file in an existing, writable folder, or point BRIDGE_DATABASE elsewhere`, file, code);
  }
  if (code === 'SQLITE_FULL') return new DatabaseError(`${at}: the disk is full (${msg}); free some space`, file, code);
  if (code === 'SQLITE_IOERR' || code.startsWith('SQLITE_IOERR_')) return new DatabaseError(`${at}: input/output error (${msg}); check the disk and the file`, file, code);
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new DatabaseError(`${at}: ${msg.replace(/^E[A-Z]+: /, '')}; make the file and its folder writable, or point BRIDGE_DATABASE at a writable place`, file, code);
  }
  if (code === 'ENOTDIR' || code === 'EEXIST' || code === 'EISDIR') {
    return new DatabaseError(`${at}: ${msg.replace(/^E[A-Z]+: /, '')}; point BRIDGE_DATABASE at a file in a folder that exists or can be created`, file, code);
  }
  return null;
}

/** An error SQLite raised (as opposed to one of Langfuse or a sink). */
export function isSqliteError(err: unknown): boolean {
  return err instanceof Database.SqliteError;
}

/**
 * Reads a database of any schema without a Store: its version and these keys of its key/value table
 * (which every schema has). Read only; for `check` on a file that `run` would upgrade.
 */
export function peekDatabase(file: string, keys: string[]): { version: number; getMeta(key: string): string | null } {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const version = db.pragma('user_version', { simple: true }) as number;
    const get = db.prepare('SELECT value FROM meta WHERE key = ?').pluck();
    const values = new Map(keys.map((k) => [k, (get.get(k) as string | undefined) ?? null]));
    return { version, getMeta: (key) => values.get(key) ?? null };
  } finally {
    db.close();
  }
}

/** Why this path cannot be written (the file, or the folder that would hold it), or null when it can. */
export function unwritable(file: string): string | null {
  const probe = (p: string): string | null => {
    try {
      accessSync(p, constants.W_OK);
      return null;
    } catch (err) {
      return `${p} is not writable (${(err as NodeJS.ErrnoException).code})`;
    }
  };
  if (existsSync(file)) return statSync(file).isFile() ? probe(file) : `${file} is not a file`;
  // The nearest folder that exists must be a writable folder: `run` creates the rest.
  let dir = dirname(file);
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  if (!statSync(dir).isDirectory()) return `${dir} is not a folder`;
  return probe(dir);
}

export class Store {
  readonly db: Database.Database;
  private readonly stmts;
  /** The monitors' facts and states (src/store/monitors.ts). */
  readonly monitors: MonitorTables;

  constructor(
    readonly file: string,
    private readonly opts: StoreOptions = {},
  ) {
    try {
      this.db = opts.readonly ? Store.openReadonly(file) : Store.openWritable(file, opts.onLoosePermissions);
    } catch (err) {
      throw databaseProblem(err, file) ?? err;
    }
    try {
      if (opts.readonly) this.checkVersion();
      else this.setUp();
    } catch (err) {
      this.db.close();
      throw (opts.readonly ? Store.readonlyProblem(err, file) : null) ?? databaseProblem(err, file) ?? err;
    }
    const db = this.db;
    this.monitors = new MonitorTables(db);
    this.stmts = {
      seenGet: db.prepare('SELECT kind, id, version, level, created, detail FROM seen WHERE project = ? AND kind = ? AND id = ?'),
      seenPut: db.prepare(
        `INSERT INTO seen (project, kind, id, version, level, created, detail, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (project, kind, id) DO UPDATE SET version = excluded.version, level = excluded.level, created = excluded.created, detail = excluded.detail, seen_at = excluded.seen_at`,
      ),
      eventInsert: db.prepare('INSERT OR IGNORE INTO events (id, type, ts, body, created_at) VALUES (?, ?, ?, ?, ?)'),
      eventSeq: db.prepare('SELECT seq FROM events WHERE id = ?').pluck(),
      eventBody: db.prepare('SELECT body, type FROM events WHERE id = ?'),
      eventType: db.prepare('SELECT type FROM events WHERE id = ?').pluck(),
      eventBodies: db.prepare('SELECT seq, body, type FROM events WHERE seq IN (SELECT value FROM json_each(?))'),
      outboxInsert: db.prepare(
        `INSERT OR IGNORE INTO outbox (event_seq, event_id, sink, status, attempts, next_at, created_at, updated_at, origin) VALUES (?, ?, ?, 'queued', 0, ?, ?, ?, ?)`,
      ),
      outboxInsertClaimed: db.prepare(
        `INSERT OR IGNORE INTO outbox (event_seq, event_id, sink, status, attempts, next_at, owner, lease_until, created_at, updated_at, origin) VALUES (?, ?, ?, 'delivering', 1, ?, ?, ?, ?, ?, ?)`,
      ),
      outboxAdopt: db.prepare(`UPDATE outbox SET origin = ? WHERE event_seq = ? AND sink = ? AND status IN ('queued', 'retrying') AND origin <> ?`),
      outboxRequeue: db.prepare(
        `UPDATE outbox SET status = 'queued', attempts = 0, next_at = ?, updated_at = ?, origin = ?, last_error = NULL, delivered_at = NULL, dead_at = NULL
         WHERE event_seq = ? AND sink = ? AND status IN ('delivered', 'dead') AND origin <> ?`,
      ),
      cursorGet: db.prepare('SELECT * FROM cursors WHERE project = ? AND source = ?'),
      metaGet: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      claim: db.prepare(
        `UPDATE outbox SET status = 'delivering', attempts = attempts + 1, owner = @owner, lease_until = @leaseUntil, updated_at = @now
         WHERE seq IN (
           SELECT seq FROM outbox
           WHERE sink = @sink AND status IN ('queued', 'retrying') AND next_at <= @now AND (@origin IS NULL OR origin = @origin)
           ORDER BY next_at, seq LIMIT @limit)
         RETURNING seq, event_seq AS eventSeq, event_id AS eventId, sink, attempts, next_at AS nextAt`,
      ),
      doneMany: db.prepare(
        `UPDATE outbox SET status = 'delivered', delivered_at = @now, updated_at = @now, owner = NULL, lease_until = NULL, last_error = NULL
         WHERE seq IN (SELECT value FROM json_each(@seqs)) AND status = 'delivering' AND owner = @owner`,
      ),
      retry: db.prepare(
        `UPDATE outbox SET status = 'retrying', next_at = @nextAt, updated_at = @now, owner = NULL, lease_until = NULL, last_error = @error
         WHERE seq = @seq AND status = 'delivering' AND owner = @owner`,
      ),
      dead: db.prepare(
        `UPDATE outbox SET status = 'dead', dead_at = @now, updated_at = @now, owner = NULL, lease_until = NULL, last_error = @error
         WHERE seq = @seq AND status = 'delivering' AND owner = @owner`,
      ),
      renew: db.prepare(`UPDATE outbox SET lease_until = @leaseUntil, updated_at = @now WHERE seq = @seq AND status = 'delivering' AND owner = @owner`),
      release: db.prepare(
        `UPDATE outbox SET status = CASE WHEN attempts <= 1 THEN 'queued' ELSE 'retrying' END, attempts = MAX(attempts - 1, 0), updated_at = @now, owner = NULL, lease_until = NULL
         WHERE seq = @seq AND status = 'delivering' AND owner = @owner`,
      ),
    };
  }

  /** SQLite opens lazily: a read-only WAL database needs its -shm file, which it must create when absent. */
  private static readonlyProblem(err: unknown, file: string): DatabaseError | null {
    if ((err as { code?: string }).code !== 'SQLITE_CANTOPEN' || existsSync(`${file}-shm`) || !unwritable(`${file}-shm`)) return null;
    return new DatabaseError(
      `database ${file} cannot be read: its folder is read-only and SQLite needs to create ${file}-shm beside it; make the folder writable, or read it where the daemon runs`,
      file,
      'SQLITE_CANTOPEN',
    );
  }

  private static openReadonly(file: string): Database.Database {
    if (file === ':memory:') return new Database(file);
    if (!existsSync(file)) {
      throw new DatabaseError(`database ${file} does not exist; check BRIDGE_DATABASE (\`langfuse-bridge run\` creates it)`, file, 'ENOENT');
    }
    if (!statSync(file).isFile()) throw new DatabaseError(`database ${file} is not a file; check BRIDGE_DATABASE`, file, 'EISDIR');
    try {
      return new Database(file, { readonly: true, fileMustExist: true });
    } catch (err) {
      throw Store.readonlyProblem(err, file) ?? err;
    }
  }

  private static openWritable(file: string, onLoosePermissions?: (files: LooseFile[]) => void): Database.Database {
    if (file === ':memory:') return new Database(file);
    let dir = dirname(file);
    while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
    if (!statSync(dir).isDirectory()) {
      throw new DatabaseError(`database ${file}: ${dir} is not a folder; point BRIDGE_DATABASE at a file in a folder that exists or can be created`, file, 'ENOTDIR');
    }
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    // SQLite opens a file it may not write read-only without a word, and fails at the first write.
    const why = unwritable(file);
    if (why) throw new DatabaseError(`database ${file} is read-only: ${why}; make it writable, or point BRIDGE_DATABASE at a writable place`, file, 'EACCES');
    const loose = secureDatabaseFile(file);
    if (loose.length) onLoosePermissions?.(loose);
    return new Database(file);
  }

  /** Read only: refuses a schema other than this build's, naming the fix; nothing is written. */
  private checkVersion(): void {
    this.db.pragma('busy_timeout = 10000');
    const v = this.db.pragma('user_version', { simple: true }) as number;
    if (v > SCHEMA_VERSION) {
      throw new DatabaseError(
        `database ${this.file} has schema ${v}, written by a newer langfuse-bridge: this build is older (it knows schema ${SCHEMA_VERSION}); upgrade langfuse-bridge or point BRIDGE_DATABASE elsewhere`,
        this.file,
        'SCHEMA_NEWER',
      );
    }
    if (v > 0 && v < SCHEMA_VERSION) {
      throw new DatabaseError(
        `database ${this.file} has schema ${v}, older than this build's ${SCHEMA_VERSION}; run \`langfuse-bridge run\` to upgrade it (this command only reads)`,
        this.file,
        'SCHEMA_OLDER',
      );
    }
    // A file SQLite reads but that holds no langfuse-bridge tables at all (an empty file, say).
    if (v === 0) {
      const tables = this.db.prepare(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'`).pluck().get() as number;
      throw new DatabaseError(
        tables ? `database ${this.file} is not a langfuse-bridge database (no schema version); check BRIDGE_DATABASE` : `database ${this.file} is empty; \`langfuse-bridge run\` creates its tables`,
        this.file,
        'SCHEMA_NONE',
      );
    }
  }

  /** Writable: pragmas and migrations. */
  private setUp(): void {
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: every commit survives a crash of the process (SIGKILL included); a power cut
    // may undo the last few commits, which at-least-once delivery tolerates: an undone cursor and its
    // events are read again from Langfuse, an undone delivery outcome is sent again. FULL would fsync
    // every claim and settle, and cost most of the delivery throughput.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 10000');
    // Checkpoint every 32 MB of WAL instead of every 4 MB: pages that several commits rewrite (index
    // pages above all) are copied into the database once per checkpoint, and each checkpoint fsyncs.
    this.db.pragma('wal_autocheckpoint = 8192');
    // 8 MB of page cache instead of the driver's 16 MB: the OS caches the file anyway. Measured on a
    // backfill five times as dense as the benchmark's: peak RSS 206 -> 194 MB, for about 4 % more CPU.
    this.db.pragma('cache_size = -8000');
    this.db.pragma('foreign_keys = OFF');
    this.migrate();
  }

  private migrate(): void {
    const version = (): number => {
      const v = this.db.pragma('user_version', { simple: true }) as number;
      if (v > MIGRATIONS.length) {
        throw new DatabaseError(
          `database ${this.file} has schema ${v}, written by a newer langfuse-bridge: this build is older (it knows schema ${MIGRATIONS.length}); upgrade langfuse-bridge or point BRIDGE_DATABASE elsewhere`,
          this.file,
          'SCHEMA_NEWER',
        );
      }
      return v;
    };
    if (version() === MIGRATIONS.length) return;
    // Read the version again inside the write transaction: two processes opening a new database at
    // once must not both apply the same migration. The other one may be upgrading a large database:
    // wait for it as long as that takes.
    let found: number | null = null; // the version before the first migration applied here; 0: a new database
    this.db.pragma('busy_timeout = 3600000');
    try {
      for (;;) {
        const applied = this.db.transaction(() => {
          const current = version();
          if (current === MIGRATIONS.length) return false;
          found ??= current;
          if (found > 0) this.opts.onUpgrade?.(current, current + 1);
          this.db.exec(MIGRATIONS[current]!);
          this.db.pragma(`user_version = ${current + 1}`);
          return true;
        }).immediate();
        if (!applied) break;
      }
    } finally {
      this.db.pragma('busy_timeout = 10000');
    }
    // An upgrade rewrites most of the file through the WAL: give that space back.
    if ((found ?? 0) > 0) this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  /** Runs fn in a write transaction taken up front, so concurrent processes serialize cleanly. */
  write<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  // --- seen versions --------------------------------------------------------------------------

  getSeen(project: string, kind: string, id: string): SeenRow | undefined {
    return this.stmts.seenGet.get(project, kind, id) as SeenRow | undefined;
  }

  putSeen(project: string, row: SeenRow, now = Date.now()): void {
    this.stmts.seenPut.run(project, row.kind, row.id, row.version, row.level, row.created, row.detail, now);
  }

  // --- events and outbox ----------------------------------------------------------------------

  /**
   * Must run inside write(): stores each event once and one outbox row per sink. With a claimer,
   * new rows it has room for are written claimed by it (see Claimer).
   */
  enqueue(events: NewEvent[], opts: EnqueueOptions = {}, now = Date.now(), claimer?: Claimer): EnqueueResult {
    const res: EnqueueResult = { inserted: 0, requeued: 0, skipped: 0 };
    const origin = opts.origin ?? 'live';
    const handoff = claimer && (claimer.origin === null || claimer.origin === origin) ? claimer : null;
    for (const ev of events) {
      // An event stored earlier keeps its stored body, which is what a claim sends: hand over only new ones.
      const put = this.stmts.eventInsert.run(ev.id, ev.type, ev.ts, ev.body, now);
      const fresh = put.changes > 0;
      const eventSeq = fresh ? Number(put.lastInsertRowid) : (this.stmts.eventSeq.get(ev.id) as number);
      for (const sink of ev.sinks) {
        const lease = handoff && fresh ? handoff.leaseUntil(sink, now) : null;
        if (lease !== null) {
          const r = this.stmts.outboxInsertClaimed.run(eventSeq, ev.id, sink, now, OWNER, lease, now, now, origin);
          if (r.changes) {
            res.inserted++;
            handoff!.claimed({ seq: Number(r.lastInsertRowid), eventId: ev.id, sink, attempts: 1, body: ev.body, type: ev.type, leaseUntil: lease });
            continue;
          }
        } else if (this.stmts.outboxInsert.run(eventSeq, ev.id, sink, now, now, now, origin).changes) {
          res.inserted++;
          handoff?.queued(sink);
          continue;
        }
        // Once per pass: a row this pass already sent again is not sent a third time.
        if (opts.redeliver && this.stmts.outboxRequeue.run(now, now, origin, eventSeq, sink, origin).changes) res.requeued++;
        // Still pending from an earlier, interrupted pass: this pass takes it over and waits for it.
        else if (origin !== 'live' && this.stmts.outboxAdopt.run(origin, eventSeq, sink, origin).changes) res.requeued++;
        else {
          res.skipped++;
          continue;
        }
        handoff?.queued(sink);
      }
    }
    return res;
  }

  eventBody(id: string): { body: string; type: string } | undefined {
    return this.stmts.eventBody.get(id) as { body: string; type: string } | undefined;
  }

  /** Bodies of these events (by their write-order key), in one statement. */
  private bodiesBySeq(seqs: number[]): Map<number, { body: string; type: string }> {
    const out = new Map<number, { body: string; type: string }>();
    if (seqs.length === 0) return out;
    for (const b of this.stmts.eventBodies.all(JSON.stringify([...new Set(seqs)])) as Array<{ seq: number; body: string; type: string }>) out.set(b.seq, b);
    return out;
  }

  /** Atomically takes up to `limit` due deliveries of one sink for this process. */
  claim(sink: string, limit: number, leaseMs: number, origin: string | null = null, now = Date.now()): ClaimedDelivery[] {
    return this.write(() => {
      const rows = this.stmts.claim.all({ owner: OWNER, leaseUntil: now + leaseMs, now, sink, limit, origin }) as Array<{
        eventSeq: number;
        eventId: string;
        sink: string;
        attempts: number;
        nextAt: number;
        seq: number;
      }>;
      // RETURNING gives rows in storage order; hand them out in the order they were written.
      rows.sort((a, b) => a.nextAt - b.nextAt || a.seq - b.seq);
      if (rows.length === 0) return [];
      // Every body in one statement.
      const bodies = this.bodiesBySeq(rows.map((r) => r.eventSeq));
      const out: ClaimedDelivery[] = [];
      for (const r of rows) {
        const ev = bodies.get(r.eventSeq);
        if (ev) out.push({ seq: r.seq, eventId: r.eventId, sink: r.sink, attempts: r.attempts, body: ev.body, type: ev.type, leaseUntil: now + leaseMs });
      }
      return out;
    });
  }

  /** Writes a batch of attempt outcomes in one transaction. */
  settle(outcomes: DeliveryOutcome[], now = Date.now()): void {
    if (outcomes.length === 0) return;
    this.write(() => {
      // The common outcome in one statement; the rest row by row.
      const delivered: number[] = [];
      for (const o of outcomes) {
        if (o.status === 'delivered') {
          delivered.push(o.seq);
          continue;
        }
        // Only rows this process still holds: one whose lease ran out may belong to another by now.
        const p = { seq: o.seq, now, nextAt: o.nextAt ?? now, error: o.error ?? null, owner: OWNER };
        if (o.status === 'retrying') this.stmts.retry.run(p);
        else if (o.status === 'dead') this.stmts.dead.run(p);
        else this.stmts.release.run(p);
      }
      if (delivered.length) this.stmts.doneMany.run({ now, seqs: JSON.stringify(delivered), owner: OWNER });
      // The attempt log, in the same transaction.
      const attempts: Array<{ seq: number; attempt: Attempt }> = [];
      for (const o of outcomes) if (o.attempt) attempts.push({ seq: o.seq, attempt: o.attempt });
      insertAttempts(this.db, attempts);
    });
  }

  /** Extends this process's hold on a row; false when the row is no longer this process's to send. */
  renewLease(seq: number, leaseUntil: number, now = Date.now()): boolean {
    return this.stmts.renew.run({ seq, leaseUntil, now, owner: OWNER }).changes > 0;
  }

  /**
   * Deliveries left 'delivering' by a process that died: take them back when their lease ran out,
   * or at once when their owner is a process on this host that no longer exists.
   */
  recoverStalled(now = Date.now()): number {
    return this.write(() => {
      const rows = this.db
        .prepare(`SELECT seq, owner, lease_until AS leaseUntil FROM outbox WHERE status IN ('queued', 'retrying', 'delivering') AND status = 'delivering' AND owner IS NOT ?`)
        .all(OWNER) as Array<{ seq: number; owner: string | null; leaseUntil: number | null }>;
      let n = 0;
      const reset = this.db.prepare(
        `UPDATE outbox SET status = 'retrying', next_at = ?, owner = NULL, lease_until = NULL, updated_at = ?, last_error = COALESCE(last_error, 'attempt interrupted') WHERE seq = ? AND status = 'delivering'`,
      );
      for (const r of rows) {
        if ((r.leaseUntil ?? 0) < now || (r.owner && ownerIsDead(r.owner))) n += reset.run(now, now, r.seq).changes;
      }
      return n;
    });
  }

  /** The earliest time at which a row of this sink becomes due, or null when none waits. */
  nextDueAt(sink: string, origin: string | null = null): number | null {
    const row = this.db
      .prepare(`SELECT MIN(next_at) AS t FROM outbox WHERE sink = ? AND status IN ('queued', 'retrying') AND (? IS NULL OR origin = ?)`)
      .get(sink, origin, origin) as { t: number | null };
    return row.t;
  }

  /** Counts per sink and status; with origin, only that backfill's rows. */
  counts(origin: string | null = null): Map<string, Record<DeliveryStatus, number>> {
    const rows = this.db
      .prepare(`SELECT sink, status, COUNT(*) AS n FROM outbox WHERE (? IS NULL OR origin = ?) GROUP BY sink, status`)
      .all(origin, origin) as Array<{ sink: string; status: DeliveryStatus; n: number }>;
    const out = new Map<string, Record<DeliveryStatus, number>>();
    for (const r of rows) {
      const c = out.get(r.sink) ?? { queued: 0, delivering: 0, retrying: 0, delivered: 0, dead: 0 };
      c[r.status] = r.n;
      out.set(r.sink, c);
    }
    return out;
  }

  /** Rows not yet delivered or dead, per sink and status: reads only the small index of open rows. */
  openCounts(): Array<{ sink: string; status: DeliveryStatus; n: number }> {
    return this.db
      .prepare(`SELECT sink, status, COUNT(*) AS n FROM outbox WHERE status IN ('queued', 'retrying', 'delivering') GROUP BY sink, status`)
      .all() as Array<{ sink: string; status: DeliveryStatus; n: number }>;
  }

  oldestPendingAt(): number | null {
    const row = this.db.prepare(`SELECT MIN(created_at) AS t FROM outbox WHERE status IN ('queued', 'retrying', 'delivering')`).get() as { t: number | null };
    return row.t;
  }

  deadLetters(sink: string | null, sinceMs: number | null, limit = 20): Array<{ eventId: string; sink: string; type: string; attempts: number; deadAt: number; lastError: string | null }> {
    return this.db
      .prepare(
        `SELECT o.event_id AS eventId, o.sink, e.type, o.attempts, o.dead_at AS deadAt, o.last_error AS lastError
         FROM outbox o JOIN events e ON e.seq = o.event_seq
         WHERE o.status = 'dead' AND (? IS NULL OR o.sink = ?) AND (? IS NULL OR o.dead_at >= ?)
         ORDER BY o.dead_at DESC LIMIT ?`,
      )
      .all(sink, sink, sinceMs, sinceMs, limit) as Array<{ eventId: string; sink: string; type: string; attempts: number; deadAt: number; lastError: string | null }>;
  }

  /**
   * For `status`: a sink's last success, last failed attempt and next retry, each read from an index.
   * With the sink's counts, statuses it has no rows in are not looked up (a sink that never delivered
   * would scan every other sink's deliveries).
   */
  sinkActivity(
    sink: string,
    counts: Record<DeliveryStatus, number> | null = null,
  ): { lastSuccessAt: number | null; lastErrorAt: number | null; lastError: string | null; nextRetryAt: number | null } {
    const none = { lastSuccessAt: null, lastErrorAt: null, lastError: null, nextRetryAt: null };
    if (counts && counts.delivered + counts.dead + counts.retrying === 0) return none;
    const ok = counts?.delivered === 0 ? undefined : this.db.prepare(`SELECT delivered_at FROM outbox WHERE status = 'delivered' AND sink = ? ORDER BY delivered_at DESC LIMIT 1`).pluck().get(sink) as number | undefined;
    const retrying = this.db
      .prepare(
        // The status repeated as the partial index names it, so that the index of open rows is used.
        `SELECT updated_at AS at, last_error AS error FROM outbox WHERE status IN ('queued', 'retrying') AND status = 'retrying' AND sink = ? AND last_error IS NOT NULL ORDER BY updated_at DESC LIMIT 1`,
      )
      .get(sink) as { at: number; error: string } | undefined;
    const dead = counts?.dead === 0 ? undefined : this.db.prepare(`SELECT dead_at AS at, last_error AS error FROM outbox WHERE status = 'dead' AND sink = ? ORDER BY dead_at DESC LIMIT 1`).get(sink) as
      | { at: number; error: string | null }
      | undefined;
    const err = retrying && (!dead || retrying.at >= dead.at) ? retrying : dead;
    const next = this.db.prepare(`SELECT MIN(next_at) FROM outbox WHERE status IN ('queued', 'retrying') AND status = 'retrying' AND sink = ?`).pluck().get(sink) as number | null;
    return { lastSuccessAt: ok ?? null, lastErrorAt: err?.at ?? null, lastError: err?.error ?? null, nextRetryAt: next ?? null };
  }

  /** Dead letters per sink and reason (the last error), most frequent first. */
  deadByReason(): Array<{ sink: string; reason: string | null; count: number; lastAt: number }> {
    return this.db
      .prepare(`SELECT sink, last_error AS reason, COUNT(*) AS count, MAX(dead_at) AS lastAt FROM outbox WHERE status = 'dead' GROUP BY sink, last_error ORDER BY count DESC, lastAt DESC`)
      .all() as Array<{ sink: string; reason: string | null; count: number; lastAt: number }>;
  }

  /** Dead letters not replayed, dead-lettered since then. */
  deadSince(sinceMs: number): number {
    return this.db.prepare(`SELECT COUNT(*) FROM outbox WHERE status = 'dead' AND dead_at >= ?`).pluck().get(sinceMs) as number;
  }

  /** Rows of each origin but the live one that are not delivered or dead yet (backfills, test events). */
  openByOrigin(): Array<{ origin: string; status: DeliveryStatus; n: number; since: number }> {
    return this.db
      .prepare(`SELECT origin, status, COUNT(*) AS n, MIN(created_at) AS since FROM outbox WHERE status IN ('queued', 'retrying', 'delivering') AND origin <> 'live' GROUP BY origin, status`)
      .all() as Array<{ origin: string; status: DeliveryStatus; n: number; since: number }>;
  }

  /** Key/value rows whose key starts with this prefix. */
  metaWithPrefix(prefix: string): Array<{ key: string; value: string }> {
    return this.db.prepare(`SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? ORDER BY key`).all(prefix.length, prefix) as Array<{ key: string; value: string }>;
  }

  /** Puts dead letters back in the queue; returns how many. */
  replay(sink: string | null, sinceMs: number | null, now = Date.now()): number {
    return this.write(
      () =>
        this.db
          .prepare(
            `UPDATE outbox SET status = 'queued', attempts = 0, next_at = ?, updated_at = ?, dead_at = NULL, last_error = NULL
             WHERE status = 'dead' AND (? IS NULL OR sink = ?) AND (? IS NULL OR dead_at >= ?)`,
          )
          .run(now, now, sink, sink, sinceMs, sinceMs).changes,
    );
  }

  /** Does the outbox still hold work of this origin that is not yet delivered or dead? */
  pending(origin: string | null = null): number {
    const row = this.db
      .prepare(`SELECT COUNT(*) AS n FROM outbox WHERE status IN ('queued', 'retrying', 'delivering') AND (? IS NULL OR origin = ?)`)
      .get(origin, origin) as { n: number };
    return row.n;
  }

  // --- Redis relay (src/queue) ----------------------------------------------------------------
  // A row handed to a Redis queue is 'delivering' with owner 'redis' and a lease that never runs out;
  // its next_at at hand-over time is the generation in the job id, so a relay repeated after a crash
  // names the same job, and a replayed or redelivered row (next_at reset) names a new one.

  /** Marks up to `limit` queued or retrying rows of these sinks as handed to Redis; in write order. */
  takeForRelay(sinks: string[], limit: number, origin: string | null = null, now = Date.now()): RelayRow[] {
    if (sinks.length === 0 || limit <= 0) return [];
    return this.write(() => {
      const rows = this.db
        .prepare(
          `UPDATE outbox SET status = 'delivering', owner = '${REDIS_OWNER}', lease_until = ${REDIS_LEASE}, updated_at = @now
           WHERE seq IN (
             SELECT seq FROM outbox
             WHERE sink IN (SELECT value FROM json_each(@sinks)) AND status IN ('queued', 'retrying') AND (@origin IS NULL OR origin = @origin)
             ORDER BY next_at, seq LIMIT @limit)
           RETURNING event_seq AS eventSeq, event_id AS eventId, sink, attempts, next_at AS nextAt, seq`,
        )
        .all({ now, sinks: JSON.stringify(sinks), origin, limit }) as Array<{ eventSeq: number; eventId: string; sink: string; attempts: number; nextAt: number; seq: number }>;
      rows.sort((a, b) => a.nextAt - b.nextAt || a.seq - b.seq);
      const bodies = this.bodiesBySeq(rows.map((r) => r.eventSeq));
      const out: RelayRow[] = [];
      for (const r of rows) {
        const ev = bodies.get(r.eventSeq);
        if (ev) out.push({ eventId: r.eventId, sink: r.sink, gen: r.nextAt, attempts: r.attempts, body: ev.body, type: ev.type });
      }
      return out;
    });
  }

  /** Rows handed to Redis and not closed yet, by (sink, event id) after `after`; for reconciling. */
  relayed(origin: string | null, after: { sink: string; eventId: string } | null, limit: number): RelayRow[] {
    return this.db
      .prepare(
        `SELECT o.event_id AS eventId, o.sink, o.next_at AS gen, o.attempts, e.body, e.type FROM outbox o JOIN events e ON e.seq = o.event_seq
         WHERE o.status IN ('queued', 'retrying', 'delivering') AND o.status = 'delivering' AND o.owner = '${REDIS_OWNER}' AND (@origin IS NULL OR o.origin = @origin)
           AND (@sink IS NULL OR o.sink > @sink OR (o.sink = @sink AND o.event_id > @eventId))
         ORDER BY o.sink, o.event_id LIMIT @limit`,
      )
      .all({ origin, sink: after?.sink ?? null, eventId: after?.eventId ?? '', limit }) as RelayRow[];
  }

  /** Rows handed to Redis and not closed, per sink (the relay keeps each under a cap). */
  relayedBySink(): Map<string, number> {
    const rows = this.db
      .prepare(`SELECT sink, COUNT(*) AS n FROM outbox WHERE status IN ('queued', 'retrying', 'delivering') AND status = 'delivering' AND owner = '${REDIS_OWNER}' GROUP BY sink`)
      .all() as Array<{ sink: string; n: number }>;
    return new Map(rows.map((r) => [r.sink, r.n]));
  }

  /** How many rows wait on Redis (handed over, not closed). */
  relayedCount(origin: string | null = null): number {
    const row = this.db
      .prepare(`SELECT COUNT(*) AS n FROM outbox WHERE status IN ('queued', 'retrying', 'delivering') AND status = 'delivering' AND owner = '${REDIS_OWNER}' AND (? IS NULL OR origin = ?)`)
      .get(origin, origin) as { n: number };
    return row.n;
  }

  /**
   * Closes rows whose job ended: delivered, or dead (the failed job stays in Redis for `replay`).
   * Only the generation handed over is closed; returns the outcomes that changed a row, with the event type.
   */
  closeRelayed(outcomes: RelayOutcome[], now = Date.now()): Array<RelayOutcome & { type: string }> {
    if (outcomes.length === 0) return [];
    return this.write(() => {
      const done = this.db.prepare(
        `UPDATE outbox SET status = 'delivered', delivered_at = @now, updated_at = @now, owner = NULL, lease_until = NULL, last_error = NULL, attempts = attempts + @made
         WHERE event_seq = (SELECT seq FROM events WHERE id = @eventId) AND sink = @sink AND status = 'delivering' AND owner = '${REDIS_OWNER}' AND next_at = @gen`,
      );
      const dead = this.db.prepare(
        `UPDATE outbox SET status = 'dead', dead_at = @now, updated_at = @now, lease_until = NULL, last_error = @error, attempts = attempts + @made
         WHERE event_seq = (SELECT seq FROM events WHERE id = @eventId) AND sink = @sink AND status = 'delivering' AND owner = '${REDIS_OWNER}' AND next_at = @gen`,
      );
      const out: Array<RelayOutcome & { type: string }> = [];
      for (const o of outcomes) {
        const p = { eventId: o.eventId, sink: o.sink, gen: o.gen, now, made: Math.max(1, o.attempts ?? 1), error: o.error ?? null };
        if ((o.status === 'delivered' ? done : dead).run(p).changes) out.push({ ...o, type: (this.stmts.eventType.get(o.eventId) as string | undefined) ?? 'unknown' });
      }
      return out;
    });
  }

  /** Hands rows back to the outbox when Redis did not take them (queued or retrying, as before). */
  releaseRelayed(rows: Array<{ eventId: string; sink: string; gen: number }>, now = Date.now()): number {
    if (rows.length === 0) return 0;
    return this.write(() => {
      const st = this.db.prepare(
        `UPDATE outbox SET status = CASE WHEN attempts = 0 THEN 'queued' ELSE 'retrying' END, owner = NULL, lease_until = NULL, updated_at = ?
         WHERE event_seq = (SELECT seq FROM events WHERE id = ?) AND sink = ? AND status = 'delivering' AND owner = '${REDIS_OWNER}' AND next_at = ?`,
      );
      let n = 0;
      for (const r of rows) n += st.run(now, r.eventId, r.sink, r.gen).changes;
      return n;
    });
  }

  /** A dead row whose failed job `replay` retried in Redis: open again, closed when the job ends. */
  reopenRelayed(eventId: string, sink: string, gen: number, now = Date.now()): boolean {
    return (
      this.db
        .prepare(
          `UPDATE outbox SET status = 'delivering', lease_until = ${REDIS_LEASE}, dead_at = NULL, last_error = NULL, updated_at = ?
           WHERE event_seq = (SELECT seq FROM events WHERE id = ?) AND sink = ? AND status = 'dead' AND owner = '${REDIS_OWNER}' AND next_at = ?`,
        )
        .run(now, eventId, sink, gen).changes > 0
    );
  }

  // --- cursors --------------------------------------------------------------------------------

  getCursor(project: string, source: string): CursorRow {
    const r = this.stmts.cursorGet.get(project, source) as Record<string, unknown> | undefined;
    return {
      project,
      source,
      cursorMs: (r?.cursor_ms as number | null) ?? null,
      sweepFloorMs: (r?.sweep_floor_ms as number | null) ?? null,
      sweepPosMs: (r?.sweep_pos_ms as number | null) ?? null,
      sweepStartedAt: (r?.sweep_started_at as number | null) ?? null,
      lastSweepDoneAt: (r?.last_sweep_done_at as number | null) ?? null,
      lastPollAt: (r?.last_poll_at as number | null) ?? null,
      lastOkAt: (r?.last_ok_at as number | null) ?? null,
      lastOutcome: (r?.last_outcome as string | null) ?? null,
      lastError: (r?.last_error as string | null) ?? null,
    };
  }

  putCursor(c: CursorRow): void {
    this.db
      .prepare(
        `INSERT INTO cursors (project, source, cursor_ms, sweep_floor_ms, sweep_pos_ms, sweep_started_at, last_sweep_done_at, last_poll_at, last_ok_at, last_outcome, last_error)
         VALUES (@project, @source, @cursorMs, @sweepFloorMs, @sweepPosMs, @sweepStartedAt, @lastSweepDoneAt, @lastPollAt, @lastOkAt, @lastOutcome, @lastError)
         ON CONFLICT (project, source) DO UPDATE SET cursor_ms = excluded.cursor_ms, sweep_floor_ms = excluded.sweep_floor_ms, sweep_pos_ms = excluded.sweep_pos_ms,
           sweep_started_at = excluded.sweep_started_at, last_sweep_done_at = excluded.last_sweep_done_at, last_poll_at = excluded.last_poll_at,
           last_ok_at = excluded.last_ok_at, last_outcome = excluded.last_outcome, last_error = excluded.last_error`,
      )
      .run(c);
  }

  allCursors(): CursorRow[] {
    const rows = this.db.prepare('SELECT project, source FROM cursors ORDER BY project, source').all() as Array<{ project: string; source: string }>;
    return rows.map((r) => this.getCursor(r.project, r.source));
  }

  // --- key/value ------------------------------------------------------------------------------

  getMeta(key: string): string | null {
    const r = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return r?.value ?? null;
  }

  setMeta(key: string, value: string): void {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  // --- sink states -----------------------------------------------------------------------------
  // Kept in `meta`, written only when something changes (never per delivery): `sink-pause:<sink>`
  // holds until when every process delivering to the sink waits (a 429's Retry-After), and
  // `sink-state:<sink>` the state the delivering process last gave the sink, for `status`.

  /** Until when (ms) a receiver asked every process to leave this sink alone; 0: no pause. */
  sinkPausedUntil(sink: string): number {
    return Number(this.stmts.metaGet.get(`sink-pause:${sink}`) ?? 0) || 0;
  }

  /** Pauses a sink for every process on this database; a later pause only ever extends it. */
  pauseSink(sink: string, untilMs: number): void {
    this.db
      .prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)')
      .run(`sink-pause:${sink}`, String(Math.round(untilMs)));
  }

  recordSinkState(sink: string, s: RecordedSinkState): void {
    this.setMeta(`sink-state:${sink}`, JSON.stringify(s));
  }

  /** Each sink's last recorded state and pause; only reads `meta`, which every schema has. */
  sinkStates(): Map<string, RecordedSinkState & { pausedUntil: number | null }> {
    const out = new Map<string, RecordedSinkState & { pausedUntil: number | null }>();
    const rows = this.db.prepare(`SELECT key, value FROM meta WHERE key LIKE 'sink-state:%' OR key LIKE 'sink-pause:%'`).all() as Array<{ key: string; value: string }>;
    const pauses = new Map<string, number>();
    for (const r of rows) {
      if (r.key.startsWith('sink-pause:')) pauses.set(r.key.slice('sink-pause:'.length), Number(r.value) || 0);
      else {
        try {
          const v = JSON.parse(r.value) as RecordedSinkState;
          if (typeof v?.state === 'string') out.set(r.key.slice('sink-state:'.length), { ...v, pausedUntil: null });
        } catch {
          /* unreadable: shown as unknown */
        }
      }
    }
    for (const [sink, until] of pauses) {
      const s = out.get(sink) ?? { state: 'ok', since: 0, pausedUntil: null };
      s.pausedUntil = until;
      out.set(sink, s);
    }
    return out;
  }

  // --- the shared request ceiling ------------------------------------------------------------

  /**
   * A CallLedger over this database for one Langfuse project, for one process (`own`): its calls
   * share one window with every other process's, under one ceiling (the lowest any of them set; the
   * default when none did). Live polls come first, but a backfill always keeps a quarter of it.
   * Each process says what it holds to in `meta` (`ceiling:<key>:<id>`), renewed with every call.
   */
  callLedger(key: string, own: LedgerOwner = { max: 30, explicit: true, role: 'live' }): CallLedger {
    const pauseKey = `pause:${key}`;
    const regPrefix = `ceiling:${key}:`;
    const regKey = `${regPrefix}${OWNER}:${Math.random().toString(36).slice(2, 8)}`;
    // Backfill calls are kept under their own key, so that a backfill's share can be counted.
    const callKey = own.role === 'backfill' ? `${key}#backfill` : key;
    // On the main connection: a second connection writing to the same file would make this one drop
    // its whole page cache after every call. In WAL mode with synchronous=NORMAL a commit costs no fsync.
    const db = this.db;
    const sql = {
      paused: db.prepare('SELECT value FROM meta WHERE key = ?'),
      setPause: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)'),
      register: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      registered: db.prepare('SELECT key, value FROM meta WHERE key >= ? AND key < ?'),
      forget: db.prepare('DELETE FROM meta WHERE key = ?'),
      trim: db.prepare('DELETE FROM api_calls WHERE key IN (?, ?) AND at <= ?'),
      window: db.prepare('SELECT key, COUNT(*) AS n, MIN(at) AS oldest FROM api_calls WHERE key IN (?, ?) GROUP BY key'),
      add: db.prepare('INSERT INTO api_calls (key, at) VALUES (?, ?)'),
    };
    const backfillKey = `${key}#backfill`;
    let need = 0;
    // This process's record, rewritten when it changes or every 30 s: not once per call. Peers take
    // a record for gone only after 90 s without one.
    let written = { what: '', at: 0 };
    const register = (now: number, waitingUntil: number): void => {
      const what = JSON.stringify({ max: own.max, explicit: own.explicit, role: own.role, pid: process.pid, need, waitingUntil });
      if (what === written.what && now - written.at < 30_000) return;
      sql.register.run(regKey, JSON.stringify({ max: own.max, explicit: own.explicit, role: own.role, pid: process.pid, need, seen: now, waitingUntil }));
      written = { what, at: now };
    };
    const others = (now: number): LedgerPeer[] => {
      const out: LedgerPeer[] = [];
      for (const r of sql.registered.all(regPrefix, `${regPrefix}\uffff`) as Array<{ key: string; value: string }>) {
        if (r.key === regKey) continue;
        let p: LedgerPeer & { seen: number };
        try {
          p = JSON.parse(r.value) as LedgerPeer & { seen: number };
        } catch {
          continue;
        }
        // A process that made no call and waited for none in 90 s is gone (or idle): forget it.
        if (p.seen < now - 90_000 && p.waitingUntil < now) sql.forget.run(r.key);
        else out.push(p);
      }
      return out;
    };
    const reserve = db.transaction((windowMs: number, now: number): LedgerAnswer => {
      const peers = others(now);
      const set = [...(own.explicit ? [own.max] : []), ...peers.filter((p) => p.explicit).map((p) => p.max)];
      const ceiling = set.length ? Math.min(...set) : own.max;
      const quarter = Math.max(1, Math.ceil(ceiling / 4));
      const answer = (waitMs: number, reason: LedgerAnswer['reason']): LedgerAnswer => {
        register(now, waitMs > 0 ? now + waitMs : 0);
        return { waitMs, reason, ceiling, peers };
      };
      const pausedUntil = Number((sql.paused.get(pauseKey) as { value: string } | undefined)?.value ?? 0);
      if (pausedUntil > now) return answer(pausedUntil - now, 'pause');
      sql.trim.run(key, backfillKey, now - windowMs);
      let live = { n: 0, oldest: now };
      let backfill = { n: 0, oldest: now };
      for (const r of sql.window.all(key, backfillKey) as Array<{ key: string; n: number; oldest: number }>) {
        if (r.key === key) live = r;
        else backfill = r;
      }
      const total = live.n + backfill.n;
      const expires = (oldest: number): number => Math.max(1, oldest + windowMs - now + 1);
      if (total >= ceiling) return answer(expires(Math.min(live.n ? live.oldest : now, backfill.n ? backfill.oldest : now)), 'ceiling');
      if (own.role === 'live') {
        // Room a running backfill has not used of its quarter stays its own.
        const backfillRunning = peers.some((p) => p.role === 'backfill');
        const kept = backfillRunning ? Math.max(0, quarter - backfill.n) : 0;
        if (total + kept >= ceiling) return answer(Math.min(expires(live.n ? live.oldest : now), 1_000), 'backfill');
      } else if (backfill.n >= quarter) {
        // Past its quarter, a backfill leaves a daemon's polls the room they need, and gives way while a
        // live poll waits for room (or has just woken to ask again).
        const live = peers.filter((p) => p.role === 'live');
        const needed = Math.min(ceiling - quarter, live.reduce((sum, p) => sum + (p.need || 0), 0));
        if (backfill.n + needed >= ceiling || live.some((p) => p.waitingUntil > 0 && p.waitingUntil > now - 2_000)) {
          return answer(Math.min(expires(backfill.oldest), 1_000), 'live');
        }
      }
      sql.add.run(callKey, now);
      return answer(0, null);
    });
    return {
      reserve: (windowMs, now) => reserve.immediate(windowMs, now),
      pause: (untilMs) => void sql.setPause.run(pauseKey, String(untilMs)),
      setNeed: (perMinute) => void (need = Math.max(0, Math.ceil(perMinute))),
      // A process closing its database first has nothing left to release.
      release: () => {
        written = { what: '', at: 0 };
        if (db.open) sql.forget.run(regKey);
      },
    };
  }

  // --- retention ------------------------------------------------------------------------------

  /** Forgets delivered rows, seen versions and attempts older than the retention; never anything pending or dead. */
  prune(retentionDays: number, now = Date.now()): { outbox: number; events: number; seen: number; attempts: number } {
    const cutoff = now - retentionDays * 86_400_000;
    return this.write(() => {
      const outbox = this.db.prepare(`DELETE FROM outbox WHERE status = 'delivered' AND delivered_at < ?`).run(cutoff).changes;
      const events = this.db
        .prepare(`DELETE FROM events WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_seq = events.seq)`)
        .run(cutoff).changes;
      const seen = this.db.prepare(`DELETE FROM seen WHERE seen_at < ?`).run(cutoff).changes;
      if (outbox || seen) this.setMeta('pruned_before', String(cutoff));
      const attempts = pruneAttempts(this.db, cutoff);
      return { outbox, events, seen, attempts };
    });
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
