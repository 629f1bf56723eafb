/**
 * Burst folding: past `limit` messages from one rule within a minute, further alerts from that rule
 * are not posted one by one; they are counted into a summary posted once the minute is over (retried
 * a few times, then dropped with a warning: a summary has no outbox row of its own).
 */
import type { AnyBridgeEvent } from '../../events/types.js';
import type { DeliveryResult } from '../types.js';
import type { SlackSummary } from './format.js';

const WINDOW_MS = 60_000;
const MAX_NAMES = 500;
const OTHER_NAMES = '(other names)';

export interface BurstOptions {
  /** The sink's name, for warnings. */
  sink: string;
  /** Messages one rule may post in a minute; the rest are folded. */
  limit: number;
  /** Clock for the minute windows (tests pass a fake one). */
  now: () => number;
  /** How often and how patiently a summary is retried (x3 each time). */
  retry: { attempts: number; baseMs: number };
  warn: (message: string) => void;
  /** Posts one summary, paced with the sink's other posts. */
  post(summary: SlackSummary, signal: AbortSignal): Promise<DeliveryResult>;
}

interface RuleWindow {
  start: number;
  end: number;
  posted: number;
  pending: SlackSummary | null;
  timer: NodeJS.Timeout | null;
}

interface DueSummary {
  summary: SlackSummary;
  attempts: number;
  /** Real time (Date.now) before which it is not tried again. */
  notBefore: number;
}

/** What a folded alert is about, and the name it is counted under. */
function entityOf(event: AnyBridgeEvent): { entity: string; name: string } {
  switch (event.event) {
    case 'trace.created':
    case 'trace.updated':
      return { entity: `trace ${event.data.traceId}`, name: event.data.name ?? '(unnamed trace)' };
    case 'generation.created':
    case 'generation.updated':
      return { entity: `generation ${event.data.observationId}`, name: event.data.model ?? event.data.name ?? '(unnamed generation)' };
    case 'score.created':
    case 'score.updated':
      return { entity: `score ${event.data.scoreId}`, name: event.data.name };
    case 'prompt.created':
    case 'prompt.updated':
      return { entity: `prompt ${String(event.data.prompt.name ?? '')}`, name: String(event.data.prompt.name ?? '(prompt)') };
    case 'test':
      return { entity: 'test', name: 'test' };
    case 'monitor.alert':
    case 'monitor.warning':
    case 'monitor.resolved':
      return { entity: `monitor ${event.data.monitor}`, name: event.data.monitor };
  }
}

/** One Slack sink's minute windows per rule and the summaries they owe. */
export class Bursts {
  private readonly windows = new Map<string, RuleWindow>();
  private readonly due: DueSummary[] = [];
  private retryTimer: NodeJS.Timeout | null = null;
  private draining: Promise<void> | null = null;
  private closed = false;
  /** Aborts a summary post still waiting when close() runs out of patience. */
  private readonly life = new AbortController();
  private readonly limit: number;

  constructor(private readonly o: BurstOptions) {
    this.limit = Math.max(1, Math.floor(o.limit));
  }

  /** Before an alert at t: summaries of minutes that are over go first, so they read in order. */
  async catchUp(t: number): Promise<void> {
    this.closeEndedWindows(t);
    if (this.due.length) await this.drain(false);
  }

  /** Opens the rule's minute at t if none is running; true when it has posted its limit (fold the alert). */
  full(rule: string, t: number): boolean {
    let w = this.windows.get(rule);
    if (!w || t >= w.end) {
      if (w) this.closeWindow(rule, w);
      w = { start: t, end: t + WINDOW_MS, posted: 0, pending: null, timer: null };
      this.windows.set(rule, w);
    }
    return w.posted >= this.limit;
  }

  /** An alert of this rule was posted in its current minute. */
  posted(rule: string): void {
    const w = this.windows.get(rule);
    if (w) w.posted++;
  }

