/**
 * Redis mode: every attempt a worker makes reaches the attempt log (the console's event page) while
 * its job is still retrying, not only when the job ends.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bridgeEnv, spawnCli } from '../helpers/cli.js';
import { opsUrl } from '../helpers/console.js';
import { waitFor } from '../helpers/wait.js';
import { REDIS_URL, useQueueSuite } from './helpers.js';

interface Item {
  eventId: string;
  status: string;
}
interface Detail {
  sinks: Array<{ sink: string; status: string; attempts: Array<{ outcome: string; statusCode: number | null; response: string | null }> }>;
}

describe('attempt log with Redis', () => {
  const suite = useQueueSuite({ tag: 'attempts', seed: 11 });

  it("a worker's failed attempts show while the job waits for its next try", async () => {
    const { sim, rx, tmp, prefix } = suite;
    const ms = Date.now() - 30_000;
    const t = sim.addTrace({ name: 'redis-attempts', timestamp: new Date(ms).toISOString() });
    sim.addObservation({ traceId: t.id, type: 'SPAN', name: 'root', startTime: new Date(ms).toISOString(), endTime: new Date(ms + 100).toISOString() });
    rx.answer = () => 503;
    const env = bridgeEnv({
      langfuseUrl: sim.url,
      database: path.join(tmp.dir, 'attempts.db'),
      webhookUrl: rx.url,
      extra: {
        BRIDGE_REDIS_URL: REDIS_URL,
        BRIDGE_QUEUE_PREFIX: prefix,
        BRIDGE_STREAMS: 'traces',
        BRIDGE_POLL_INTERVAL_SECONDS: '1',
        BRIDGE_START_FROM: new Date(ms - 1000).toISOString(),
        // The second attempt comes 30-60 s after the first: the job is retrying all through the check.
        BRIDGE_RETRY_BASE_SECONDS: '60',
        BRIDGE_RETRY_MAX_ATTEMPTS: '5',
        BRIDGE_HTTP_PORT: '0',
        LOG_LEVEL: 'info',
      },
    });
    const daemon = spawnCli(['run', '--with-worker'], env);
    const url = await opsUrl(daemon);
    const item = await waitFor(async () => {
      const items = ((await (await fetch(`${url}/api/v1/deliveries`)).json()) as { items: Item[] }).items;
      return items[0];
    }, 30_000, 'the delivery');
    const detail = await waitFor(async () => {
      const d = (await (await fetch(`${url}/api/v1/events/${item.eventId}`)).json()) as Detail;
      return d.sinks[0]?.attempts.length ? d : null;
    }, 20_000, 'the first attempt in the log');
    expect(rx.hits.length).toBe(1);
    expect(detail.sinks[0]).toMatchObject({ sink: 'webhook', status: 'delivering' });
    expect(detail.sinks[0]!.attempts).toEqual([expect.objectContaining({ outcome: 'retrying', statusCode: 503, response: 'no' })]);
    daemon.kill('SIGTERM');
    await daemon.wait(20_000);
  }, 90_000);
});
