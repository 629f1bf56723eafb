/**
 * A sink's health: one state, named alike in `status`, `/metrics`, logs and the console.
 *
 * - `ok`: the last attempts were delivered.
 * - `failing`: recent attempts fail; deliveries retry on their schedule.
 * - `paused`: a 429 (or a 503 with Retry-After) asked the whole sink to wait; nothing is sent to it
 *   until then (Retry-After capped at one hour).
 * - `open`: the circuit breaker holds deliveries: after BREAKER_FAILURES failed attempts in a row over
 *   at least the retry base, one delivery at a time probes the sink, the first after the retry base and
 *   each next one twice as late (at most BREAKER_MAX_PROBE_MS); the first delivered probe closes it.
 *
 * The breaker is the daemon's (`run`): a bounded pass (`backfill`, `test-event`) tries each of its
 * deliveries on the schedule so that it ends, and Redis workers leave retries to BullMQ's schedule.
 *
 * Deliveries held by a pause or an open breaker are not attempted and keep their attempt counts.
 * Logging is quiet: one line per change of state and, while a sink is not ok, one summary a minute
 * (attempts, statuses seen, next retry, dead-lettered); dead letters are counted in the same way.
 * Nothing here writes per delivery.
 */
import type { Logger } from 'pino';
import type { DeliveryResult } from '../sinks/types.js';
import { cappedRetryAfter } from './retry.js';
import type { AttemptOutcome, SinkState } from './states.js';

/** Failed attempts in a row (none delivered in between) that open the breaker... */
export const BREAKER_FAILURES = 5;
/** ...once they span at least the retry base; probes then start after the base, doubling up to this. */
export const BREAKER_MAX_PROBE_MS = 300_000;
/** How often a sink that is not ok says how it is doing. */
export const SUMMARY_EVERY_MS = 60_000;

/** A result that pauses the whole sink: a 429, or a 503 that says when to come back. */
export function pausesSink(result: DeliveryResult): boolean {
  if (result.ok) return false;
  return result.status === 429 || (result.status === 503 && result.retryAfterMs !== undefined);
}

/** What happens to a delivery that is about to be attempted. */
export type Gate = { go: true; probe: boolean } | { go: false; untilMs: number };

export interface SinkHealthOptions {
  logger: Logger;
  /** The retry base (seconds): the breaker's shortest span and first probe interval. */
  baseSeconds: number;
  summaryEveryMs?: number;
  /**
   * Whether this process's breaker may open (default true). A bounded pass (backfill, test-event)
   * has none: it tries each of its deliveries on the schedule, so that it ends.
   */
  breaker?: boolean;
  /** False for deliveries `replay` does not take back (a test event): their dead letters do not point to it. */
  replayable?: boolean;
  /** Told of every change of state (metrics, the state recorded for `status`). */
  onChange?(state: SinkState, detail: { pausedUntil: number | null; nextProbeAt: number | null }): void;
}

interface Period {
  attempts: number;
  failed: number;
  delivered: number;
  statuses: Record<string, number>;
  deadLettered: number;
  lastReason: string | null;
  nextRetryAt: number | null;
}

