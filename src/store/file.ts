/**
 * The database file: opened safely (permissions, read-only use, schema checks, migrations) and what
 * its errors mean for the person who runs the bridge.
 */
import { accessSync, chmodSync, closeSync, constants, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { DatabaseError } from '../errors.js';
import { Meta } from './meta.js';
import { MIGRATIONS } from './migrations.js';
import { Sql } from './sql.js';

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
  /** Extra pragmas run on the connection after the store's own: for what-if measurements only. */
  pragmas?: string[];
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
 * Reads a database of any schema without a Store: its version and its daemon record (the key/value
 * table every schema has). Read only; for `check` on a file that `run` would upgrade.
 */
export function peekDatabase(file: string): { version: number; meta: Pick<Meta, 'daemon'> } {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const version = db.pragma('user_version', { simple: true }) as number;
    const daemon = new Meta(new Sql(db)).daemon();
    return { version, meta: { daemon: () => daemon } };
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

/**
 * Opens the database as these options say: read only (the schema must be this build's) or writable
 * (tuned and migrated to this build's schema). Errors name the file and the fix.
 */
export function openDatabase(file: string, opts: StoreOptions = {}): Database.Database {
  let db: Database.Database;
  try {
    db = opts.readonly ? openReadonly(file) : openWritable(file, opts.onLoosePermissions);
  } catch (err) {
    throw databaseProblem(err, file) ?? err;
  }
  try {
    if (opts.readonly) checkVersion(db, file);
    else setUp(db, file, opts.onUpgrade);
    for (const p of opts.pragmas ?? []) db.pragma(p);
  } catch (err) {
    db.close();
    throw (opts.readonly ? readonlyProblem(err, file) : null) ?? databaseProblem(err, file) ?? err;
  }
  return db;
}

/** SQLite opens lazily: a read-only WAL database needs its -shm file, which it must create when absent. */
function readonlyProblem(err: unknown, file: string): DatabaseError | null {
  if ((err as { code?: string }).code !== 'SQLITE_CANTOPEN' || existsSync(`${file}-shm`) || !unwritable(`${file}-shm`)) return null;
  return new DatabaseError(
    `database ${file} cannot be read: its folder is read-only and SQLite needs to create ${file}-shm beside it; make the folder writable, or read it where the daemon runs`,
    file,
    'SQLITE_CANTOPEN',
  );
}

function openReadonly(file: string): Database.Database {
  if (file === ':memory:') return new Database(file);
  if (!existsSync(file)) {
    throw new DatabaseError(`database ${file} does not exist; check BRIDGE_DATABASE (\`langfuse-bridge run\` creates it)`, file, 'ENOENT');
  }
  if (!statSync(file).isFile()) throw new DatabaseError(`database ${file} is not a file; check BRIDGE_DATABASE`, file, 'EISDIR');
  try {
    return new Database(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw readonlyProblem(err, file) ?? err;
  }
}

function openWritable(file: string, onLoosePermissions?: (files: LooseFile[]) => void): Database.Database {
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
function checkVersion(db: Database.Database, file: string): void {
  db.pragma('busy_timeout = 10000');
  const v = db.pragma('user_version', { simple: true }) as number;
  if (v > SCHEMA_VERSION) {
    throw new DatabaseError(
      `database ${file} has schema ${v}, written by a newer langfuse-bridge: this build is older (it knows schema ${SCHEMA_VERSION}); upgrade langfuse-bridge or point BRIDGE_DATABASE elsewhere`,
      file,
      'SCHEMA_NEWER',
    );
  }
  if (v > 0 && v < SCHEMA_VERSION) {
    throw new DatabaseError(
      `database ${file} has schema ${v}, older than this build's ${SCHEMA_VERSION}; run \`langfuse-bridge run\` to upgrade it (this command only reads)`,
      file,
      'SCHEMA_OLDER',
    );
  }
  // A file SQLite reads but that holds no langfuse-bridge tables at all (an empty file, say).
  if (v === 0) {
    const tables = db.prepare(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'`).pluck().get() as number;
    throw new DatabaseError(
      tables ? `database ${file} is not a langfuse-bridge database (no schema version); check BRIDGE_DATABASE` : `database ${file} is empty; \`langfuse-bridge run\` creates its tables`,
      file,
      'SCHEMA_NONE',
    );
  }
}

/** Writable: pragmas and migrations. */
function setUp(db: Database.Database, file: string, onUpgrade?: StoreOptions['onUpgrade']): void {
  db.pragma('journal_mode = WAL');
  // NORMAL in WAL mode: every commit survives a crash of the process (SIGKILL included); a power cut
  // may undo the last few commits, which at-least-once delivery tolerates: an undone cursor and its
  // events are read again from Langfuse, an undone delivery outcome is sent again. FULL would fsync
  // every claim and settle, and cost most of the delivery throughput.
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 10000');
  // Checkpoint every 32 MB of WAL instead of every 4 MB: pages that several commits rewrite (index
  // pages above all) are copied into the database once per checkpoint, and each checkpoint fsyncs.
  db.pragma('wal_autocheckpoint = 8192');
  // 8 MB of page cache instead of the driver's 16 MB: the OS caches the file anyway. Measured on a
  // backfill five times as dense as the benchmark's: peak RSS 206 -> 194 MB, for about 4 % more CPU.
  db.pragma('cache_size = -8000');
  db.pragma('foreign_keys = OFF');
  migrate(db, file, onUpgrade);
}

function migrate(db: Database.Database, file: string, onUpgrade?: StoreOptions['onUpgrade']): void {
  const version = (): number => {
    const v = db.pragma('user_version', { simple: true }) as number;
    if (v > MIGRATIONS.length) {
      throw new DatabaseError(
        `database ${file} has schema ${v}, written by a newer langfuse-bridge: this build is older (it knows schema ${MIGRATIONS.length}); upgrade langfuse-bridge or point BRIDGE_DATABASE elsewhere`,
        file,
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
  db.pragma('busy_timeout = 3600000');
  try {
    for (;;) {
      const applied = db.transaction(() => {
        const current = version();
        if (current === MIGRATIONS.length) return false;
        found ??= current;
        if (found > 0) onUpgrade?.(current, current + 1);
        db.exec(MIGRATIONS[current]!);
        db.pragma(`user_version = ${current + 1}`);
        return true;
      }).immediate();
      if (!applied) break;
    }
  } finally {
    db.pragma('busy_timeout = 10000');
  }
  // An upgrade rewrites most of the file through the WAL: give that space back.
  if ((found ?? 0) > 0) db.pragma('wal_checkpoint(TRUNCATE)');
}
