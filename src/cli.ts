#!/usr/bin/env node
/** Commands and flags, and the exit code each error class ends on; each command's work is in commands/. */
import { Command, CommanderError, Option } from 'commander';
import { backfillCommand } from './commands/backfill.js';
import { checkCommand } from './commands/check.js';
import { replayCommand } from './commands/replay.js';
import { runCommand } from './commands/run.js';
import { statusCommand } from './commands/status.js';
import { testEventCommand } from './commands/test-event.js';
import { workerCommand } from './commands/worker.js';
import { loadConfig, parseInstant, type BridgeConfig } from './config/index.js';
import { BridgeError, UsageError } from './errors.js';
import { boundHeapGrowth } from './ops/heap.js';
import { LOG_LEVELS, createLogger } from './ops/logger.js';
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

function globals(cmd: Command): GlobalOpts {
  return cmd.optsWithGlobals() as GlobalOpts;
}

function config(cmd: Command, requireKeys = true): BridgeConfig {
  return loadConfig({ configFile: globals(cmd).config ?? null, requireKeys, onWarning: (message, fields) => logger(cmd).warn(fields, message) });
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
    await runCommand(config(cmd), logger(cmd), o);
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
    process.exitCode = await backfillCommand(config(cmd), logger(cmd), { ...o, configFile: globals(cmd).config ?? null });
  });

program
  .command('status')
  .description('Is the daemon running, how far behind is each stream, what is queued, failing or dead-lettered (reads the database only)')
  .option('--json', 'machine-readable output', false)
  .option('--check', 'exit 1 when something needs a human: no live daemon, a late-data sweep behind, polls failing, dead letters of the last 24 h not replayed', false)
  .addHelpText('after', '\nExample (cron):\n  $ langfuse-bridge status --check > /dev/null || notify-on-call')
  .action(async (o: { json: boolean; check: boolean }, cmd: Command) => {
    process.exitCode = await statusCommand(config(cmd, false), o);
  });

program
  .command('replay')
  .description('Put dead-lettered deliveries back in the queue (the running daemon sends them)')
  .option('--sink <name>', 'only this sink')
  .option('--since <iso>', 'only deliveries dead-lettered since then', instant('--since'))
  .addHelpText('after', '\nExample:\n  $ langfuse-bridge replay --sink webhook --since 2026-11-26T00:00:00Z')
  .action(async (o: { sink?: string; since?: Date }, cmd: Command) => {
    await replayCommand(config(cmd, false), logger(cmd), { sink: o.sink ?? null, sinceMs: o.since?.getTime() ?? null });
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
    await workerCommand(config(cmd, false), logger(cmd), { sink: o.sink ?? null, concurrency: o.concurrency ?? null });
  });

program
  .command('check')
  .description('Exercise what `run` needs: Langfuse and the keys, each stream’s endpoints, the database (read only), Redis, the sinks, the ops port')
  .action(async (_o, cmd: Command) => {
    process.exitCode = await checkCommand(config(cmd), globals(cmd).logLevel);
  });

program
  .command('test-event')
  .description('Send one synthetic `test` event through the pipeline, like a dashboard’s "Send test event"')
  .option('--sink <name>', 'only this sink; Slack and PagerDuty get a test event only when named here')
  .addHelpText('after', '\nWithout --sink the event goes to the webhook, stdout and handler sinks; one result line per sink on stdout.\nExample:\n  $ langfuse-bridge test-event --sink pagerduty')
  .action(async (o: { sink?: string }, cmd: Command) => {
    process.exitCode = await testEventCommand(config(cmd, false), logger(cmd), { sink: o.sink ?? null });
  });

for (const c of program.commands) c.configureOutput(errorOutput(c.name()));

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
  const e = err as Error;
  die(`${e.message}${process.env.DEBUG ? `\n${e.stack}` : ''}`, 1);
}
