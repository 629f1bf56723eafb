/**
 * Checks the schema cannot say in JSON Schema terms (an instant, a cron expression, event patterns, a
 * Redis URL), each given the setting's name as the user wrote it. An http(s) URL is checked by
 * fields.ts, whose checks the sink kinds use too.
 */
import cron from 'node-cron';
import { isEventPattern } from '../events/patterns.js';
import { fail } from './fields.js';
import { STREAMS, type Stream } from './schema.js';

/** Accepts full ISO 8601 timestamps with a zone (or a plain date, taken as UTC midnight). */
export function parseInstant(setting: string, raw: unknown): Date {
  if (typeof raw !== 'string') fail(setting, 'an ISO 8601 time such as 2026-11-01T00:00:00Z', raw);
  const s = raw.trim();
  const ok = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2}))?$/.test(s);
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(s) ? `${s}T00:00:00Z` : s);
  if (!ok || Number.isNaN(d.getTime())) fail(setting, 'an ISO 8601 time with a zone, such as 2026-11-01T00:00:00Z', raw);
  return d;
}

export function checkCron(setting: string, raw: string): string {
  if (!cron.validate(raw)) fail(setting, 'a cron expression such as "0 9 * * *" (09:00 UTC every day)', raw);
  return raw;
}

/** Each stream once, at least one. `got` is the list as the user wrote it. */
export function uniqueStreams(setting: string, list: readonly Stream[], got: unknown): Stream[] {
  const out = [...new Set(list)];
  if (out.length === 0) fail(setting, `a comma list of ${STREAMS.join(', ')}`, got);
  return out;
}

export function eventPatterns(setting: string, raw: string | string[] | undefined): string[] {
  if (raw === undefined) return ['*'];
  const out = (Array.isArray(raw) ? raw : raw.split(',')).map((s) => s.trim()).filter(Boolean);
  for (const p of out) if (!isEventPattern(p)) fail(setting, 'a comma list of event types or globs like trace.*,score.created', p);
  return out.length ? out : ['*'];
}

export function checkRedisUrl(setting: string, raw: string): string {
  let u: URL | null = null;
  try {
    u = new URL(raw.trim());
  } catch {
    u = null;
  }
  if (!u || (u.protocol !== 'redis:' && u.protocol !== 'rediss:') || !u.hostname) {
    fail(setting, 'a redis:// or rediss:// URL such as redis://127.0.0.1:6379', raw.replace(/\/\/([^:@/]*):([^@/]*)@/, '//$1:***@'));
  }
  return raw.trim();
}

export function checkPrefix(setting: string, raw: string): string {
  const prefix = raw.trim();
  if (!prefix || /\s/.test(prefix)) fail(setting, 'a key prefix without spaces', prefix);
  return prefix;
}