  /** Counts an alert into its rule's summary, posted when the minute is over. */
  fold(rule: string, label: string, event: AnyBridgeEvent): void {
    const w = this.windows.get(rule);
    if (!w) return;
    const { entity, name } = entityOf(event);
    const ref = { eventId: event.id, entity };
    const p: SlackSummary = (w.pending ??= {
      rule,
      label,
      count: 0,
      startedAt: w.start,
      endedAt: w.end,
      names: new Map<string, number>(),
      first: ref,
      last: ref,
      projectIds: [] as string[],
    });
    p.count++;
    p.last = ref;
    const key = p.names.has(name) || p.names.size < MAX_NAMES ? name : OTHER_NAMES;
    p.names.set(key, (p.names.get(key) ?? 0) + 1);
    if (!p.projectIds.includes(event.data.projectId)) p.projectIds.push(event.data.projectId);
    if (!w.timer && !this.closed) {
      w.timer = setTimeout(() => {
        w.timer = null;
        this.closeWindow(rule, w);
        void this.drain(false);
      }, Math.max(0, w.end - this.o.now()) + 50);
      w.timer.unref();
    }
  }

  /** Closes minute windows that have ended and posts every summary that is due, now. */
  flush(): Promise<void> {
    this.closeEndedWindows(this.o.now());
    return this.drain(true);
  }

  /** Closes every window and gives their summaries one last try, for at most giveUpMs. */
  async close(giveUpMs: number): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    for (const [rule, w] of [...this.windows]) this.closeWindow(rule, w);
    if (!this.due.length) return;
    const giveUp = setTimeout(() => this.life.abort(), giveUpMs).unref();
    try {
      await this.drain(true);
    } finally {
      clearTimeout(giveUp);
    }
    if (this.due.length) this.o.warn(`slack sink ${this.o.sink}: ${this.due.reduce((a, d) => a + d.summary.count, 0)} folded alert(s) were not summarized before shutdown`);
  }

  private closeWindow(rule: string, w: RuleWindow): void {
    if (w.timer) clearTimeout(w.timer);
    w.timer = null;
    if (this.windows.get(rule) === w) this.windows.delete(rule);
    if (w.pending) {
      this.due.push({ summary: w.pending, attempts: 0, notBefore: 0 });
      w.pending = null;
    }
  }

  private closeEndedWindows(t: number): void {
    for (const [rule, w] of [...this.windows]) if (t >= w.end) this.closeWindow(rule, w);
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer || this.due.length === 0) return;
    const next = Math.min(...this.due.map((d) => d.notBefore));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.drain(false);
    }, Math.max(0, next - Date.now()));
    this.retryTimer.unref();
  }

  private async drainOnce(force: boolean): Promise<void> {
    const { retry } = this.o;
    for (const item of [...this.due]) {
      if (!force && item.notBefore > Date.now()) continue;
      const res = await this.o.post(item.summary, this.life.signal);
      if (res.ok) {
        this.due.splice(this.due.indexOf(item), 1);
        continue;
      }
      item.attempts++;
      if (item.attempts >= retry.attempts || !res.retry) {
        this.due.splice(this.due.indexOf(item), 1);
        this.o.warn(`slack sink ${this.o.sink}: dropped the summary of ${item.summary.count} folded alert(s) from rule "${item.summary.rule}" after ${item.attempts} attempt(s): ${res.reason}`);
        continue;
      }
      item.notBefore = Date.now() + Math.max(res.retryAfterMs ?? 0, retry.baseMs * 3 ** (item.attempts - 1));
    }
  }

  /** Posts due summaries (all of them with `force`, else those whose retry time has come), one pass at a time. */
  private drain(force: boolean): Promise<void> {
    if (this.draining) return this.draining.then(() => (force && this.due.some((d) => d.attempts === 0) ? this.drain(force) : undefined));
    const p: Promise<void> = this.drainOnce(force).finally(() => {
      if (this.draining === p) this.draining = null;
      this.scheduleRetry();
    });
    this.draining = p;
    return p;
  }
}
