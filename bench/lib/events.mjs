// Realistic synthetic event bodies (the shapes and sizes the bridge produces), deterministic for a seed.
import { join } from 'node:path';
import { DEMO_DIST, DIST } from './index.mjs';

const { eventId, makeEvent } = await import(join(DIST, 'events/index.js'));

// The simulator's seeded generator, so bench data is as reproducible as the simulator's.
const { mulberry32: rng } = await import(join(DEMO_DIST, 'sim-data.js'));
const hex = (r, n) => {
  let s = '';
  while (s.length < n) s += Math.floor(r() * 4294967296).toString(16).padStart(8, '0');
  return s.slice(0, n);
};

/** n events in the mix a backfill yields: ~28 % trace.created, 3 % trace.updated, 41 % generation.created, 28 % score.created. */
export function syntheticEvents(n, { projectId = 'bench-project', seed = 7, startMs = Date.UTC(2026, 10, 26) } = {}) {
  const r = rng(seed);
  const out = [];
  const models = ['gpt-4o-mini', 'gpt-4o', 'claude-3-5-sonnet-20241022'];
  for (let i = 0; i < n; i++) {
    const ts = new Date(startMs + i * 4000 + Math.floor(r() * 3000)).toISOString();
    const traceId = hex(r, 32);
    const x = r();
    let ev;
    if (x < 0.28 || (x >= 0.69 && x < 0.72)) {
      const updated = x >= 0.69;
      const level = updated ? (r() < 0.5 ? 'ERROR' : 'WARNING') : 'DEFAULT';
      const type = updated ? 'trace.updated' : 'trace.created';
      ev = makeEvent(type, eventId(projectId, type, traceId, updated ? level : ''), ts, {
        projectId,
        traceId,
        name: ['qa-pipeline', 'support-chat', 'summarize'][i % 3],
        userId: `user-${Math.floor(r() * 50)}`,
        sessionId: r() < 0.66 ? `sess-${Math.floor(r() * 400)}` : null,
        environment: r() < 0.85 ? 'production' : 'staging',
        tags: r() < 0.2 ? ['rag', 'beta'] : ['rag'],
        level,
        statusMessage: level === 'ERROR' ? `upstream model timeout (trace ${i})` : level === 'WARNING' ? `slow response (trace ${i})` : null,
      });
    } else if (x < 0.69) {
      const observationId = hex(r, 16);
      const promptTokens = 200 + Math.floor(r() * 1300);
      const completionTokens = 40 + Math.floor(r() * 360);
      const totalCost = promptTokens * 1.5e-7 + completionTokens * 6e-7;
      ev = makeEvent('generation.created', eventId(projectId, 'generation.created', observationId, ''), ts, {
        projectId,
        observationId,
        traceId,
        name: 'llm-call',
        model: models[i % 3],
        level: 'DEFAULT',
        statusMessage: null,
        startTime: ts,
        endTime: new Date(Date.parse(ts) + 400 + Math.floor(r() * 1600)).toISOString(),
        usage: { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens },
        usageDetails: { input: promptTokens, output: completionTokens, total: promptTokens + completionTokens },
        costDetails: { input: promptTokens * 1.5e-7, output: completionTokens * 6e-7, total: totalCost },
        totalCost,
      });
    } else {
      const scoreId = hex(r, 32);
      const numeric = r() < 0.8;
      ev = makeEvent('score.created', eventId(projectId, 'score.created', scoreId, ''), ts, {
        projectId,
        scoreId,
        traceId,
        observationId: null,
        sessionId: null,
        name: numeric ? 'accuracy' : 'is_correct',
        value: numeric ? Math.round(r() * 1000) / 1000 : r() < 0.8,
        stringValue: numeric ? null : 'True',
        dataType: numeric ? 'NUMERIC' : 'BOOLEAN',
        source: r() < 0.8 ? 'API' : 'EVAL',
        comment: r() < 0.3 ? 'auto' : null,
      });
    }
    out.push({ id: ev.id, type: ev.event, ts: ev.timestamp, body: JSON.stringify(ev), event: ev });
  }
  return out;
}
