// Child process: a LangfuseSimulator with generated data, so its CPU is not counted against the bridge.
// argv[2]: JSON { generation, seed, batches: [{ from, to, traces, observationsPerTrace, scoresPerTrace }] }
// IPC: sends { type: 'ready', url, counts, generated }; answers { cmd: 'requests', reset? }, { cmd: 'reset' },
// { cmd: 'generate', batch }, { cmd: 'stop' }.
import { LangfuseSimulator } from '../../dist-demo/simulator.js';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const sim = new LangfuseSimulator({
  generation: cfg.generation ?? 'v4',
  publicKey: cfg.publicKey ?? 'pk-lf-bench',
  secretKey: cfg.secretKey ?? 'sk-lf-bench',
  projectId: cfg.projectId ?? 'bench-project',
  seed: cfg.seed ?? 42,
});

function generate(b) {
  return sim.generate({
    from: new Date(b.from),
    to: new Date(b.to),
    traces: b.traces,
    observationsPerTrace: b.observationsPerTrace ?? 5,
    scoresPerTrace: b.scoresPerTrace ?? 1,
  });
}

const generated = (cfg.batches ?? []).map(generate);
const url = await sim.start();

function summarize(entries) {
  const byPath = {};
  for (const r of entries) {
    const p = r.path.split('?')[0];
    byPath[p] = (byPath[p] ?? 0) + 1;
  }
  return byPath;
}

process.on('message', async (m) => {
  switch (m?.cmd) {
    case 'requests': {
      const entries = sim.requests.slice();
      if (m.reset) sim.resetStats();
      process.send({ id: m.id, total: entries.length, byPath: summarize(entries), statuses: summarize(entries.map((e) => ({ path: String(e.status) }))) });
      break;
    }
    case 'reset':
      sim.resetStats();
      process.send({ id: m.id });
      break;
    case 'generate':
      process.send({ id: m.id, generated: generate(m.batch), counts: sim.counts });
      break;
    case 'stop':
      await sim.stop();
      process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
process.send({ type: 'ready', url, counts: sim.counts, generated });
