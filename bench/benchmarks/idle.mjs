// idle: a Poller (in-process) against a simulator (child process) that gets no new data. After a first poll,
// 20 idle polls at production's cadence: the default 30 s interval with a late-data sweep every minute, so
// every other poll re-reads the lookback (the sweep is made due before it, rather than waited for). Per
// poll: API calls per resource (from the simulator's request log) and CPU time (process.cpuUsage around
// pollOnce). Two seedings:
//   busy   the last 2 h hold 2,000 traces, so the lookback window (20 min) holds ~1,700 observations
//   quiet  the data ends 30 min ago: nothing in the lookback window
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { summarizeProfile } from '../lib/profile-summary.mjs';
import { instrumentStore } from '../lib/instrument-store.mjs';
import { DIST, PUBLIC_KEY, SECRET_KEY, fix, forkHelper, int, log, median, removeDir, silentLogger, status, tempDir } from '../lib/index.mjs';

const { Store } = await import(join(DIST, 'store/index.js'));
const { Poller } = await import(join(DIST, 'poll/index.js'));
const { loadConfig } = await import(join(DIST, 'config', 'index.js'));
const { createClient } = await import(join(DIST, 'commands/shared.js'));

const MIN = 60_000;
const RESOURCES = { '/api/public/v2/observations': 'observations', '/api/public/v3/scores': 'scores' };

async function scenario(name, batch, polls) {
  const sim = forkHelper('sim-server.mjs', { generation: 'v4', publicKey: PUBLIC_KEY, secretKey: SECRET_KEY, batches: [batch] });
  const dir = tempDir(`idle-${name}`);
  try {
    const ready = await sim.ready;
    const config = loadConfig({
      env: {
        LANGFUSE_PUBLIC_KEY: PUBLIC_KEY,
        LANGFUSE_SECRET_KEY: SECRET_KEY,
        LANGFUSE_BASE_URL: ready.url,
        BRIDGE_DATABASE: join(dir, 'bridge.db'),
        // High enough that the limiter never sleeps inside a measured poll; calls per poll are what is counted.
        BRIDGE_MAX_REQUESTS_PER_MINUTE: '100000',
      },
    });
    const logger = await silentLogger();
    const store = new Store(config.database);
    const client = createClient(config, logger, { store });
    // A sink that takes every event (routing only: nothing is delivered here).
    const sink = { name: 'webhook', kind: 'webhook', alerting: false, concurrency: 1, minIntervalMs: 0, events: ['*'], deliver: async () => ({ ok: true }) };
    const poller = new Poller(store, client, config, [sink], logger);
    const dueForSweep = () => {
      for (const source of ['observations', 'scores']) store.putCursor({ ...store.getCursor(poller.projectId, source), lastSweepDoneAt: 0 });
    };
    const first = await poller.pollOnce();
    // One sweep before measuring. Made due at once, it reads a sweep interval further back than the first
    // poll did (in production it comes a sweep interval later and reads no further back): what it finds
    // there is not idle work.
    dueForSweep();
    const settle = await poller.pollOnce();
    const firstCalls = await sim.ask({ cmd: 'requests', reset: true });
    const inst = process.env.BENCH_PROFILE === '1' ? instrumentStore(Store, ['write', 'getSeen', 'putSeen', 'putCursor', 'getCursor', 'enqueue', 'getMeta', 'setMeta']) : null;
    const perPoll = [];
    // BENCH_PROFILE=1: CPU-profile the idle polls only (not the setup or the first poll).
    const session = process.env.BENCH_PROFILE === '1' ? new Session() : null;
    if (session) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 100 });
      await session.post('Profiler.start');
    }
    for (let i = 0; i < polls; i++) {
      // Every other poll a sweep is due, as with a 30 s interval and a sweep a minute.
      const sweep = i % 2 === 1;
      if (sweep) dueForSweep();
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const r = await poller.pollOnce();
      const wall = performance.now() - t0;
      const c = process.cpuUsage(c0);
      const req = await sim.ask({ cmd: 'requests', reset: true });
      perPoll.push({ sweep, cpuMs: (c.user + c.system) / 1000, wall, events: r.events, calls: req.byPath, statuses: req.statuses });
    }
    if (session) {
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      const file = join(dir, `idle-${name}.cpuprofile`);
      writeFileSync(file, JSON.stringify(profile));
      const sum = summarizeProfile(file, 20);
      log(`idle/${name} Store calls over ${polls} idle polls:\n${inst.report()}`);
      log(`idle/${name} profile of ${polls} idle polls (${fix(sum.totalMs, 0)} ms sampled, profiler overhead included):\n${sum.functions.join('\n')}\nby file\n${sum.files.join('\n')}`);
    }
    await client.close();
    store.close();
    const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const head = perPoll.filter((p) => !p.sweep);
    const swept = perPoll.filter((p) => p.sweep);
    const callsOf = (ps) => Object.fromEntries(Object.entries(RESOURCES).map(([path, label]) => [label, mean(ps.map((p) => p.calls[path] ?? 0))]));
    const calls = callsOf(head);
    const sweepCalls = callsOf(swept);
    const other = mean(perPoll.map((p) => Object.entries(p.calls).filter(([k]) => !RESOURCES[k]).reduce((a, [, v]) => a + v, 0)));
    const cpu = perPoll.map((p) => p.cpuMs);
    const res = {
      scenario: name,
      firstPoll: { events: first.events, settleEvents: settle.events, calls: firstCalls.byPath },
      calls,
      sweepCalls,
      otherCalls: other,
      newEvents: perPoll.reduce((a, p) => a + p.events, 0),
      cpuMean: mean(cpu),
      cpuMedian: median(cpu),
      cpuMax: Math.max(...cpu),
      cpuHeadMedian: median(head.map((p) => p.cpuMs)),
      cpuSweepMedian: median(swept.map((p) => p.cpuMs)),
      wallMedian: median(perPoll.map((p) => p.wall)),
    };
    // Polls without a sweep: one call per resource. Over the cadence (sweeps included): < 20 ms CPU a poll.
    res.ok = Object.values(calls).every((c) => c <= 1) && other === 0 && res.cpuMean < 20;
    log(
      `idle/${name}: first poll ${int(first.events)} events, first sweep ${int(settle.events)}; polls without a sweep: ${JSON.stringify(calls)} calls (other ${fix(other, 1)}), CPU median ${fix(res.cpuHeadMedian, 1)} ms; ` +
        `polls with a sweep: ${JSON.stringify(sweepCalls)} calls, CPU median ${fix(res.cpuSweepMedian, 1)} ms; all: CPU mean ${fix(res.cpuMean, 1)} ms, max ${fix(res.cpuMax, 1)}, wall median ${fix(res.wallMedian, 1)} ms, ${res.newEvents} new events`,
    );
    return res;
  } finally {
    await sim.stop();
    removeDir(dir);
  }
}

