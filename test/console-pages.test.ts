/**
 * The overview renders from the status report object: fields it does not know (added later to
 * `status --json`) still show, as text.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { statusJson, type StatusReport } from '../src/commands/status.js';
import { createConsole } from '../src/ops/console/index.js';
import { renderOverview } from '../src/ops/console/pages.js';
import { silentLogger } from '../src/ops/logger.js';
import { Store } from '../src/store/index.js';
import { tempDir } from './helpers/cli.js';

describe('console overview', () => {
  const dir = tempDir('lfb-pages-');
  const store = new Store(path.join(dir.dir, 'bridge.db'));

  it("shows a sink's state and fields it does not lay out itself, escaped", () => {
    const report = {
      database: 'x.db',
      streams: [{ project: 'p', source: 'observations', streams: ['traces'], cursor: null, lastPollAt: null, lastOutcome: null, lastError: null, sweepBehindSeconds: 0, lastSweepDoneAt: null, pollAgeSeconds: 12 }],
      sinks: [{ name: 'hook', queued: 1, delivering: 0, retrying: 2, delivered: 3, dead: 0, state: 'paused', futureField: '<b>soon</b>' }],
      oldestPendingAt: null,
      recentDead: [],
      heartbeatAgeSeconds: 4,
    } as unknown as StatusReport;
    const html = renderOverview({ store, logger: silentLogger(), status: async () => report, sinkNames: () => ['hook'], wake: () => undefined }, report, false);
    expect(html).toContain('<span class="badge s-paused">paused</span>');
    expect(html).toContain('futureField</span> &lt;b&gt;soon&lt;/b&gt;');
    expect(html).not.toContain('<b>soon</b>');
    expect(html).toContain('pollAgeSeconds</span> 12');
    expect(html).toContain('heartbeatAgeSeconds</span> 4');
    store.close();
    dir.cleanup();
  });

  it('/api/v1/status gives the object `status --json` prints: without the queues\' text lines', async () => {
    const d = tempDir('lfb-api-status-');
    const own = new Store(path.join(d.dir, 'bridge.db'));
    const report = { database: 'x.db', attention: [], queues: { waiting: 1 }, queueLines: ['queue hook: 1 waiting'] } as unknown as StatusReport;
    const handle = createConsole({ store: own, logger: silentLogger(), status: async () => report, sinkNames: () => ['hook'], wake: () => undefined }, { host: '127.0.0.1', token: null });
    const server = http.createServer(handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const body = await (await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/status`)).json();
      expect(body).toEqual(JSON.parse(JSON.stringify(statusJson(report))));
      expect(body).toEqual({ database: 'x.db', attention: [], queues: { waiting: 1 } });
    } finally {
      await new Promise((resolve) => server.close(resolve));
      own.close();
      d.cleanup();
    }
  });
});
