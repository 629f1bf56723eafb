/**
 * The dispatcher: reads due deliveries from the outbox, one loop and one queue per sink, so a slow or
 * dead sink never holds back polling or the other sinks. A delivery's life: queued → delivering →
 * delivered, or retrying (exponential backoff with jitter) until the last attempt, then dead.
 */
import { setMaxListeners } from 'node:events';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { AnyBridgeEvent } from '../events/types.js';
import { oneLine } from '../errors.js';
import type { Delivery, DeliveryResult, Sink } from '../sinks/types.js';
import type { ClaimedDelivery, DeliveryOutcome, Store } from '../store/index.js';
import { attemptOf } from './attempts.js';
import type { DeliveryBackend, DeliveryHooks } from './backend.js';
import { Handoff, type HandoffTarget } from './handoff.js';
import { SinkHealth } from './health.js';
import { SHARED_PAUSE_READ_MS, pacedIntervalMs, retryDelayMs, type RetryPolicy } from './retry.js';
import { Waker } from './waker.js';

/** Rows per call of a sink that takes them in groups. */
const GROUP_SIZE = 256;

/** Groups go to sinks that offer them and are not paced (pacing is per attempt). */
const grouped = (sink: Sink): boolean => sink.deliverGroup !== undefined && sink.minIntervalMs === 0;

/** One controller for every attempt in flight: each adds its own listener, so no listener limit applies. */
function sharedAbort(): AbortController {
  const c = new AbortController();
  setMaxListeners(0, c.signal);
  return c;
}

/** The attempt's view of a row; the parsed event is built only for sinks that read it. */
class RowDelivery implements Delivery {
  readonly eventId: string;
  readonly eventType: string;
  readonly body: string;
  readonly route: string | null;
  readonly attempt: number;
  private parsed: AnyBridgeEvent | undefined;

  constructor(row: ClaimedDelivery) {
    this.eventId = row.eventId;
    this.eventType = row.type;
    this.body = row.body;
    this.route = row.route;
    this.attempt = row.attempts;
  }

  get event(): AnyBridgeEvent {
    return (this.parsed ??= JSON.parse(this.body) as AnyBridgeEvent);
  }
}

export interface DispatcherOptions {
  retry: RetryPolicy;
  logger: Logger;
  /** Only deliveries written by this backfill; null: all. */
  origin?: string | null;
  /** Longest wait between outbox checks when idle. */
  idleMs?: number;
  hooks?: DeliveryHooks;
  /** false: the rows are not kept after this run (test-event), so a dead letter's log line does not point to `replay`. Default true. */
  replayable?: boolean;
  /**
   * How long a claim holds a row before another process may take it back (plus pacing). Renewed
   * while the attempt runs, however long the sink takes. Default 120 s.
   */
  leaseMs?: number;
}

interface InFlight {
  row: ClaimedDelivery;
  started: boolean;
}

