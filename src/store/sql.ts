/** The one connection the store's tables share: each statement prepared once, on first use, and write transactions. */
import type Database from 'better-sqlite3';

export type Statement = Database.Statement;

export class Sql {
  readonly #db: Database.Database;
  readonly #prepared = new Map<string, Statement>();
  readonly #plucked = new Map<string, Statement>();

  constructor(db: Database.Database) {
    this.#db = db;
  }

  /** The statement for this text, prepared the first time it is asked for. */
  prepare(sql: string): Statement {
    let st = this.#prepared.get(sql);
    if (!st) {
      st = this.#db.prepare(sql);
      this.#prepared.set(sql, st);
    }
    return st;
  }

  /** As prepare, answering the first column only. */
  pluck(sql: string): Statement {
    let st = this.#plucked.get(sql);
    if (!st) {
      st = this.#db.prepare(sql).pluck();
      this.#plucked.set(sql, st);
    }
    return st;
  }

  /** Runs fn in a write transaction taken up front, so concurrent processes serialize cleanly. */
  write<T>(fn: () => T): T {
    return this.#db.transaction(fn).immediate();
  }

  /** A function that always runs in its own write transaction, made once for a caller that runs it often. */
  writer<A extends unknown[], T>(fn: (...args: A) => T): (...args: A) => T {
    const tx = this.#db.transaction(fn);
    return (...args: A) => tx.immediate(...args);
  }

  get open(): boolean {
    return this.#db.open;
  }
}
