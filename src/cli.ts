#!/usr/bin/env node
/** Commands and flags; the work is in app.ts. */
import { Command, CommanderError, Option } from 'commander';
import { loadConfig, parseInstant, type BridgeConfig } from './config.js';
import { check, formatStatus, replayWithQueues, runBackfill, runDaemon, runningDaemon, sendTestEvent, statusReportWithQueues, type BackfillWait } from './app.js';
import { BridgeError, DatabaseError, UsageError } from './errors.js';
import { boundHeapGrowth } from './ops/heap.js';
import { databaseProblem } from './store/index.js';
import { LOG_LEVELS, createBufferedLogger, createLogger } from './ops/logger.js';
import { VERSION } from './version.js';

boundHeapGrowth();

const EXAMPLES = `
Examples:
  # Poll Langfuse Cloud and forward signed events to your receiver
  $ export LANGFUSE_PUBLIC_KEY=pk-lf-… LANGFUSE_SECRET_KEY=sk-lf-…
  $ export BRIDGE_WEBHOOK_URL=https://hooks.internal/langfuse BRIDGE_WEBHOOK_SECRET=whsec_…
  $ langfuse-bridge run

  # Everything since Monday that your receiver has not seen yet
  $ langfuse-bridge backfill --from 2026-11-23T00:00:00Z

  # Is it keeping up? What is stuck?
  $ langfuse-bridge status
  $ langfuse-bridge replay --sink webhook --since 2026-11-26T00:00:00Z

  # No webhook configured: events are printed as JSON lines on stdout
  $ langfuse-bridge run | jq 'select(.event == "trace.updated")'

Settings are environment variables (see the README); --config adds a JSON file with several sinks and rules.
Exit codes: 0 ok, 1 failure (check, test-event, status --check), 2 bad setting, flag or database file, 3 backfill left dead letters.`;

interface GlobalOpts {
  config?: string;
  logLevel: string;
}

/**
 * Runs a long-lived command until SIGINT/SIGTERM: then it stops taking work and has 10 s to finish;
 * a second signal exits at once (deliveries in flight stay queued).
 */
