/**
 * A test's own connection to a store's file, to look at rows (or arrange them) where the Store has no
 * method for it: the Store keeps its connection to itself. One per file, closed after each test.
 */
import Database from 'better-sqlite3';
import { afterEach } from 'vitest';
import type { Store } from '../../src/store/index.js';

const open = new Map<string, Database.Database>();

afterEach(() => {
  for (const db of open.values()) db.close();
  open.clear();
});

export function sqlite(store: Store | string): Database.Database {
  const file = typeof store === 'string' ? store : store.file;
  let db = open.get(file);
  if (!db?.open) {
    db = new Database(file);
    db.pragma('busy_timeout = 10000');
    open.set(file, db);
  }
  return db;
}