const emptyPeriod = (): Period => ({ attempts: 0, failed: 0, delivered: 0, statuses: {}, deadLettered: 0, lastReason: null, nextRetryAt: null });

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export class SinkHealth {
  private stateNow: SinkState = 'ok';
  private pausedUntilMs = 0;
  private streak = 0;
  private streakSince = 0;
  private nextProbeAt: number | null = null;
  private probes = 0;
  private probeInFlight = false;
  /** Since the sink stopped being ok: for the recovery line. */
  private trouble: { since: number; failed: number; deadLettered: number } | null = null;
  private period = emptyPeriod();
  private lastSummaryAt = 0;
  /** Dead letters of a sink that is ok (refused for good, one by one): the first is told at once. */
  private lastDeadLogAt = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly sink: string,
    private readonly opts: SinkHealthOptions,
  ) {}

  get state(): SinkState {
    if (this.stateNow === 'paused' && this.pausedUntilMs <= Date.now()) return 'failing';
    return this.stateNow;
  }

  get pausedUntil(): number | null {
    return this.pausedUntilMs > Date.now() ? this.pausedUntilMs : null;
  }

  get probeAt(): number | null {
    return this.stateNow === 'open' ? this.nextProbeAt : null;
  }

  private get log(): Logger {
    return this.opts.logger;
  }

  private baseMs(): number {
    return Math.max(1, Math.round(this.opts.baseSeconds * 1000));
  }

  private probeIntervalMs(): number {
    return Math.min(BREAKER_MAX_PROBE_MS, this.baseMs() * 2 ** Math.min(this.probes, 20));
  }

  /** May a delivery be attempted now? At most one probe at a time while the breaker is open. */
  gate(now = Date.now()): Gate {
    if (this.pausedUntilMs > now) return { go: false, untilMs: this.pausedUntilMs };
    if (this.stateNow === 'paused') this.set('failing');
    if (this.stateNow !== 'open') return { go: true, probe: false };
    const at = this.nextProbeAt ?? now;
    if (this.probeInFlight || at > now) return { go: false, untilMs: this.probeInFlight ? now + this.probeIntervalMs() : at };
    this.probeInFlight = true;
    return { go: true, probe: true };
  }

  /**
   * Until when a delivery that is not the probe is held (paused, or the breaker open); null: it may
   * go. Changes nothing: the loop takes the probe with gate().
   */
  heldUntil(now = Date.now()): number | null {
    if (this.pausedUntilMs > now) return this.pausedUntilMs;
    if (this.stateNow !== 'open') return null;
    const at = this.nextProbeAt ?? now;
    return this.probeInFlight || at <= now ? now + this.probeIntervalMs() : at;
  }

  /** A probe that was not attempted after all (stopping, lease lost): another may go. */
  probeReleased(): void {
    this.probeInFlight = false;
  }

  /**
   * Another process on the same sink was told to wait (the shared pause): hold deliveries here too
   * until then. Logged as a change of state like a pause met here.
   */
  pauseShared(untilMs: number): void {
    if (untilMs <= this.pausedUntilMs || untilMs <= Date.now()) return;
    this.pausedUntilMs = untilMs;
    if (this.stateNow !== 'paused') {
      this.log.warn({ sink: this.sink, state: 'paused', pausedUntil: iso(untilMs) }, 'sink paused: the receiver asked another process to wait; holding deliveries until then');
      this.enterTrouble();
      this.set('paused');
    }
  }

  /**
   * One attempt's result. `outcome` is what became of the delivery; `nextAt` its next attempt when
   * retrying. Returns the time the whole sink is paused until, when this result paused it.
   */
  record(result: DeliveryResult, outcome: AttemptOutcome, o: { nextAt?: number; probe?: boolean; eventId?: string; eventType?: string; attempt?: number } = {}): number | null {
    const now = Date.now();
    if (o.probe) this.probeInFlight = false;
    const p = this.period;
    p.attempts++;
    if (result.ok) {
      p.delivered++;
      this.streak = 0;
      // An attempt that was under way when the pause came does not end it: the receiver said when.
      if (this.stateNow !== 'ok' && this.pausedUntilMs <= now) this.recovered(o.probe === true);
      return null;
    }
    p.failed++;
    const key = result.status !== undefined ? String(result.status) : 'no answer';
    p.statuses[key] = (p.statuses[key] ?? 0) + 1;
    p.lastReason = result.reason;
    if (outcome === 'retrying' && o.nextAt !== undefined && (p.nextRetryAt === null || o.nextAt < p.nextRetryAt)) p.nextRetryAt = o.nextAt;
    if (outcome === 'dead') this.deadLetter(result.reason, o, !result.retry);
    // A delivery the sink refused for good (410, a 4xx from Slack) says nothing about the sink's health.
    if (!result.retry) return null;
    if (this.streak === 0) this.streakSince = now;
    this.streak++;
    if (this.trouble) this.trouble.failed++;
    if (pausesSink(result)) {
      const wait = cappedRetryAfter(Math.max(result.retryAfterMs ?? 0, o.nextAt !== undefined ? o.nextAt - now : 0, this.baseMs()));
      const until = now + wait;
      if (until > this.pausedUntilMs) {
        this.pausedUntilMs = until;
        const was = this.stateNow;
        this.enterTrouble(1);
        if (was === 'open') {
          this.probes = 0;
          this.nextProbeAt = null;
        }
        this.log.warn(
          { sink: this.sink, state: 'paused', pausedUntil: iso(until), status: result.status, reason: result.reason },
          'sink paused: the receiver asked to wait; every delivery to it is held until then',
        );
        this.set('paused');
      }
      return until;
    }
    if (this.stateNow === 'open') {
      // A failed probe (or an attempt that was already under way): the next probe waits longer.
      if (o.probe) {
        this.probes++;
        this.nextProbeAt = now + this.probeIntervalMs();
      }
      return null;
    }
    if (this.stateNow === 'ok') {
      this.enterTrouble(1);
      this.log.warn({ sink: this.sink, state: 'failing', status: result.status, reason: result.reason, eventId: o.eventId }, 'sink failing: deliveries are retried on the schedule');
      this.set('failing');
    }
    if (this.opts.breaker !== false && this.streak >= BREAKER_FAILURES && now - this.streakSince >= this.baseMs() && this.pausedUntilMs <= now) {
      this.probes = 0;
      this.nextProbeAt = now + this.probeIntervalMs();
      this.log.warn(
        { sink: this.sink, state: 'open', failedInARow: this.streak, failingSeconds: Math.round((now - this.streakSince) / 100) / 10, nextProbeAt: iso(this.nextProbeAt) },
        'circuit open: deliveries to this sink are held; one delivery probes it, and the rest follow once it succeeds',
      );
      this.set('open');
    }
    return null;
  }

  private enterTrouble(failed = 0): void {
    if (!this.trouble) {
      this.trouble = { since: Date.now(), failed, deadLettered: 0 };
      this.lastSummaryAt = Date.now();
    }
    this.startTimer();
  }

  private deadLetter(reason: string, o: { eventId?: string; eventType?: string; attempt?: number }, refused: boolean): void {
    this.period.deadLettered++;
    if (this.trouble) {
      this.trouble.deadLettered++;
      return; // counted in the summary
    }
    const now = Date.now();
    const every = this.opts.summaryEveryMs ?? SUMMARY_EVERY_MS;
    if (now - this.lastDeadLogAt >= every) {
      this.lastDeadLogAt = now;
      this.lastSummaryAt = now;
      this.log.error(
        { sink: this.sink, state: this.state, eventId: o.eventId, event: o.eventType, attempt: o.attempt, reason },
        this.opts.replayable === false
          ? 'not delivered'
          : refused
            ? 'dead-lettered: the sink refused it for good; `langfuse-bridge replay` sends it again (more are counted in a summary a minute)'
            : 'dead-lettered after the last attempt; `langfuse-bridge replay` sends it again (more are counted in a summary a minute)',
      );
      this.period.deadLettered = 0;
    }
    this.startTimer();
  }

  private recovered(byProbe: boolean): void {
    const t = this.trouble;
    const was = this.stateNow;
    this.trouble = null;
    this.probes = 0;
    this.nextProbeAt = null;
    this.probeInFlight = false;
    this.log.info(
      {
        sink: this.sink,
        state: 'ok',
        was,
        failedAttempts: t?.failed ?? 0,
        deadLettered: t?.deadLettered ?? 0,
        troubleSeconds: t ? Math.round((Date.now() - t.since) / 100) / 10 : 0,
      },
      byProbe || was === 'open' ? 'circuit closed: the probe was delivered; the held deliveries follow' : 'sink recovered: deliveries go through again',
    );
    this.period = emptyPeriod();
    this.set('ok');
  }

  private set(state: SinkState): void {
    if (this.stateNow === state) return;
    this.stateNow = state;
    this.opts.onChange?.(state, { pausedUntil: this.pausedUntil, nextProbeAt: this.probeAt });
  }

  private startTimer(): void {
    if (this.timer) return;
    const every = this.opts.summaryEveryMs ?? SUMMARY_EVERY_MS;
    this.timer = setInterval(() => this.tick(), Math.max(50, Math.min(every, 10_000)));
    this.timer.unref();
  }

  /** Says how the sink did since the last summary, at most once per summary interval. */
  tick(now = Date.now()): void {
    const every = this.opts.summaryEveryMs ?? SUMMARY_EVERY_MS;
    if (now - this.lastSummaryAt < every) return;
    const p = this.period;
    const state = this.state;
    if (state === 'ok' && !this.trouble) {
      if (p.deadLettered > 0) {
        this.log.error({ sink: this.sink, state, deadLettered: p.deadLettered, lastReason: p.lastReason }, 'dead-lettered more deliveries since the last line; `langfuse-bridge replay` sends them again');
      }
      this.period = emptyPeriod();
      this.lastSummaryAt = now;
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      return;
    }
    this.lastSummaryAt = now;
    // Nothing tried since the last line (every delivery dead-lettered, or waiting for a probe): nothing to say.
    if (p.attempts === 0 && p.deadLettered === 0) return;
    const next = state === 'paused' ? this.pausedUntil : state === 'open' ? this.nextProbeAt : p.nextRetryAt !== null && p.nextRetryAt > now ? p.nextRetryAt : null;
    this.log.warn(
      {
        sink: this.sink,
        state,
        periodSeconds: Math.round(every / 1000),
        attempts: p.attempts,
        failed: p.failed,
        delivered: p.delivered,
        statuses: p.statuses,
        lastReason: p.lastReason,
        [state === 'paused' ? 'pausedUntil' : state === 'open' ? 'nextProbeAt' : 'nextRetryAt']: iso(next),
        deadLettered: p.deadLettered,
        deadLetteredSinceFailing: this.trouble?.deadLettered ?? 0,
        failingSince: iso(this.trouble?.since ?? null),
      },
      `sink still ${state}: summary since the last line`,
    );
    this.period = emptyPeriod();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
