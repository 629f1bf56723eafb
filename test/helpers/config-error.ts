import { expect } from 'vitest';
import { ConfigError } from '../../src/errors.js';

/** Runs fn, expects it to throw a one-line ConfigError, and returns the message. */
export function configErrorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    return msg;
  }
  throw new Error('expected a ConfigError');
}
