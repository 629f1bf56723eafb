/**
 * Failures a user causes or fixes, each with the exit code the CLI ends on. The CLI prints the message
 * as one line, without a stack trace; any other error is a bug or an outage and exits 1. And how any
 * error is told in one line (a failed attempt's reason, a log line).
 */
export abstract class BridgeError extends Error {
  abstract readonly exitCode: number;
}

/** A bad or missing setting: the message names the setting, what it must be and what it got. */
export class ConfigError extends BridgeError {
  override name = 'ConfigError';
  readonly exitCode = 2;
}

/** A flag that cannot be used as given: a bad value, flags that contradict, a sink or project not configured. */
export class UsageError extends BridgeError {
  override name = 'UsageError';
  readonly exitCode = 2;
}

/** The database file cannot be used as it is: the message names the file and the fix. */
export class DatabaseError extends BridgeError {
  override name = 'DatabaseError';
  readonly exitCode = 2;
  constructor(
    message: string,
    readonly file: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** `run` on a database that another live `run` holds: the message names the other one. */
export class DaemonRunningError extends BridgeError {
  override name = 'DaemonRunningError';
  readonly exitCode = 2;
}

/** Another `run` took the lock over after this daemon stalled past its expiry: this one stops. */
export class LockLostError extends BridgeError {
  override name = 'LockLostError';
  readonly exitCode = 1;
}

/**
 * An error as one line of text, never empty: its message's first line, or for a network failure
 * that undici or Node wrap without saying much ("fetch failed", an AggregateError from happy-eyeballs)
 * the cause's; else its code or name. Strings and other thrown values are shown as they are.
 */
export function oneLine(err: unknown): string {
  if (err instanceof AggregateError && !err.message && err.errors[0] !== undefined) return oneLine(err.errors[0]);
  if (err instanceof Error) {
    const cause: unknown = err.cause;
    if ((!err.message || err.message === 'fetch failed') && cause !== undefined) return oneLine(cause);
    const code = (err as { code?: unknown }).code;
    return firstLine(err.message).trim() || (typeof code === 'string' ? code : '') || err.name;
  }
  if (typeof err === 'string') return firstLine(err).trim() || '(empty string)';
  try {
    return firstLine(JSON.stringify(err) ?? String(err)).trim();
  } catch {
    return String(err);
  }
}

/** The first line of a text, as it is (no trimming). */
export function firstLine(s: string): string {
  return s.split(/\r?\n/, 1)[0] ?? '';
}