async function untilStopped(handle: { stop(): void; done: Promise<void> }, log: ReturnType<typeof createLogger>): Promise<void> {
  let stopping = false;
  const onSignal = (sig: string): void => {
    if (stopping) {
      log.warn({ signal: sig }, 'second signal: exiting now; deliveries in flight stay queued');
      process.exit(130);
    }
    stopping = true;
    log.info({ signal: sig }, 'shutting down');
    handle.stop();
    setTimeout(() => {
      log.error('shutdown took longer than 10 s; exiting');
      process.exit(1);
    }, 9_500).unref();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  await handle.done;
}

function globals(cmd: Command): GlobalOpts {
  return cmd.optsWithGlobals() as GlobalOpts;
}

/** The database the command uses, for naming it when SQLite fails below the commands. */
let databaseFile: string | null = null;

function config(cmd: Command, requireKeys = true): BridgeConfig {
  const c = loadConfig({ configFile: globals(cmd).config ?? null, requireKeys, onWarning: (message, fields) => logger(cmd).warn(fields, message) });
  databaseFile = c.database;
  return c;
}

function logger(cmd: Command) {
  return createLogger(globals(cmd).logLevel);
}

function instant(flag: string) {
  return (v: string): Date => {
    try {
      return parseInstant(flag, v);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  };
}

/**
 * commander's usage errors as one line like every other bad flag: `error: unknown option '--jsn'`
 * and its `(Did you mean --json?)` line become `unknown option '--jsn' (did you mean --json?)`.
 */
function usageErrorLine(str: string, command: string | null): string {
  let line = str
    .trim()
    .replace(/^error:\s*/, '')
    .replace(/\s*\n\s*\(Did you mean (.+)\?\)$/, ' (did you mean $1?)')
    .replace(/\s*\n\s*/g, ' ')
    .replace(/\.$/, '');
  if (/^unknown command /.test(line) && !line.includes('did you mean')) {
    line += ` (commands: ${program.commands.map((c) => c.name()).join(', ')})`;
  }
  return `${line}; see langfuse-bridge ${command ? `${command} ` : ''}--help`;
}

/** Usage errors go to stderr as `langfuse-bridge: <one line>`, pointing at the help of the command at fault. */
function errorOutput(command: string | null): { outputError: (str: string, write: (s: string) => void) => void } {
  return { outputError: (str, write) => write(`langfuse-bridge: ${usageErrorLine(str, command)}\n`) };
}

const program = new Command()
  .name('langfuse-bridge')
  .description('Polls Langfuse and delivers webhook events for new and changed traces, generations, scores and prompts.')
  .version(VERSION, '-v, --version')
  .option('-c, --config <file>', 'JSON config file (several sinks, rules); ${VAR} in strings is read from the environment')
  .addOption(new Option('--log-level <level>', 'log verbosity').choices([...LOG_LEVELS]).env('LOG_LEVEL').default('info'))
  .addHelpText('after', EXAMPLES)
  .showSuggestionAfterError(true)
  .configureOutput(errorOutput(null))
  .exitOverride();

program
  .command('run')
  .description('Poll on the interval and deliver events until SIGINT/SIGTERM')
  .option('--with-worker', 'with BRIDGE_REDIS_URL: also deliver from the Redis queues in this process', false)
  .addHelpText('after', '\nExample:\n  $ BRIDGE_POLL_INTERVAL_SECONDS=15 langfuse-bridge run --log-level debug')
  .action(async (o: { withWorker: boolean }, cmd: Command) => {
    const cfg = config(cmd);
    const log = logger(cmd);
    if (o.withWorker && !cfg.queue.redisUrl) throw new UsageError('--with-worker needs BRIDGE_REDIS_URL (Redis queues); without it `run` delivers in-process already');
    const handle = await runDaemon(cfg, log, { withWorker: o.withWorker });
    await untilStopped(handle, log);
  });

program
  .command('backfill')
  .description('Deliver everything in [from, to) that the sinks have not received, then exit')
  .requiredOption('--from <iso>', 'start of the range, inclusive (ISO 8601)', instant('--from'))
  .option('--to <iso>', 'end of the range, exclusive (default: now)', instant('--to'))
  .option('--redeliver', 'send already-delivered events again, with the same ids', false)
  .option('--sink <name>', 'limit the pass to one sink (an alert sink named here does get alerts)')
  .option('--alerts', 'also send alerts (Slack, PagerDuty) for the range; history does not page people by default', false)
  .option('--project <name>', 'with "projects" in the config file: only this project (default: all)')
  .addHelpText(
    'after',
    `
Examples:
  $ langfuse-bridge backfill --from 2026-11-01T00:00:00Z --to 2026-11-02T00:00:00Z
  $ langfuse-bridge backfill --from 2026-11-20 --redeliver --sink webhook
Exits 0 when every event was delivered, 3 when some were dead-lettered (see status, replay).`,
  )
  .action(async (o: { from: Date; to?: Date; redeliver: boolean; sink?: string; alerts: boolean; project?: string }, cmd: Command) => {
    const cfg = config(cmd);
    const log = logger(cmd);
    const toMs = (o.to ?? new Date()).getTime();
    if (o.from.getTime() >= toMs) throw new UsageError(`--from must be before --to (got ${o.from.toISOString()} ≥ ${new Date(toMs).toISOString()})`);
    const tty = process.stderr.isTTY === true;
    const began = Date.now();
    let lastLine = 0;
    const fractions = new Map<string, number>();
    const abort = new AbortController();
    // Exits as shells report a signal: 130 for Ctrl-C (SIGINT), 143 for SIGTERM.
    let signalExit = 130;
    process.once('SIGINT', () => abort.abort(new Error('interrupted')));
    process.once('SIGTERM', () => {
      signalExit = 143;
      abort.abort(new Error('interrupted'));
    });
    let progress = '';
    let waiting: (() => BackfillWait | null) | null = null;
    // The ETA moves smoothly: each estimate is blended into the shown one, which counts down in between.
    let eta: number | null = null;
    let etaAt = Date.now();
    // Once the ceiling is seen holding the pass back, calls (not elapsed time) say how long the rest takes.
    let ceilingSeen: number | null = null;
    const render = (): void => {
      const w = waiting?.();
      if (w?.reason === 'ceiling') ceilingSeen = w.ceiling;
      if (eta !== null) {
        eta = Math.max(0, eta - (Date.now() - etaAt) / 1000);
        etaAt = Date.now();
      }
      const shownEta = eta !== null && eta >= 1 ? ` · ETA ${formatSeconds(eta)}` : '';
      // Without a terminal the client logs its waits itself.
      if (!tty) return;
      const line = `${progress || 'starting'}${shownEta}${w ? ` · ${w.text}` : ''}`;
      // One terminal line, or the next redraw leaves the wrapped part behind.
      const width = process.stderr.columns || 0;
      process.stderr.write(`\r\x1b[2K${width > 1 && line.length >= width ? `${line.slice(0, width - 2)}…` : line}`);
    };
    const ticker = setInterval(() => tty && render(), 1_000);
    ticker.unref();
    const range = { from: o.from.toISOString(), to: new Date(toMs).toISOString() };
    let r: Awaited<ReturnType<typeof runBackfill>>;
    try {
      r = await runBackfill(cfg, log, {
        fromMs: o.from.getTime(),
        toMs,
        redeliver: o.redeliver,
        sink: o.sink ?? null,
        alerts: o.alerts,
        project: o.project ?? null,
        signal: abort.signal,
        onStart: tty ? (h) => (waiting = h.waiting) : undefined,
        onProgress: (p) => {
          // The sources advance side by side: show each one's share of the range, and their mean for the ETA.
          fractions.set(p.source, p.totalMs ? p.doneMs / p.totalMs : 1);
          const secs = (Date.now() - began) / 1000;
          const frac = [...fractions.values()].reduce((a, b) => a + b, 0) / fractions.size;
          const rate = secs > 0 ? p.events / secs : 0;
          const byTime = frac > 0 && frac < 1 ? (secs / frac) * (1 - frac) : 0;
          const byCalls = ceilingSeen && frac > 0 && frac < 1 ? ((p.calls / frac) * (1 - frac) * 60) / ceilingSeen : 0;
          const estimate = Math.max(byTime, byCalls);
          // A first estimate, or one far off the shown one, replaces it; a near one is blended in.
          const shown = eta === null ? null : Math.max(0, eta - (Date.now() - etaAt) / 1000);
          eta = frac >= 1 ? null : shown === null || shown < 1 || estimate > shown * 2 || estimate < shown / 2 ? estimate : shown * 0.7 + estimate * 0.3;
          etaAt = Date.now();
          const each = [...fractions].map(([source, f]) => `${source} ${(f * 100).toFixed(0)}%`).join(', ');
          progress = `${each} · ${p.events} events (${p.inserted} new) · ${rate.toFixed(0)}/s · ${p.delivered} delivered, ${p.queued} queued · ${p.calls} calls`;
          if (tty) render();
          else if (Date.now() - lastLine > 5_000 || frac >= 1) {
            lastLine = Date.now();
            log.info({ percent: Math.round(frac * 100), sources: Object.fromEntries([...fractions].map(([k, f]) => [k, Math.round(f * 100)])), events: p.events, new: p.inserted, delivered: p.delivered, queued: p.queued, calls: p.calls }, 'backfill progress');
          }
        },
      });
    } catch (err) {
      clearInterval(ticker);
      if (!abort.signal.aborted) throw err;
      // Interrupted: what was committed stays; the same range read again resumes after the last slice.
      if (tty) process.stderr.write('\n');
      const arg = (v: string): string => (/^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);
      const file = globals(cmd).config;
      const again = ['langfuse-bridge', file ? `--config ${arg(file)}` : '', 'backfill', `--from ${range.from}`, `--to ${range.to}`, o.redeliver ? '--redeliver' : '', o.sink ? `--sink ${arg(o.sink)}` : '', o.alerts ? '--alerts' : '', o.project ? `--project ${arg(o.project)}` : '']
        .filter(Boolean)
        .join(' ');
      process.stderr.write(`langfuse-bridge: backfill interrupted; events already queued are kept. Run the same command to resume where it stopped:\n  ${again}\n`);
      process.exit(signalExit);
    }
    clearInterval(ticker);
    if (tty) process.stderr.write('\n');
    const summary = { events: r.events, queued: r.inserted, delivered: r.delivered, dead: r.dead, seconds: Math.round((Date.now() - began) / 100) / 10 };
    process.stdout.isTTY ? log.info(summary, r.exitCode ? 'backfill done; some deliveries were dead-lettered' : 'backfill done') : log.info(summary, 'backfill done');
    process.exitCode = r.exitCode;
  });

program
  .command('status')
  .description('Is the daemon running, how far behind is each stream, what is queued, failing or dead-lettered (reads the database only)')
  .option('--json', 'machine-readable output', false)
  .option('--check', 'exit 1 when something needs a human: no live daemon, a late-data sweep behind, polls failing, dead letters of the last 24 h not replayed', false)
  .addHelpText('after', '\nExample (cron):\n  $ langfuse-bridge status --check > /dev/null || notify-on-call')
  .action(async (o: { json: boolean; check: boolean }, cmd: Command) => {
    let r: Awaited<ReturnType<typeof statusReportWithQueues>>;
    try {
      r = await statusReportWithQueues(config(cmd, false), logger(cmd));
    } catch (err) {
      // A script reading --json gets JSON on stdout too; the one line on stderr and the exit code stay.
      if (o.json && err instanceof DatabaseError) process.stdout.write(`${JSON.stringify({ error: err.message })}\n`);
      throw err;
    }
    process.stdout.write(o.json ? `${JSON.stringify({ ...r, queueLines: undefined }, null, 2)}\n` : `${formatStatus(r)}\n`);
    if (o.check && r.attention.length) process.exitCode = 1;
  });

program
  .command('replay')
  .description('Put dead-lettered deliveries back in the queue (the running daemon sends them)')
  .option('--sink <name>', 'only this sink')
  .option('--since <iso>', 'only deliveries dead-lettered since then', instant('--since'))
  .addHelpText('after', '\nExample:\n  $ langfuse-bridge replay --sink webhook --since 2026-11-26T00:00:00Z')
  .action(async (o: { sink?: string; since?: Date }, cmd: Command) => {
    const cfg = config(cmd, false);
    const n = await replayWithQueues(cfg, o.sink ?? null, o.since?.getTime() ?? null, logger(cmd));
    const daemon = n ? runningDaemon(cfg.database) : null;
    const who = daemon ? `; the running daemon (pid ${daemon.pid} on host ${daemon.host}) delivers them` : '; `langfuse-bridge run` delivers them';
    process.stdout.write(`${n} dead-lettered deliveries queued again${n ? who : ''}\n`);
  });

program
  .command('worker')
  .description('Deliver from the Redis queues (BRIDGE_REDIS_URL) that `run` relays the outbox to, until SIGINT/SIGTERM')
  .option('--sink <name>', 'only this sink’s queue')
  .option('--concurrency <n>', 'deliveries in flight per sink in this process (default: the sink’s own)', (v: string): number => {
    if (!/^\s*\d+\s*$/.test(v) || Number(v) < 1 || Number(v) > 1024) throw new UsageError(`--concurrency must be a whole number from 1 to 1024, got ${JSON.stringify(v)}`);
    return Number(v);
  })
  .addHelpText(
    'after',
    '\nWith BRIDGE_HTTP_PORT it serves /healthz (200 while Redis answers and its workers run) and /metrics.\nExample:\n  $ BRIDGE_REDIS_URL=redis://redis:6379 BRIDGE_HTTP_PORT=9464 langfuse-bridge worker --concurrency 16',
  )
  .action(async (o: { sink?: string; concurrency?: number }, cmd: Command) => {
    const log = logger(cmd);
    // Loaded here: the Redis client weighs on every other command's start.
    const { runWorker } = await import('./queue/worker.js');
    const handle = await runWorker(config(cmd, false), log, { sink: o.sink ?? null, concurrency: o.concurrency ?? null });
    await untilStopped(handle, log);
  });

program
  .command('check')
  .description('Exercise what `run` needs: Langfuse and the keys, each stream’s endpoints, the database (read only), Redis, the sinks, the ops port')
  .action(async (_o, cmd: Command) => {
    const cfg = config(cmd);
    // The results first, then whatever was logged while getting them.
    const { logger: log, flush } = createBufferedLogger(globals(cmd).logLevel);
    try {
      const r = await check(cfg, log);
      process.stdout.write(`${r.lines.join('\n')}\n`);
      process.exitCode = r.ok ? 0 : 1;
    } finally {
      flush();
    }
  });

program
  .command('test-event')
  .description('Send one synthetic `test` event through the pipeline, like a dashboard’s "Send test event"')
  .option('--sink <name>', 'only this sink; Slack and PagerDuty get a test event only when named here')
  .addHelpText('after', '\nWithout --sink the event goes to the webhook, stdout and handler sinks; one result line per sink on stdout.\nExample:\n  $ langfuse-bridge test-event --sink pagerduty')
  .action(async (o: { sink?: string }, cmd: Command) => {
    const r = await sendTestEvent(config(cmd, false), logger(cmd), o.sink ?? null);
    process.stdout.write(`${r.results.join('\n')}\n`);
    process.exitCode = r.ok ? 0 : 1;
  });

for (const c of program.commands) c.configureOutput(errorOutput(c.name()));

function formatSeconds(s: number): string {
  const n = Math.round(s);
  if (n < 60) return `${n} s`;
  if (n < 3600) return `${Math.floor(n / 60)} min ${String(n % 60).padStart(2, '0')} s`;
  return `${Math.floor(n / 3600)} h ${String(Math.floor((n % 3600) / 60)).padStart(2, '0')} min`;
}

function die(message: string, code: number): never {
  process.stderr.write(`langfuse-bridge: ${message}\n`);
  process.exit(code);
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(0);
    // commander already printed its one line; a usage error is a bad flag.
    process.exit(2);
  }
  if (err instanceof BridgeError) die(err.message, err.exitCode);
  const db = databaseProblem(err, databaseFile ?? 'BRIDGE_DATABASE');
  if (db) die(db.message, 2);
  const e = err as Error;
  die(`${e.message}${process.env.DEBUG ? `\n${e.stack}` : ''}`, 1);
}
