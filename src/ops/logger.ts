/**
 * Logs are data: JSON lines on stderr (stdout carries only events and command output), pretty when
 * stderr is a terminal. Keys, secrets and signatures are redacted wherever they appear.
 */
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

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

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
