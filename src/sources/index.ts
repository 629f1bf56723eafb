/**
 * What the bridge reads from Langfuse, per API generation, as pages of records, newest first.
 * v4 (Cloud, self-hosted v4): v2 observations + v3 scores, cursor-paginated.
 * legacy (self-hosted v2/v3): traces + v1 observations + v2 or v1 scores, page-based.
 */
import type { Logger } from 'pino';
import type { ApiMode } from '../config/index.js';
import type { ObservationRecord, PromptVersionRecord, ScoreRecord, TraceRecord } from '../events/records.js';
import { LangfuseError, type LangfuseClient } from '../langfuse/client.js';
import { mapItems, toObservation, toPromptVersion, toScore, toTrace } from './map.js';

export type Generation = 'v4' | 'legacy';

export interface ApiShape {
  generation: Generation;
  scoresPath: string;
  version: string | null;
}

export const PATHS = {
  observationsV2: '/api/public/v2/observations',
  scoresV3: '/api/public/v3/scores',
  traces: '/api/public/traces',
  observationsV1: '/api/public/observations',
  scoresV2: '/api/public/v2/scores',
  scoresV1: '/api/public/scores',
  prompts: '/api/public/v2/prompts',
  health: '/api/public/health',
} as const;

async function serves(client: LangfuseClient, path: string, query: Record<string, string | number>, signal?: AbortSignal): Promise<boolean> {
  try {
    await client.get(path, query, signal);
    return true;
  } catch (err) {
    if (err instanceof LangfuseError && err.kind === 'absent') return false;
    throw err;
  }
}

/** Picks the API generation by probing (a 404 on the new endpoint means legacy), unless told. */
export async function probeApi(client: LangfuseClient, mode: ApiMode, signal?: AbortSignal): Promise<ApiShape> {
  let version: string | null = null;
  try {
    const h = await client.get<{ version?: unknown }>(PATHS.health, {}, signal, { auth: false });
    version = typeof h.version === 'string' ? h.version : null;
  } catch (err) {
    if (err instanceof LangfuseError && err.kind !== 'transient') {
      /* health is optional; the real probe follows */
    } else throw err;
  }
  const generation: Generation =
    mode === 'v4' ? 'v4' : mode === 'legacy' ? 'legacy' : (await serves(client, PATHS.observationsV2, { limit: 1, fields: 'core' }, signal)) ? 'v4' : 'legacy';
  if (generation === 'v4') return { generation, scoresPath: PATHS.scoresV3, version };
  // v3 servers list scores at /v2/scores; v2 servers only at /scores (v1).
  const scoresPath = (await serves(client, PATHS.scoresV2, { limit: 1 }, signal)) ? PATHS.scoresV2 : PATHS.scoresV1;
  return { generation, scoresPath, version };
}

export interface Window {
  fromMs: number;
  toMs: number;
}

export interface Page<T> {
  rows: T[];
  /** Event time of the oldest row on the page, null for an empty page. */
  oldestMs: number | null;
}

export interface ReadContext {
  client: LangfuseClient;
  shape: ApiShape;
  logger: Logger;
  includeIo: boolean;
  signal?: AbortSignal;
  /** Every observation type (trace levels need them all) or only generations. */
  allObservationTypes: boolean;
  onSkip?: (what: string) => void;
}

const iso = (ms: number): string => new Date(ms).toISOString();

function skipper(ctx: ReadContext, what: string) {
  return (why: string, raw: unknown): void => {
    const id = raw && typeof raw === 'object' && 'id' in raw ? String((raw as { id: unknown }).id) : undefined;
    ctx.logger.warn({ what, id, why }, 'skipped a malformed item from Langfuse; the rest of the page is delivered');
    ctx.onSkip?.(what);
  };
}

// Record times are canonical ISO strings (see map.ts), which sort and compare as the times they name.

function oldest<T>(rows: T[], time: (r: T) => string): number | null {
  let min: string | null = null;
  for (const r of rows) {
    const t = time(r);
    if (min === null || t < min) min = t;
  }
  return min === null ? null : Date.parse(min);
}

/** A filter keeping records whose time lies in [w.fromMs, w.toMs). */
function inWindow<T>(w: Window, time: (r: T) => string): (r: T) => boolean {
  const lo = iso(w.fromMs);
  const hi = iso(w.toMs);
  return (r) => {
    const t = time(r);
    return t >= lo && t < hi;
  };
}

/** Cursor pagination (v4): pass `meta.cursor` back until it is absent. */
async function* cursorPages(ctx: ReadContext, path: string, query: Record<string, string | number | undefined>): AsyncGenerator<{ data: unknown }> {
  let cursor: string | undefined;
  for (;;) {
    const body = await ctx.client.get<{ data?: unknown; meta?: { cursor?: string | null } }>(path, { ...query, cursor }, ctx.signal);
    yield { data: body?.data };
    const next = body?.meta?.cursor;
    if (!next || !Array.isArray(body?.data) || body.data.length === 0) return;
    cursor = next;
  }
}

