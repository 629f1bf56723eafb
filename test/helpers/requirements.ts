/**
 * What some suites need from the machine (a Redis server, the redis-server program, a Chromium), one
 * rule for all of them: checked once per run by test/global-setup.ts; a suite that needs one that is
 * missing is skipped, and the run says which and what to install — unless CI is set, where a missing
 * one fails the suite.
 */
import { accessSync, constants } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, inject, it } from 'vitest';

export type Requirement = 'redis' | 'redis-server' | 'chromium';

export interface Missing {
  what: string;
  install: string;
  reason: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    missingRequirements: Partial<Record<Requirement, Missing>>;
  }
}

export const REDIS_URL = process.env.BRIDGE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** The first of these programs on PATH, or null. */
export function onPath(...names: string[]): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    for (const name of names) {
      const file = path.join(dir, name);
      try {
        accessSync(file, constants.X_OK);
        return file;
      } catch {
        /* not here */
      }
    }
  }
  return null;
}

/** Whether a Redis answers PING at url within a second. */
async function redisAnswers(url: string): Promise<string | null> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(u.port || 6379), u.hostname || '127.0.0.1');
    let data = '';
    const done = (problem: string | null): void => {
      socket.destroy();
      resolve(problem);
    };
    socket.setTimeout(1_000, () => done('no answer within 1 s'));
    socket.on('error', (err) => done((err as NodeJS.ErrnoException).code ?? err.message));
    socket.on('connect', () => socket.write(u.password ? `AUTH ${decodeURIComponent(u.password)}\r\nPING\r\n` : 'PING\r\n'));
    socket.on('data', (d: Buffer) => {
      data += d.toString();
      if (data.includes('+PONG')) done(null);
      else if (data.startsWith('-')) done(data.trim());
    });
  });
}

export function chromiumPath(): string | null {
  return process.env.CHROMIUM_PATH || process.env.CHROME_PATH || onPath('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable');
}

/** Checks every requirement (global setup). */
export async function checkRequirements(): Promise<Partial<Record<Requirement, Missing>>> {
  const missing: Partial<Record<Requirement, Missing>> = {};
  const redisProblem = await redisAnswers(REDIS_URL);
  if (redisProblem) {
    missing.redis = {
      what: `Redis at ${REDIS_URL}`,
      install: 'apt-get install -y redis-server, then start it: redis-server --daemonize yes --port 6379 --save "" --appendonly no (.ci/run does both)',
      reason: redisProblem,
    };
  }
  if (!onPath('redis-server')) missing['redis-server'] = { what: 'the redis-server program', install: 'apt-get install -y redis-server', reason: 'not on PATH' };
  if (!chromiumPath()) missing.chromium = { what: 'Chromium', install: 'apt-get install -y chromium (or set CHROMIUM_PATH)', reason: 'not on PATH' };
  return missing;
}

function inCi(): boolean {
  const ci = (process.env.CI ?? '').toLowerCase();
  return ci !== '' && ci !== '0' && ci !== 'false';
}

/**
 * For `describe.skipIf(skipWithout('redis'))(…)`: true when the requirement is missing. Under CI a
 * missing requirement fails instead: a failing test naming it is added in the suite's place.
 */
export function skipWithout(...names: Requirement[]): boolean {
  const all = inject('missingRequirements') ?? {};
  const missing = names.map((n) => all[n]).filter((m): m is Missing => m !== undefined);
  if (missing.length === 0) return false;
  if (inCi()) {
    describe('machine requirements', () => {
      for (const m of missing) {
        it(`needs ${m.what}`, () => {
          throw new Error(`${m.what} is not available (${m.reason}); CI must have it: ${m.install}`);
        });
      }
    });
  }
  return true;
}
