/**
 * Failures a user causes or fixes, each with the exit code the CLI ends on. The CLI prints the message
 * as one line, without a stack trace; any other error is a bug or an outage and exits 1.
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
