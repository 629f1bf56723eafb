/**
 * What `backfill` shows while it runs: on a terminal, one line redrawn in place (each source's share of
 * the range, counts, rate, ETA and what the pass waits for); without one, a log line every 5 s. And,
 * when Ctrl-C ends it, the command that resumes it.
 */
import type { Logger } from 'pino';
import type { BackfillProgress } from '../poll/index.js';
import type { BackfillWait } from './backfill.js';

export class ProgressDisplay {
  /** When the pass began, for the rate and the summary. */
  readonly began = Date.now();
  private readonly tty = process.stderr.isTTY === true;
  private lastLine = 0;
  private readonly fractions = new Map<string, number>();
  private counts = '';
  private waiting: (() => BackfillWait | null) | null = null;
  // The ETA moves smoothly: each estimate is blended into the shown one, which counts down in between.
  private eta: number | null = null;
  private etaAt = Date.now();
  // Once the ceiling is seen holding the pass back, calls (not elapsed time) say how long the rest takes.
  private ceilingSeen: number | null = null;
  private readonly ticker: NodeJS.Timeout;

  constructor(private readonly logger: Logger) {
    this.ticker = setInterval(() => this.tty && this.render(), 1_000);
    this.ticker.unref();
  }

  /** For the pass's `onStart`: only a terminal shows what it waits for; without one the client logs it. */
  readonly onStart = this.tty ? (h: { waiting(): BackfillWait | null }) => void (this.waiting = h.waiting) : undefined;

  readonly onProgress = (p: BackfillProgress & { delivered: number; queued: number }): void => {
    // The sources advance side by side: show each one's share of the range, and their mean for the ETA.
    this.fractions.set(p.source, p.totalMs ? p.doneMs / p.totalMs : 1);
    const secs = (Date.now() - this.began) / 1000;
    const frac = [...this.fractions.values()].reduce((a, b) => a + b, 0) / this.fractions.size;
    const rate = secs > 0 ? p.events / secs : 0;
    const byTime = frac > 0 && frac < 1 ? (secs / frac) * (1 - frac) : 0;
    const byCalls = this.ceilingSeen && frac > 0 && frac < 1 ? ((p.calls / frac) * (1 - frac) * 60) / this.ceilingSeen : 0;
    const estimate = Math.max(byTime, byCalls);
    // A first estimate, or one far off the shown one, replaces it; a near one is blended in.
    const shown = this.eta === null ? null : Math.max(0, this.eta - (Date.now() - this.etaAt) / 1000);
    this.eta = frac >= 1 ? null : shown === null || shown < 1 || estimate > shown * 2 || estimate < shown / 2 ? estimate : shown * 0.7 + estimate * 0.3;
    this.etaAt = Date.now();
    const each = [...this.fractions].map(([source, f]) => `${source} ${(f * 100).toFixed(0)}%`).join(', ');
    this.counts = `${each} · ${p.events} events (${p.inserted} new) · ${rate.toFixed(0)}/s · ${p.delivered} delivered, ${p.queued} queued · ${p.calls} calls`;
    if (this.tty) this.render();
    else if (Date.now() - this.lastLine > 5_000 || frac >= 1) {
      this.lastLine = Date.now();
      this.logger.info(
        { percent: Math.round(frac * 100), sources: Object.fromEntries([...this.fractions].map(([k, f]) => [k, Math.round(f * 100)])), events: p.events, new: p.inserted, delivered: p.delivered, queued: p.queued, calls: p.calls },
        'backfill progress',
      );
    }
  };

  /** Stops redrawing. */
  stop(): void {
    clearInterval(this.ticker);
  }

  /** Leaves the terminal's progress line for what is written after it. */
  endLine(): void {
    if (this.tty) process.stderr.write('\n');
  }

  private render(): void {
    const w = this.waiting?.();
    if (w?.reason === 'ceiling') this.ceilingSeen = w.ceiling;
    if (this.eta !== null) {
      this.eta = Math.max(0, this.eta - (Date.now() - this.etaAt) / 1000);
      this.etaAt = Date.now();
    }
    const shownEta = this.eta !== null && this.eta >= 1 ? ` · ETA ${formatSeconds(this.eta)}` : '';
    // Without a terminal the client logs its waits itself.
    if (!this.tty) return;
    const line = `${this.counts || 'starting'}${shownEta}${w ? ` · ${w.text}` : ''}`;
    // One terminal line, or the next redraw leaves the wrapped part behind.
    const width = process.stderr.columns || 0;
    process.stderr.write(`\r\x1b[2K${width > 1 && line.length >= width ? `${line.slice(0, width - 2)}…` : line}`);
  }
}

function formatSeconds(s: number): string {
  const n = Math.round(s);
  if (n < 60) return `${n} s`;
  if (n < 3600) return `${Math.floor(n / 60)} min ${String(n % 60).padStart(2, '0')} s`;
  return `${Math.floor(n / 3600)} h ${String(Math.floor((n % 3600) / 60)).padStart(2, '0')} min`;
}

/** The flags a backfill was started with, as the command that runs it again says them. */
export interface BackfillFlags {
  configFile: string | null;
  from: string;
  to: string;
  redeliver: boolean;
  sink: string | null;
  alerts: boolean;
  project: string | null;
}

/** Interrupted: what was committed stays, and the same range read again resumes after the last slice. */
export function sayInterrupted(f: BackfillFlags): void {
  const arg = (v: string): string => (/^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);
  const again = ['langfuse-bridge', f.configFile ? `--config ${arg(f.configFile)}` : '', 'backfill', `--from ${f.from}`, `--to ${f.to}`, f.redeliver ? '--redeliver' : '', f.sink ? `--sink ${arg(f.sink)}` : '', f.alerts ? '--alerts' : '', f.project ? `--project ${arg(f.project)}` : '']
    .filter(Boolean)
    .join(' ');
  process.stderr.write(`langfuse-bridge: backfill interrupted; events already queued are kept. Run the same command to resume where it stopped:\n  ${again}\n`);
}
