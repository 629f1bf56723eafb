/** The request ceiling in front of every Langfuse call (shared by the processes on one database), and 429 pauses. */

/** Who a process is to the shared ceiling: its own setting and what it does. */
export interface LedgerOwner {
  /** BRIDGE_MAX_REQUESTS_PER_MINUTE as this process has it. */
  max: number;
  /** Whether it was set, or is the default (a default yields to what another process set). */
  explicit: boolean;
  /** Live polls come first; a backfill keeps at least a quarter of the ceiling. */
  role: 'live' | 'backfill';
}

/** Another process on the same database, as it last said. */
export interface LedgerPeer extends LedgerOwner {
  pid: number;
  /** A daemon: the calls a minute its polls' head reads need (kept free of a backfill past its quarter). */
  need: number;
  /** When it waits for room, until when (0: not waiting). */
  waitingUntil: number;
}

export interface LedgerAnswer {
  /** 0: the call was recorded and may go; else the ms to wait before asking again. */
  waitMs: number;
  /** What the wait is for: a 429's Retry-After, a full window, room kept for a backfill, or live polls first. */
  reason: 'pause' | 'ceiling' | 'backfill' | 'live' | null;
  /** The ceiling in force for every process on the database. */
  ceiling: number;
  peers: LedgerPeer[];
}

/**
 * Where processes sharing one database (a daemon and a backfill) keep their calls, so that together
 * they stay under one ceiling per project.
 */
export interface CallLedger {
  /** Atomically: record a call at `now` if there is room and no pause holds. */
  reserve(windowMs: number, now: number): LedgerAnswer;
  pause(untilMs: number): void;
  /** A daemon says how many calls a minute its polls' head reads need. */
  setNeed(perMinute: number): void;
  /** This process is done with the project (its share is no longer kept for it). */
  release(): void;
}

export type WaitReason = 'pause' | 'ceiling' | 'backfill' | 'live';

/**
 * A sliding-window ceiling: no 60 s window ever holds more than the ceiling's calls, retries
 * included, and a 429 pauses every call to the project until its Retry-After has passed. With a
 * ledger the window and the ceiling are those of every process on the database.
 */
export class RateLimiter {
  private readonly starts: number[] = [];
  private pausedUntil = 0;
  private readonly waiters = new Map<symbol, { reason: WaitReason; untilMs: number }>();
  waitedMs = 0;
  waits = 0;
  /** The ceiling in force: this process's own, or with a ledger the one shared by the database. */
  ceiling: number;
  /** A call starts to wait (once per call, with what it waits for and until when). */
  onWait?: (reason: WaitReason, untilMs: number) => void;
  /** Every answer of the shared ledger. */
  onLedger?: (a: LedgerAnswer) => void;

  constructor(
    readonly maxPerMinute: number,
    private readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
    private readonly ledger: CallLedger | null = null,
  ) {
    this.ceiling = maxPerMinute;
  }

  /** Calls still allowed in the current window without waiting. */
  available(): number {
    this.trim();
    return Math.max(0, this.ceiling - this.starts.length);
  }

  pause(untilMs: number): void {
    if (untilMs > this.pausedUntil) this.pausedUntil = untilMs;
    this.ledger?.pause(untilMs);
  }

  get pausedUntilMs(): number {
    return this.pausedUntil;
  }

  /** What a call waits for right now (the longest wait), or null when none waits. */
  get waiting(): { reason: WaitReason; untilMs: number } | null {
    let out: { reason: WaitReason; untilMs: number } | null = null;
    for (const w of this.waiters.values()) if (!out || w.untilMs > out.untilMs) out = w;
    return out;
  }

  /** Whether a ledger shares this ceiling with other processes. */
  get shared(): boolean {
    return this.ledger !== null;
  }

  private trim(): void {
    const cutoff = this.now() - this.windowMs;
    while (this.starts.length && this.starts[0]! <= cutoff) this.starts.shift();
  }

  /** Resolves when a call may start, and counts it. */
  async acquire(signal?: AbortSignal): Promise<void> {
    const me = Symbol('call');
    const began = this.now();
    try {
      for (;;) {
        signal?.throwIfAborted();
        this.trim();
        const t = this.now();
        let until = 0;
        let reason: WaitReason = 'ceiling';
        if (this.pausedUntil > t) {
          until = this.pausedUntil;
          reason = 'pause';
        } else if (!this.ledger && this.starts.length >= this.ceiling) until = this.starts[0]! + this.windowMs + 1;
        if (!until && this.ledger) {
          const a = this.ledger.reserve(this.windowMs, t);
          this.ceiling = a.ceiling;
          this.onLedger?.(a);
          if (a.waitMs > 0) {
            until = t + a.waitMs;
            reason = a.reason ?? 'ceiling';
          }
        }
        if (!until) break;
        const before = this.waiters.get(me);
        this.waiters.set(me, { reason, untilMs: until });
        if (!before || before.reason !== reason) this.onWait?.(reason, until);
        await sleep(until - t, signal);
      }
    } finally {
      if (this.waiters.delete(me)) {
        this.waits++;
        this.waitedMs += this.now() - began;
      }
    }
    this.starts.push(this.now());
  }

  /** The calls a minute live polls need, kept free of a backfill on the same database (past its quarter). */
  setNeed(perMinute: number): void {
    this.ledger?.setNeed(perMinute);
  }

  /** This process is done: its share of a shared ceiling is no longer kept for it. */
  release(): void {
    this.ledger?.release();
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
