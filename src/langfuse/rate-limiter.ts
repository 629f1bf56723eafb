/**
 * Where processes sharing one database (a daemon and a backfill) keep their calls, so that together
 * they stay under one ceiling per project.
 */
export interface CallLedger {
  /** Atomically: record a call at `now` and return 0 if the window has room and no pause holds; else the ms to wait. */
  reserve(max: number, windowMs: number, now: number): number;
  pause(untilMs: number): void;
}

/**
 * A sliding-window ceiling: no 60 s window ever holds more than `maxPerMinute` calls, retries
 * included, and a 429 pauses every call to the project until its Retry-After has passed.
 */
export class RateLimiter {
  private readonly starts: number[] = [];
  private pausedUntil = 0;
  waitedMs = 0;
  waits = 0;

  constructor(
    readonly maxPerMinute: number,
    private readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
    private readonly ledger: CallLedger | null = null,
  ) {}

  /** Calls still allowed in the current window without waiting. */
  available(): number {
    this.trim();
    return Math.max(0, this.maxPerMinute - this.starts.length);
  }

  pause(untilMs: number): void {
    if (untilMs > this.pausedUntil) this.pausedUntil = untilMs;
    this.ledger?.pause(untilMs);
  }

  get pausedUntilMs(): number {
    return this.pausedUntil;
  }

  private trim(): void {
    const cutoff = this.now() - this.windowMs;
    while (this.starts.length && this.starts[0]! <= cutoff) this.starts.shift();
  }

  /** Resolves when a call may start, and counts it. */
  async acquire(signal?: AbortSignal): Promise<void> {
    let waited = false;
    const began = this.now();
    for (;;) {
      signal?.throwIfAborted();
      this.trim();
      const t = this.now();
      let until = 0;
      if (this.pausedUntil > t) until = this.pausedUntil;
      else if (this.starts.length >= this.maxPerMinute) until = this.starts[0]! + this.windowMs + 1;
      if (!until && this.ledger) {
        const wait = this.ledger.reserve(this.maxPerMinute, this.windowMs, t);
        if (wait > 0) until = t + wait;
      }
      if (!until) break;
      waited = true;
      await sleep(until - t, signal);
    }
    if (waited) {
      this.waits++;
      this.waitedMs += this.now() - began;
    }
    this.starts.push(this.now());
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
