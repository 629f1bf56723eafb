/**
 * Logs are data: JSON lines on stderr (stdout carries only events and command output), pretty when
 * stderr is a terminal. Keys, secrets and signatures are redacted wherever they appear.
 */
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { Writable } from 'node:stream';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const REDACT = [
  'secret',
  'secretKey',
  'routingKey',
  'routing_key',
  'authorization',
  '*.secret',
  '*.secretKey',
  '*.routingKey',
  '*.authorization',
  '*.headers.authorization',
  '*.headers["webhook-signature"]',
  '*.headers["x-langfuse-signature"]',
];

export function createLogger(level: string = 'info', opts: { pretty?: boolean } = {}): Logger {
  const usePretty = opts.pretty ?? (process.stderr.isTTY === true && !process.env.CI);
  const base = { level, redact: { paths: REDACT, censor: '[redacted]' }, base: { name: 'langfuse-bridge' } };
  if (usePretty) {
    return pino(base, pretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname,name', translateTime: 'SYS:HH:MM:ss' }));
  }
  return pino(base, pino.destination({ dest: 2, sync: true }));
}

/**
 * A logger whose lines are held until `flush()` writes them to stderr: a command that prints a
 * result block (`check`) prints it first, and its log lines after, never in between.
 */
export function createBufferedLogger(level: string = 'info', opts: { pretty?: boolean } = {}): { logger: Logger; flush(): void } {
  const usePretty = opts.pretty ?? (process.stderr.isTTY === true && !process.env.CI);
  const held: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer | string, _enc, done) {
      held.push(chunk.toString());
      done();
    },
  });
  const base = { level, redact: { paths: REDACT, censor: '[redacted]' }, base: { name: 'langfuse-bridge' } };
  const logger = usePretty
    ? pino(base, pretty({ destination: sink, sync: true, colorize: true, ignore: 'pid,hostname,name', translateTime: 'SYS:HH:MM:ss' }))
    : pino(base, { write: (line: string) => void held.push(line) });
  return {
    logger,
    flush: () => {
      if (held.length) process.stderr.write(held.splice(0).join(''));
    },
  };
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
