/**
 * Redis mode's attempt log: workers never write to SQLite (they may run elsewhere), so each attempt
 * they make is pushed onto a Redis list, and the relay in `run` moves the list into the attempt log
 * in one transaction per batch — while the job is still retrying, not only at its end.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Attempt, Store } from '../store/index.js';
import { oneLine } from '../errors.js';

export const attemptsKey = (prefix: string): string => `${prefix}:bridge:attempts`;

/** Beyond this many waiting entries (no relay reading them), the oldest are dropped. */
const MAX_WAITING = 100_000;

interface Entry {
  e: string;
  s: string;
  a: Attempt;
}

/** A worker's side: attempts are gathered for a tick and pushed in one command. */
export class AttemptPusher {
  private batch: string[] = [];
  private scheduled = false;
  private lastErrorLog = 0;

  constructor(
    private readonly client: Redis,
    private readonly key: string,
    private readonly logger: Logger,
  ) {}

  push(eventId: string, sink: string, attempt: Attempt): void {
    const entry: Entry = { e: eventId, s: sink, a: attempt };
    this.batch.push(JSON.stringify(entry));
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => void this.flush());
  }

  /** Pushes what is gathered (for up to a second) and closes the connection. */
  async close(): Promise<void> {
    await Promise.race([this.flush(), new Promise((r) => setTimeout(r, 1_000).unref())]);
    this.client.disconnect();
  }

  async flush(): Promise<void> {
    this.scheduled = false;
    const batch = this.batch;
    if (!batch.length) return;
    this.batch = [];
    try {
      await this.client.multi().rpush(this.key, ...batch).ltrim(this.key, -MAX_WAITING, -1).exec();
    } catch (err) {
      // The delivery itself is unaffected; only its line in the attempt log is missing.
      if (Date.now() - this.lastErrorLog > 30_000) {
        this.lastErrorLog = Date.now();
        this.logger.warn({ err: oneLine(err), attempts: batch.length }, 'could not hand attempts to the attempt log in Redis');
      }
    }
  }
}

/** The relay's side: moves up to `max` waiting attempts into the attempt log; returns how many. */
export async function drainAttempts(client: Redis, key: string, store: Store, max = 1000): Promise<number> {
  const raw = (await client.lpop(key, max)) as string[] | null;
  if (!raw || raw.length === 0) return 0;
  const rows: Array<{ eventId: string; sink: string; attempt: Attempt }> = [];
  for (const r of raw) {
    try {
      const entry = JSON.parse(r) as Entry;
      if (typeof entry.e === 'string' && typeof entry.s === 'string' && entry.a) rows.push({ eventId: entry.e, sink: entry.s, attempt: entry.a });
    } catch {
      /* not ours */
    }
  }
  store.recordAttempts(rows);
  return raw.length;
}
