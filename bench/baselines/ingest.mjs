// Child process: the ingest baseline. Pages the same endpoints the bridge's backfill reads, with the same
// page sizes, field groups, cursor pagination and adaptive time slices, and JSON.parse's every page.
// Nothing else: no mapping, no change detection, no database, no delivery. Like the bridge it reads the
// sources side by side (one slice at a time each), through the bridge's own HTTP client settings
// (undici.request on the dispatcher src/http.ts makes, 4 connections).
// argv: <baseUrl> <fromMs> <toMs>; prints { calls, observations, scores, bytes } as JSON on stdout.
import { request } from 'undici';
import { createDispatcher } from '../../dist/http.js';
import { FIRST_SLICE_MS, nextSliceMs } from '../../dist/poll/slices.js';

const [baseUrl, fromArg, toArg] = process.argv.slice(2);
const fromMs = Number(fromArg);
const toMs = Number(toArg);
const auth = `Basic ${Buffer.from(`${process.env.LANGFUSE_PUBLIC_KEY}:${process.env.LANGFUSE_SECRET_KEY}`).toString('base64')}`;
// The Langfuse client's own: createDispatcher({ connections: 4 }) in src/langfuse/client.ts.
const dispatcher = createDispatcher({ connections: 4 });
const origin = new URL(baseUrl).origin;
const iso = (ms) => new Date(ms).toISOString();

let calls = 0;
let bytes = 0;

async function get(path, query) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) qs.set(k, String(v));
  const res = await request(`${origin}${path}?${qs}`, {
    method: 'GET',
    dispatcher,
    headers: { accept: 'application/json', 'user-agent': 'bench-baseline', authorization: auth },
  });
  const text = await res.body.text();
  calls++;
  bytes += text.length;
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode} for ${path}: ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

async function readWindow(source, w) {
  const path = source === 'observations' ? '/api/public/v2/observations' : '/api/public/v3/scores';
  const query =
    source === 'observations'
      ? { fromStartTime: iso(w.fromMs), toStartTime: iso(w.toMs), limit: 1000, fields: 'core,basic,model,usage,trace_context' }
      : { fromTimestamp: iso(w.fromMs), toTimestamp: iso(w.toMs), limit: 100, fields: 'details,subject' };
  let cursor;
  let rows = 0;
  for (;;) {
    const body = await get(path, { ...query, cursor });
    const n = Array.isArray(body?.data) ? body.data.length : 0;
    rows += n;
    const next = body?.meta?.cursor;
    if (!next || n === 0) return rows;
    cursor = next;
  }
}

const totals = { observations: 0, scores: 0 };
// The sources side by side, as the bridge's backfill reads them; within one, a slice at a time.
await Promise.all(
  ['observations', 'scores'].map(async (source) => {
    // The bridge's own backfill slicing (src/poll/slices.ts, a module with no imports), so that both read
    // the same windows with the same calls.
    let slice = FIRST_SLICE_MS;
    for (let start = fromMs; start < toMs; ) {
      const end = Math.min(toMs, Math.floor(start / slice) * slice + slice);
      const rows = await readWindow(source, { fromMs: start, toMs: end });
      totals[source] += rows;
      slice = nextSliceMs(slice, rows, end - start);
      start = end;
    }
  }),
);
await dispatcher.close();
process.stdout.write(`${JSON.stringify({ calls, bytes, ...totals })}\n`);