export class Dispatcher implements DeliveryBackend, HandoffTarget {
  private running = false;
  private readonly loops: Promise<void>[] = [];
  private readonly queues = new Map<string, PQueue>();
  /** Attempts claimed or running, by outbox row. */
  private readonly inflight = new Map<number, InFlight>();
  private outcomes: DeliveryOutcome[] = [];
  /** Failed monitor notifications to alert sinks, checked for a newer one once their outcome is written. */
  private recheck: number[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  /** One per sink loop, so a wake reaches every loop even when it is busy. */
  private readonly wakers = new Map<string, Waker>();
  private recoverTimer: NodeJS.Timeout | null = null;
  private readonly origin: string | null;
  private readonly nextStartAt = new Map<string, number>();
  /** Sinks whose last claim found nothing more due: new rows may skip the outbox queue. */
  private readonly caughtUp = new Set<string>();
  private readonly windows = new Map<string, number>();
  /** Rows scheduled on each sink and not yet finished (a group attempt carries many). */
  private readonly load = new Map<string, number>();

  private readonly sinksByName: Map<string, Sink>;
  /** Each sink's state: pauses, the circuit breaker, and the quiet logs of a sink that fails. */
  private readonly health = new Map<string, SinkHealth>();
  /** When each sink's shared pause was last read. */
  private readonly pauseReadAt = new Map<string, number>();
  /** The outbox row probing each sink whose breaker is open. */
  private readonly probeSeq = new Map<string, number>();
  /** Aborts every attempt still in flight when stop() runs out of patience (one for all: cheaper per attempt). */
  private abort = sharedAbort();
  /** Woken when the last attempt in flight has been recorded, for drain(). */
  private readonly settled = new Waker();
  private draining = false;

  constructor(
    private readonly store: Store,
    private readonly sinks: Sink[],
    private readonly opts: DispatcherOptions,
  ) {
    this.origin = opts.origin ?? null;
    this.sinksByName = new Map(sinks.map((s) => [s.name, s]));
    for (const s of sinks) {
      this.health.set(
        s.name,
        new SinkHealth(s.name, {
          logger: opts.logger,
          baseSeconds: opts.retry.baseSeconds,
          breaker: this.origin === null,
          replayable: opts.replayable,
          onChange: (state, d) => {
            // The state `status` shows is the daemon's: a bounded pass (backfill, test-event) beside
            // it keeps its own, so one failed test event does not mark a working sink failing.
            if (this.origin === null) {
              try {
                this.store.recordSinkState(s.name, { state, since: Date.now(), nextProbeAt: d.nextProbeAt });
              } catch (err) {
                this.opts.logger.debug({ sink: s.name, err: oneLine(err) }, 'could not record the sink state');
              }
            }
            this.opts.hooks?.onState?.(s.name, state);
            if (state === 'ok' || state === 'failing') this.wakers.get(s.name)?.wake();
          },
        }),
      );
    }
  }

  private healthOf(sink: string): SinkHealth {
    return this.health.get(sink)!;
  }

  /**
   * Until when a delivery to this sink (not its probe) is held, by a pause met here or recorded by
   * another process on this database, or by the open breaker; null: it may go. The other processes'
   * pause is read (a primary-key read, no write) before each claim and at most every
   * SHARED_PAUSE_READ_MS before an attempt: no call starts later than that after another process
   * learnt that the receiver wants a pause, and a sink that is ok pays no query per delivery.
   */
  private heldUntil(sink: string, now = Date.now()): number | null {
    this.readSharedPause(sink, now);
    return this.healthOf(sink).heldUntil(now);
  }

  private readSharedPause(sink: string, now: number, force = false): void {
    if (!force && now - (this.pauseReadAt.get(sink) ?? 0) < SHARED_PAUSE_READ_MS) return;
    this.pauseReadAt.set(sink, now);
    let until = 0;
    try {
      until = this.store.sinkPausedUntil(sink);
    } catch {
      return; // unreadable for a moment (locked): this process's own state decides
    }
    if (until > now) this.healthOf(sink).pauseShared(until);
  }

  get claimOrigin(): string | null {
    return this.origin;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    if (this.abort.signal.aborted) this.abort = sharedAbort();
    if (this.origin === null) {
      // The daemon starts with every sink ok: what an earlier process recorded no longer holds.
      for (const sink of this.sinks) {
        try {
          this.store.recordSinkState(sink.name, { state: 'ok', since: Date.now() });
        } catch {
          /* status shows the old state until the next change */
        }
      }
    }
    const recovered = this.store.recoverStalled();
    if (recovered) this.opts.logger.info({ deliveries: recovered }, 'took back deliveries left in flight by a stopped process');
    this.recoverTimer = setInterval(() => {
      try {
        if (this.store.recoverStalled()) this.wake();
      } catch (err) {
        this.opts.logger.warn({ err: oneLine(err) }, 'could not check for stalled deliveries');
      }
      try {
        this.renewRunning();
      } catch (err) {
        this.opts.logger.warn({ err: oneLine(err) }, 'could not extend the hold on deliveries being sent; trying again shortly');
      }
    }, Math.min(5_000, this.baseLeaseMs() / 4));
    this.recoverTimer.unref();
    for (const sink of this.sinks) this.loops.push(this.loop(sink));
  }

  /** New work was written: look now instead of at the next idle tick. */
  wake(): void {
    for (const w of this.wakers.values()) w.wake();
  }

  private baseLeaseMs(): number {
    return this.opts.leaseMs ?? 120_000;
  }

  private leaseMs(sink: Sink): number {
    // Long enough for every claimed attempt to start; a dead owner is detected sooner.
    return this.baseLeaseMs() + (sink.minIntervalMs * sink.concurrency * 4);
  }

  /** Past half its lease: time to hold the row longer (before it starts, and while it is being sent). */
  private leaseRunningOut(sink: Sink, row: ClaimedDelivery, now: number): boolean {
    return now > row.leaseUntil - this.leaseMs(sink) / 2;
  }

  /**
   * Attempts still running past half their lease (a slow receiver, a handler with a long timeout)
   * hold their rows longer, so that no other process on this database takes one back and sends it
   * a second time while it is being sent.
   */
  private renewRunning(): void {
    const now = Date.now();
    const due: Array<{ f: InFlight; until: number }> = [];
    for (const f of this.inflight.values()) {
      const sink = this.sinksByName.get(f.row.sink);
      if (!f.started || !sink) continue; // rows not started yet are held by holdLease() when they start
      if (this.leaseRunningOut(sink, f.row, now)) due.push({ f, until: now + this.leaseMs(sink) });
    }
    if (due.length === 0) return;
    this.store.write(() => {
      for (const { f, until } of due) {
        if (this.store.renewLease(f.row.seq, until, now)) {
          f.row.leaseUntil = until;
        } else {
          f.row.leaseUntil = Number.MAX_SAFE_INTEGER; // not ours any more: said once, not renewed again
          this.opts.logger.warn({ sink: f.row.sink, eventId: f.row.eventId }, 'a delivery still being sent was taken over by another process meanwhile');
        }
      }
    });
  }

  private async loop(sink: Sink): Promise<void> {
    const paced = sink.minIntervalMs > 0;
    const queue = new PQueue({ concurrency: sink.concurrency });
    this.queues.set(sink.name, queue);
    const waker = new Waker();
    this.wakers.set(sink.name, waker);
    // Claim ahead so one transaction feeds many attempts; paced sinks only hold what they will send soon.
    const window = paced ? 2 : Math.max(sink.concurrency * 4, 256);
    this.windows.set(sink.name, window);
    const idleMs = this.opts.idleMs ?? 500;
    const health = this.healthOf(sink.name);
    while (this.running) {
      // Paused, or the breaker open: claim nothing (held rows keep their attempt counts) but the probe.
      this.readSharedPause(sink.name, Date.now(), true);
      const gate = health.gate();
      if (!gate.go) {
        this.caughtUp.delete(sink.name);
        await waker.sleep(Math.max(5, Math.min(gate.untilMs - Date.now(), 60_000)));
        continue;
      }
      const room = gate.probe ? Math.min(1, window - this.loadOf(sink.name)) : window - this.loadOf(sink.name);
      let claimed: ClaimedDelivery[] = [];
      let readOk = false;
      if (room > 0) {
        try {
          claimed = this.store.claim(sink.name, room, this.leaseMs(sink), this.origin);
          readOk = true;
        } catch (err) {
          this.opts.logger.error({ sink: sink.name, err: oneLine(err) }, 'could not read the outbox; trying again');
        }
      }
      if (gate.probe) {
        if (claimed[0]) this.probeSeq.set(sink.name, claimed[0].seq);
        else health.probeReleased();
      }
      this.schedule(sink, queue, claimed);
      // Caught up only when a claim that worked found nothing more due.
      if (readOk && claimed.length < room && !gate.probe) this.caughtUp.add(sink.name);
      else if (room > 0) this.caughtUp.delete(sink.name);
      if (gate.probe && claimed.length > 0) {
        // The probe is out: wait for its outcome (a state change wakes this loop) or the next due row.
        await waker.sleep(idleMs);
      } else if (room <= 0) {
        // Full: wait for an attempt to finish.
        await waker.sleep(idleMs, new Promise((r) => queue.once('next', r)));
      } else if (claimed.length < room) {
        // Nothing more is due: sleep until new work is written or the next retry falls due (never
        // claim again on every finished attempt: each claim is a write transaction).
        const next = this.store.nextDueAt(sink.name, this.origin);
        const wait = next === null ? idleMs : Math.min(idleMs, Math.max(5, next - Date.now()));
        await waker.sleep(wait);
      } else {
        // A full batch: claim more once half of it has started (a grouping sink: once every group has).
        await queue.onSizeLessThan(grouped(sink) ? 1 : Math.max(1, Math.ceil(window / 2)));
      }
    }
  }

  private loadOf(sink: string): number {
    return this.load.get(sink) ?? 0;
  }

  private schedule(sink: Sink, queue: PQueue, rows: ClaimedDelivery[]): void {
    if (rows.length === 0) return;
    this.load.set(sink.name, this.loadOf(sink.name) + rows.length);
    const all = rows.map((row) => {
      const f: InFlight = { row, started: false };
      this.inflight.set(row.seq, f);
      return f;
    });
    if (!grouped(sink)) {
      for (const f of all) queue.add(() => this.attempt(sink, f)).catch(() => undefined);
      return;
    }
    // One task, one write and one promise per group instead of per row; still started in order.
    for (let i = 0; i < all.length; i += GROUP_SIZE) {
      const group = all.slice(i, i + GROUP_SIZE);
      queue.add(() => this.attemptGroup(sink, group)).catch(() => undefined);
    }
  }

  /** See handoff.ts: new rows of sinks that have caught up skip the claim. */
  handoff(): Handoff {
    return new Handoff(this);
  }

  /** How many new rows this sink takes directly now (its claim window, twice over), for a hand-off. */
  roomFor(sink: string): number {
    const queue = this.queues.get(sink);
    if (!this.running || !queue || !this.caughtUp.has(sink) || this.heldUntil(sink) !== null) return 0;
    return 2 * (this.windows.get(sink) ?? 0) - this.loadOf(sink);
  }

  leaseFor(sink: string): number | null {
    const s = this.sinksByName.get(sink);
    return s ? this.leaseMs(s) : null;
  }

  /** New rows for this sink stayed queued: until a claim catches up, nothing skips the queue. */
  fellBehind(sink: string): void {
    this.caughtUp.delete(sink);
  }

  /** Rows written claimed by a committed hand-off. */
  accept(rows: ClaimedDelivery[]): void {
    const bySink = new Map<string, ClaimedDelivery[]>();
    for (const row of rows) {
      const list = bySink.get(row.sink);
      if (list) list.push(row);
      else bySink.set(row.sink, [row]);
    }
    for (const [name, list] of bySink) {
      const sink = this.sinksByName.get(name);
      const queue = this.queues.get(name);
      // Stopped meanwhile: give them back to the outbox.
      if (!this.running || !sink || !queue) for (const row of list) this.record({ seq: row.seq, eventId: row.eventId, sink: row.sink, status: 'released' });
      else this.schedule(sink, queue, list);
    }
  }

  /**
   * A row leaves this process's hands: finished, released or taken over. False when it already had
   * (stop() released it while the attempt ran on), so nothing is counted or recorded twice.
   */
  private done(f: InFlight): boolean {
    if (this.inflight.get(f.row.seq) !== f) return false;
    this.inflight.delete(f.row.seq);
    this.load.set(f.row.sink, this.loadOf(f.row.sink) - 1);
    return true;
  }

  /**
   * A row that waited in memory for most of its lease (a slow sink, a long queue) is held longer
   * first; false when another process has taken it back meanwhile, which is then left to that one.
   */
  private holdLease(sink: Sink, f: InFlight): boolean {
    const { row } = f;
    if (!this.leaseRunningOut(sink, row, Date.now())) return true;
    const leaseMs = this.leaseMs(sink);
    let ours = false;
    try {
      ours = this.store.renewLease(row.seq, Date.now() + leaseMs);
    } catch (err) {
      this.opts.logger.warn({ sink: sink.name, eventId: row.eventId, err: oneLine(err) }, 'could not extend the hold on a delivery; it is sent anyway');
      ours = true;
    }
    if (!ours) {
      this.done(f);
      this.opts.logger.info({ sink: sink.name, eventId: row.eventId }, 'a delivery that waited past its lease was taken over by another process; leaving it to that one');
      return false;
    }
    row.leaseUntil = Date.now() + leaseMs;
    return true;
  }

  /** Is this row the probe of its sink's open breaker? */
  private isProbe(f: InFlight): boolean {
    return this.probeSeq.get(f.row.sink) === f.row.seq;
  }

  /**
   * A row that may not go now (the sink is paused or its breaker open) goes back to the outbox as it
   * was, its attempt count unchanged; true when it was held.
   */
  private holdBack(sink: Sink, f: InFlight): boolean {
    if (this.isProbe(f) || this.heldUntil(sink.name) === null) return false;
    if (this.done(f)) this.record({ seq: f.row.seq, eventId: f.row.eventId, sink: f.row.sink, status: 'released' });
    return true;
  }

  /** Many rows in one call of a grouping sink (stdout: one write); one result for them all. */
  private async attemptGroup(sink: Sink, group: InFlight[]): Promise<void> {
    if (!this.running) return; // released by stop()
    const mine = group.filter((f) => !this.holdBack(sink, f) && this.holdLease(sink, f));
    if (mine.length === 0) return;
    for (const f of mine) f.started = true;
    const began = Date.now();
    let result: DeliveryResult;
    try {
      result = await sink.deliverGroup!(mine.map((f) => new RowDelivery(f.row)), this.abort.signal);
    } catch (err) {
      result = { ok: false, retry: true, reason: `sink failed: ${oneLine(err)}` };
    }
    const ms = Date.now() - began;
    for (const f of mine) {
      // One row's hook or log failing must not strand the rest of the group in flight.
      try {
        this.finish(sink, f, result, ms, began);
      } catch (err) {
        this.opts.logger.warn({ sink: sink.name, eventId: f.row.eventId, err: oneLine(err) }, 'could not finish recording a delivery');
      }
    }
  }

  private async attempt(sink: Sink, f: InFlight): Promise<void> {
    if (!this.running) return; // released by stop()
    if (sink.minIntervalMs > 0) {
      // A real gap between starts (a fixed-window limiter lets two starts meet at a window edge).
      const wait = (this.nextStartAt.get(sink.name) ?? 0) - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (!this.running) return;
      this.nextStartAt.set(sink.name, Date.now() + pacedIntervalMs(sink.minIntervalMs));
    }
    const { row } = f;
    if (this.holdBack(sink, f)) return;
    if (!this.holdLease(sink, f)) {
      if (this.isProbe(f)) this.endProbe(sink.name);
      return;
    }
    f.started = true;
    const began = Date.now();
    let result: DeliveryResult;
    try {
      result = await sink.deliver(new RowDelivery(row), this.abort.signal);
    } catch (err) {
      result = { ok: false, retry: true, reason: `sink failed: ${oneLine(err)}` };
    }
    this.finish(sink, f, result, Date.now() - began, began);
  }

  private endProbe(sink: string): void {
    this.probeSeq.delete(sink);
    this.healthOf(sink).probeReleased();
  }

  /**
   * Records one row's outcome: delivered, retrying on the schedule, or dead. The sink's state and
   * its logs follow from it (a line per change of state and a summary a minute, not one per attempt).
   */
  private finish(sink: Sink, f: InFlight, result: DeliveryResult, ms: number, began: number): void {
    const probe = this.isProbe(f);
    if (probe) this.probeSeq.delete(sink.name);
    if (!this.done(f)) {
      if (probe) this.healthOf(sink.name).probeReleased();
      return;
    }
    const { row } = f;
    if (this.abort.signal.aborted && !result.ok) {
      if (probe) this.healthOf(sink.name).probeReleased();
      this.record({ seq: row.seq, eventId: row.eventId, sink: row.sink, status: 'released' });
      return;
    }
    const log = this.opts.logger;
    const health = this.healthOf(sink.name);
    if (result.ok) {
      this.record({ seq: row.seq, eventId: row.eventId, sink: row.sink, status: 'delivered', attempt: attemptOf(result, 'delivered', began, ms) });
      this.opts.hooks?.onOutcome?.(sink, 'delivered', row.type, ms);
      // In memory only: a sink that is ok costs nothing more per delivery.
      health.record(result, 'delivered', { probe });
      if (log.isLevelEnabled('debug')) log.debug({ sink: sink.name, eventId: row.eventId, event: row.type, attempt: row.attempts, ms }, 'delivered');
      return;
    }
    const detail = { eventId: row.eventId, eventType: row.type, attempt: row.attempts, probe };
    const last = row.attempts >= this.opts.retry.maxAttempts;
    if (!result.retry || last) {
      this.record({ seq: row.seq, eventId: row.eventId, sink: row.sink, status: 'dead', error: result.reason, attempt: attemptOf(result, 'dead', began, ms) });
      this.opts.hooks?.onOutcome?.(sink, 'dead', row.type, ms);
      this.pauseFor(sink.name, health.record(result, 'dead', detail));
      if (log.isLevelEnabled('debug')) log.debug({ sink: sink.name, ...detail, reason: result.reason }, 'dead-lettered');
      return;
    }
    const wait = retryDelayMs(this.opts.retry, row.attempts, result.retryAfterMs);
    const nextAt = Date.now() + wait;
    this.record({ seq: row.seq, eventId: row.eventId, sink: row.sink, status: 'retrying', nextAt, error: result.reason, attempt: attemptOf(result, 'retrying', began, ms) });
    // A monitor's page that failed may have been overtaken meanwhile (say, by its resolve): see flush.
    if (sink.alerting && row.type.startsWith('monitor.')) this.recheck.push(row.seq);
    this.opts.hooks?.onOutcome?.(sink, 'retrying', row.type, ms);
    this.pauseFor(sink.name, health.record(result, 'retrying', { ...detail, nextAt }));
    if (log.isLevelEnabled('debug')) log.debug({ sink: sink.name, ...detail, reason: result.reason, retryInMs: wait }, 'delivery failed; will retry');
  }

  /** A receiver asked the whole sink to wait: every process on this database waits with this one. */
  private pauseFor(sink: string, untilMs: number | null): void {
    if (untilMs === null) return;
    try {
      this.store.pauseSink(sink, untilMs);
    } catch (err) {
      this.opts.logger.warn({ sink, err: oneLine(err) }, 'could not record the pause for the other processes; this one waits anyway');
    }
  }

  /** Outcomes are written in small batches: one transaction for many deliveries. */
  private record(o: DeliveryOutcome): void {
    this.outcomes.push(o);
    if (this.inflight.size === 0 && this.draining) {
      this.flush();
      this.settled.wake();
      return;
    }
    if (this.outcomes.length >= 512) this.flush();
    else if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), 25);
  }

  flush(): void {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    const batch = this.outcomes;
    if (!batch.length) return;
    this.outcomes = [];
    try {
      this.store.settle(batch);
    } catch (err) {
      // Not written (say, the database stayed locked): keep them and try again shortly, so the rows
      // do not stay 'delivering' in a process that is alive. If it dies first, they are sent again.
      this.opts.logger.error({ err: oneLine(err), deliveries: batch.length }, 'could not record delivery outcomes; trying again');
      this.outcomes = batch.concat(this.outcomes);
      if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), 1_000);
      return;
    }
    if (this.recheck.length) {
      const seqs = this.recheck;
      this.recheck = [];
      try {
        this.store.write(() => seqs.forEach((seq) => this.store.monitors.supersedeIfNewer(seq)));
      } catch (err) {
        // Left retrying: sent again later, as before this check existed.
        this.opts.logger.warn({ err: oneLine(err) }, 'could not check failed monitor notifications for newer ones');
      }
    }
    if (batch.some((o) => o.status !== 'delivered')) this.wake();
  }

  /** Resolves when no delivery of this dispatcher's origin is queued, retrying or in flight. */
  async drain(signal?: AbortSignal, pollMs = 100): Promise<void> {
    this.draining = true;
    try {
      for (;;) {
        this.flush();
        if (this.inflight.size === 0 && this.store.pending(this.origin) === 0) return;
        signal?.throwIfAborted();
        // Look again as soon as the last attempt in flight has been recorded, or after pollMs.
        await this.settled.sleep(pollMs);
      }
    } finally {
      this.draining = false;
    }
  }

  /**
   * Stops taking work; lets attempts in flight finish for up to graceMs, then aborts them. Claimed
   * deliveries that did not finish go back to the queue untouched.
   */
  async stop(graceMs = 8_000): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wake();
    if (this.recoverTimer) clearInterval(this.recoverTimer);
    for (const h of this.health.values()) h.stop();
    for (const q of this.queues.values()) q.clear();
    for (const f of this.inflight.values()) {
      if (!f.started) {
        this.done(f);
        this.record({ seq: f.row.seq, eventId: f.row.eventId, sink: f.row.sink, status: 'released' });
      }
    }
    const idle = Promise.all([...this.queues.values()].map((q) => q.onIdle()));
    const timer = new Promise((r) => setTimeout(r, graceMs).unref());
    await Promise.race([idle, timer]);
    this.abort.abort(new Error('shutting down'));
    await Promise.race([idle, new Promise((r) => setTimeout(r, 500).unref())]);
    for (const f of this.inflight.values()) this.record({ seq: f.row.seq, eventId: f.row.eventId, sink: f.row.sink, status: 'released' });
    this.inflight.clear();
    this.load.clear();
    await Promise.all(this.loops);
    this.flush();
  }
}
