/**
 * What a setting must be: the field types the settings' schemas are built from, each with the words
 * its error message uses, and the one line for a value that is not what it must be. Imports nothing
 * of the settings, so that each sink kind (src/sinks/) can build its own settings from it while the
 * settings' schema (schema.ts) lists the sink kinds.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';

/**
 * What a field must be, in the words of its error message ("a whole number of seconds from 1 to 86400").
 * Kept apart from the global registry so that it stays out of the JSON Schema.
 */
export const MUST = z.registry<{ must: string }>();

export function wholeNumber(min: number, max: number | null, unit: string, description: string) {
  const range = max === null ? `from ${min} up` : `from ${min} to ${max}`;
  const base = z.number().int().min(min);
  return (max === null ? base : base.max(max)).describe(description).register(MUST, { must: `a whole number${unit ? ` of ${unit}` : ''} ${range}` });
}

export function positiveSeconds(description: string) {
  return z.number().positive().describe(description).register(MUST, { must: 'a positive number of seconds (fractions allowed)' });
}

export function flag(description: string) {
  return z.boolean().describe(description).register(MUST, { must: 'true or false' });
}

export function show(got: unknown): string {
  return typeof got === 'string' ? JSON.stringify(got) : JSON.stringify(got ?? null);
}

export function fail(setting: string, must: string, got: unknown): never {
  throw new ConfigError(`${setting} must be ${must}, got ${show(got)}`);
}

export function parseUrl(setting: string, raw: unknown): string {
  if (typeof raw !== 'string' || raw.trim() === '') fail(setting, 'an http(s) URL', raw);
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    fail(setting, 'an http(s) URL such as https://cloud.langfuse.com', raw);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') fail(setting, 'an http(s) URL', raw);
  return u.toString().replace(/\/+$/, '');
}