export async function runIdle() {
  const polls = Number(process.env.BENCH_IDLE_POLLS ?? 20);
  const now = Date.now();
  const busy = await scenario('busy', { from: now - 120 * MIN, to: now - MIN, traces: 2000, observationsPerTrace: 5, scoresPerTrace: 1 }, polls);
  const quiet = await scenario('quiet', { from: now - 180 * MIN, to: now - 30 * MIN, traces: 2000, observationsPerTrace: 5, scoresPerTrace: 1 }, polls);
  const line = (r, label) =>
    `idle     ${label.padEnd(34)} calls/poll: observations ${fix(r.calls.observations, 1)}, scores ${fix(r.calls.scores, 1)}${r.otherCalls ? `, other ${fix(r.otherCalls, 1)}` : ''} ` +
    `(with a sweep: ${fix(r.sweepCalls.observations, 1)}, ${fix(r.sweepCalls.scores, 1)})  CPU ${fix(r.cpuMean, 1)} ms/poll mean, sweeps included ` +
    `(without ${fix(r.cpuHeadMedian, 1)}, with ${fix(r.cpuSweepMedian, 1)} median; max ${fix(r.cpuMax, 1)})  target ≤1 call/resource without a sweep, <20 ms mean  ${status(r.ok)}`;
  return [
    { name: 'idle-busy', ...busy, line: line(busy, '(lookback holds ~330 traces)') },
    { name: 'idle-quiet', ...quiet, line: line(quiet, '(nothing in the lookback)') },
  ];
}
