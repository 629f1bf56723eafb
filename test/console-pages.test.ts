/**
 * The overview renders from the status report object: fields it does not know (added later to
 * `status --json`) still show, as text.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StatusReport } from '../src/commands/status.js';
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
});