/** Page-based pagination (legacy): page from 1 until totalPages, or a short page. */
async function* numberedPages(ctx: ReadContext, path: string, query: Record<string, string | number | undefined>, limit: number): AsyncGenerator<{ data: unknown }> {
  for (let page = 1; ; page++) {
    const body = await ctx.client.get<{ data?: unknown; meta?: { totalPages?: number | null } }>(path, { ...query, limit, page }, ctx.signal);
    yield { data: body?.data };
    const total = body?.meta?.totalPages;
    const n = Array.isArray(body?.data) ? body.data.length : 0;
    if (n < limit || (typeof total === 'number' && page >= total)) return;
  }
}

export async function* observationPages(ctx: ReadContext, w: Window): AsyncGenerator<Page<ObservationRecord>> {
  const type = ctx.allObservationTypes ? undefined : 'GENERATION';
  const pages =
    ctx.shape.generation === 'v4'
      ? cursorPages(ctx, PATHS.observationsV2, {
          fromStartTime: iso(w.fromMs),
          toStartTime: iso(w.toMs),
          limit: 1000,
          type,
          fields: `core,basic,model,usage,trace_context${ctx.includeIo ? ',io' : ''}`,
        })
      : numberedPages(ctx, PATHS.observationsV1, { fromStartTime: iso(w.fromMs), toStartTime: iso(w.toMs), type }, 100);
  const skip = skipper(ctx, 'observation');
  const within = inWindow<ObservationRecord>(w, (r) => r.startTime);
  for await (const p of pages) {
    const rows = mapItems(p.data, (r) => toObservation(r, ctx.includeIo), skip);
    // Legacy servers may ignore filters they do not know; keep only the window.
    yield { rows: rows.filter((r) => within(r) && (type === undefined || r.type === type)), oldestMs: oldest(rows, (r) => r.startTime) };
  }
}

export async function* tracePages(ctx: ReadContext, w: Window): AsyncGenerator<Page<TraceRecord>> {
  const skip = skipper(ctx, 'trace');
  for await (const p of numberedPages(ctx, PATHS.traces, { fromTimestamp: iso(w.fromMs), toTimestamp: iso(w.toMs) }, 100)) {
    const rows = mapItems(p.data, toTrace, skip);
    yield { rows: rows.filter(inWindow<TraceRecord>(w, (r) => r.timestamp)), oldestMs: oldest(rows, (r) => r.timestamp) };
  }
}

export async function* scorePages(ctx: ReadContext, w: Window): AsyncGenerator<Page<ScoreRecord>> {
  const q = { fromTimestamp: iso(w.fromMs), toTimestamp: iso(w.toMs) };
  const pages =
    ctx.shape.scoresPath === PATHS.scoresV3
      ? cursorPages(ctx, PATHS.scoresV3, { ...q, limit: 100, fields: 'details,subject' })
      : numberedPages(ctx, ctx.shape.scoresPath, q, 100);
  const skip = skipper(ctx, 'score');
  const within = inWindow<ScoreRecord>(w, (r) => r.timestamp);
  for await (const p of pages) {
    const rows = mapItems(p.data, toScore, skip);
    yield { rows: rows.filter(within), oldestMs: oldest(rows, (r) => r.timestamp) };
  }
}

/**
 * One legacy trace's observations, from its own endpoint (`GET /api/public/traces/{id}`, whose
 * `observations` are full objects). Null when the trace is gone (404).
 */
export async function traceObservations(ctx: ReadContext, traceId: string): Promise<ObservationRecord[] | null> {
  let body: { observations?: unknown };
  try {
    body = await ctx.client.get<{ observations?: unknown }>(`${PATHS.traces}/${encodeURIComponent(traceId)}`, {}, ctx.signal);
  } catch (err) {
    if (err instanceof LangfuseError && err.kind === 'absent') return null;
    throw err;
  }
  if (!Array.isArray(body?.observations)) return [];
  return mapItems(body.observations, (r) => toObservation(r, false), skipper(ctx, 'observation'));
}

/**
 * Prompt versions of prompts changed in the window (`fromUpdatedAt` is the API's only real
 * "changed since" filter). Each changed prompt's versions are fetched one by one.
 */
export async function promptVersions(ctx: ReadContext, w: Window): Promise<{ versions: PromptVersionRecord[]; newestMs: number | null }> {
  const versions: PromptVersionRecord[] = [];
  let newestMs: number | null = null;
  const skip = skipper(ctx, 'prompt');
  for await (const p of numberedPages(ctx, PATHS.prompts, { fromUpdatedAt: iso(w.fromMs), toUpdatedAt: iso(w.toMs) }, 100)) {
    const metas = Array.isArray(p.data) ? (p.data as Array<Record<string, unknown>>) : [];
    for (const meta of metas) {
      const name = typeof meta.name === 'string' ? meta.name : null;
      const list = Array.isArray(meta.versions) ? meta.versions.filter((v): v is number => typeof v === 'number') : [];
      if (!name) continue;
      const t = typeof meta.lastUpdatedAt === 'string' ? Date.parse(meta.lastUpdatedAt) : NaN;
      if (!Number.isNaN(t) && (newestMs === null || t > newestMs)) newestMs = t;
      for (const version of list) {
        const raw = await ctx.client.get<Record<string, unknown>>(`${PATHS.prompts}/${encodeURIComponent(name)}`, { version }, ctx.signal);
        versions.push(...mapItems([raw], toPromptVersion, skip));
      }
    }
  }
  return { versions, newestMs };
}
