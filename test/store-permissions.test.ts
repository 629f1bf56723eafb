/**
 * Data at rest: the database, its -wal and -shm files and a folder the bridge creates are its owner's
 * alone, under the usual umask 022; an existing database open to others (an older version's 0644) is
 * set to 0600 and said so once.
 */
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Store, type LooseFile } from '../src/store/index.js';
import { assertBuilt, bridgeEnv, runCli, tempDir } from './helpers/cli.js';

const mode = (f: string): number => statSync(f).mode & 0o777;
const octal = (m: number): string => `0${m.toString(8)}`;

let umask = 0;
beforeAll(() => {
  umask = process.umask(0o022);
});
afterAll(() => {
  process.umask(umask);
});

const tmp = tempDir('lfb-perm-');
afterAll(() => tmp.cleanup());
const stores: Store[] = [];
afterEach(() => {
  while (stores.length) stores.pop()!.close();
});

describe('files the bridge creates', () => {
  it('creates the folders 0700 and the database, -wal and -shm 0600', () => {
    const file = path.join(tmp.dir, 'new', 'nested', 'bridge.db');
    const store = new Store(file);
    stores.push(store);
    store.meta.setPrunedBefore(1); // any write
    for (const f of [file, `${file}-wal`, `${file}-shm`]) {
      expect(existsSync(f), f).toBe(true);
      expect(octal(mode(f)), f).toBe('0600');
    }
    expect(octal(mode(path.join(tmp.dir, 'new')))).toBe('0700');
    expect(octal(mode(path.join(tmp.dir, 'new', 'nested')))).toBe('0700');
  });

  it('sets an existing 0644 database and its -wal and -shm to 0600 and says so once', () => {
    const dir = path.join(tmp.dir, 'old');
    mkdirSync(dir, { mode: 0o755 });
    const file = path.join(dir, 'bridge.db');
    // As an older version left it: created by SQLite itself, 0644, with its WAL files still there.
    const old = new Database(file);
    old.pragma('journal_mode = WAL');
    old.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)');
    for (const f of [file, `${file}-wal`, `${file}-shm`]) chmodSync(f, 0o644);
    const told: LooseFile[][] = [];
    const store = new Store(file, { onLoosePermissions: (files) => told.push(files) });
    stores.push(store);
    old.close();
    expect(told).toEqual([
      [
        { file, mode: 0o644, tightened: true },
        { file: `${file}-wal`, mode: 0o644, tightened: true },
        { file: `${file}-shm`, mode: 0o644, tightened: true },
      ],
    ]);
    for (const f of [file, `${file}-wal`, `${file}-shm`]) expect(octal(mode(f)), f).toBe('0600');
    // The folder was not created by the bridge: left alone.
    expect(octal(mode(dir))).toBe('0755');
    // Opened again: nothing to say.
    store.close();
    stores.pop();
    const again: LooseFile[][] = [];
    stores.push(new Store(file, { onLoosePermissions: (files) => again.push(files) }));
    expect(again).toEqual([]);
  });
});

describe('the CLI', () => {
  beforeAll(() => assertBuilt());

  it('warns once, naming the file and its old mode, when it tightens an existing database', async () => {
    const file = path.join(tmp.dir, 'cli', 'bridge.db');
    mkdirSync(path.dirname(file));
    const old = new Database(file);
    old.close();
    chmodSync(file, 0o644);
    const env = bridgeEnv({ langfuseUrl: 'http://127.0.0.1:9', database: file });
    const p = await runCli(['test-event'], env, 30_000);
    expect(p.exit?.code, p.describe()).toBe(0);
    const warnings = p.logs().filter((l) => /0600/.test(String(l.msg)));
    expect(warnings, p.stderr).toHaveLength(1);
    expect(warnings[0]!.files).toEqual([`${file} (was 0644)`]);
    expect(octal(mode(file))).toBe('0600');
  });
});
