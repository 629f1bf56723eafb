/**
 * The Langfuse client against the simulator: a 429 pauses every call to the project, not only the
 * one that got it; without Retry-After the body's retryAfterSeconds is the wait, else the default.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { LangfuseClient } from '../src/langfuse/client.js';
import { LangfuseSimulator } from '../demo/simulator.js';
import pino from 'pino';
import { delay } from './helpers/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function world() {
  const sim = new LangfuseSimulator({ generation: 'v2', seed: 5 });
  const url = await sim.start();
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  const client = new LangfuseClient({ baseUrl: url, publicKey: 'pk-lf-demo', secretKey: 'sk-lf-demo', maxRequestsPerMinute: 1000, timeoutSeconds: 5, logger, userAgent: 'test' });
  cleanups.push(async () => {
    await client.close();
    await sim.stop();
  });
  return { sim, client, lines };
}

describe('a 429 from Langfuse', () => {
  it('without Retry-After waits the body’s retryAfterSeconds, and holds every other call to the project meanwhile', async () => {
    const { sim, client } = await world();
    await client.get('/api/public/traces', { limit: 1 }); // a call before: the 429 meets a later one
    sim.injectFaults({ kind: '429', retryAfterSeconds: 2, header: false }, '/api/public/scores');
    const scores = client.get('/api/public/scores', { limit: 1 });
    await delay(200);
    const t429 = sim.requests.find((r) => r.status === 429)!.at;
    // Another endpoint, asked during the pause: it waits too.
    await client.get('/api/public/observations', { limit: 1 });
    await scores;
    const after = sim.requests.filter((r) => r.receivedAt > t429);
    expect(after.map((r) => r.path.split('?')[0]).sort()).toEqual(['/api/public/observations', '/api/public/scores']);
    for (const r of after) expect(r.receivedAt - t429, r.path).toBeGreaterThanOrEqual(1_990);
  });

  it('a Retry-After longer than an hour is held to an hour', async () => {
    const { sim, client, lines } = await world();
    sim.injectFaults({ kind: '429', retryAfterSeconds: 86_400 }, '/api/public/traces');
    const ac = new AbortController();
    const call = client.get('/api/public/traces', { limit: 1 }, ac.signal).catch((e: unknown) => e);
    await delay(300);
    const t429 = sim.requests.find((r) => r.status === 429)!.at;
    expect(client.limiter.pausedUntilMs - t429).toBeLessThanOrEqual(3_600_000 + 1_000);
    expect(client.limiter.pausedUntilMs - t429).toBeGreaterThanOrEqual(3_599_000);
    expect(lines.find((l) => l.msg === 'Langfuse rate limit reached; pausing calls to this project')).toMatchObject({ retryAfterMs: 3_600_000 });
    ac.abort(new Error('enough'));
    expect(await call).toBeInstanceOf(Error);
  });

  it('with neither Retry-After nor retryAfterSeconds waits the default minute', async () => {
    const { sim, client, lines } = await world();
    sim.injectFaults({ kind: '429', retryAfterSeconds: 2, header: false, body: false }, '/api/public/traces');
    const ac = new AbortController();
    const call = client.get('/api/public/traces', { limit: 1 }, ac.signal).catch((e: unknown) => e);
    await delay(300);
    const t429 = sim.requests.find((r) => r.status === 429)!.at;
    expect(client.limiter.pausedUntilMs - t429).toBeGreaterThanOrEqual(59_000);
    expect(lines.find((l) => l.msg === 'Langfuse rate limit reached; pausing calls to this project')).toMatchObject({ retryAfterMs: 60_000 });
    await delay(2_500);
    expect(sim.requests.filter((r) => r.receivedAt > t429)).toEqual([]);
    ac.abort(new Error('enough'));
    expect(await call).toBeInstanceOf(Error);
  });
});
