/**
 * The console's JSON API under /api/v1/: status, the delivery log, one event with its attempts,
 * replay and resend, monitors. Access is checked by the caller (src/ops/console/index.ts).
 */
import type http from 'node:http';
import type { Logger } from 'pino';
import { statusJson, type StatusReport } from '../commands/status.js';
import { DELIVERY_STATUSES, type DeliveryStatus } from '../delivery/states.js';
import type { Store } from '../store/index.js';
import type { DeliveryFilter, ReplayRequest } from '../store/console.js';
import { oneLine } from '../errors.js';

export interface ConsoleDeps {
  store: Store;
  logger: Logger;
  /** What `status --json` prints. */
  status(): Promise<StatusReport>;
  /** Names of the configured sinks. */
  sinkNames(): string[];
  /** Replayed rows are due now: tell the dispatcher. */
  wake(): void;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(value));
}

/** The filter of /api/v1/deliveries and /deliveries from a query string; bad values are a 400. */
export function deliveryFilter(q: URLSearchParams): DeliveryFilter {
  const text = (k: string): string | null => {
    const v = q.get(k);
    return v === null || v.trim() === '' ? null : v.trim();
  };
  const status = text('status');
  if (status !== null && !DELIVERY_STATUSES.includes(status as DeliveryStatus)) {
    throw new ApiError(400, `status must be one of ${DELIVERY_STATUSES.join(', ')}, got ${JSON.stringify(status)}`);
  }
  const limitRaw = text('limit');
  const limit = limitRaw === null ? 50 : Number(limitRaw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new ApiError(400, `limit must be a whole number from 1 to 500, got ${JSON.stringify(limitRaw)}`);
  const cursor = text('cursor');
  if (cursor !== null && !/^\d+$/.test(cursor)) throw new ApiError(400, 'cursor must be the nextCursor of an earlier answer');
  return { sink: text('sink'), status: status as DeliveryStatus | null, event: text('event'), traceId: text('traceId'), limit, cursor };
}

const MAX_BODY = 256 * 1024;

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const type = String(req.headers['content-type'] ?? '');
  if (!type.startsWith('application/json')) throw new ApiError(415, 'send JSON (content-type: application/json)');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new ApiError(413, 'request body over 256 KB');
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new ApiError(400, 'the body is not valid JSON');
  }
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string' && x.length > 0);

/** Checks a replay request's shape; one message naming what is wrong. */
export function parseReplay(body: unknown, sinks: string[]): ReplayRequest {
  const usage = 'send {"deliveries": [{"eventId": "...", "sink": "..."}]}, {"eventIds": ["..."]} or {"sink": "...", "since": "<ISO time>"}';
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, usage);
  const b = body as Record<string, unknown>;
  const r: ReplayRequest = {};
  if (b.deliveries !== undefined) {
    if (!Array.isArray(b.deliveries) || !b.deliveries.every((d) => typeof d === 'object' && d !== null && typeof (d as Record<string, unknown>).eventId === 'string' && typeof (d as Record<string, unknown>).sink === 'string')) {
      throw new ApiError(400, `deliveries must be a list of {"eventId", "sink"}; ${usage}`);
    }
    r.deliveries = (b.deliveries as Array<{ eventId: string; sink: string }>).map((d) => ({ eventId: d.eventId, sink: d.sink }));
  }
  if (b.eventIds !== undefined) {
    if (!isStringArray(b.eventIds)) throw new ApiError(400, `eventIds must be a list of event ids; ${usage}`);
    r.eventIds = b.eventIds;
  }
  if (b.sink !== undefined) {
    if (typeof b.sink !== 'string' || !sinks.includes(b.sink)) throw new ApiError(400, `sink must name a configured sink (${sinks.join(', ')}), got ${JSON.stringify(b.sink)}`);
    r.sink = b.sink;
    r.sinceMs = null;
    if (b.since !== undefined && b.since !== null) {
      const ms = typeof b.since === 'string' ? Date.parse(b.since) : NaN;
      if (!Number.isFinite(ms)) throw new ApiError(400, `since must be an ISO time such as 2026-01-31T00:00:00Z, got ${JSON.stringify(b.since)}`);
      r.sinceMs = ms;
    }
  } else if (b.since !== undefined) {
    throw new ApiError(400, `since goes with sink; ${usage}`);
  }
  if (b.resend !== undefined) {
    if (typeof b.resend !== 'boolean') throw new ApiError(400, 'resend must be true or false');
    if (b.resend && !r.deliveries) throw new ApiError(400, 'resend goes with deliveries: name the delivered ones to send again');
    r.resend = b.resend;
  }
  if (!r.deliveries && !r.eventIds && r.sink === undefined) throw new ApiError(400, usage);
  const count = (r.deliveries?.length ?? 0) + (r.eventIds?.length ?? 0);
  if (count > 10_000) throw new ApiError(400, 'at most 10000 deliveries or events per replay');
  return r;
}

/** Handles /api/v1/…; false when the path is not the API's. */
export async function handleApi(deps: ConsoleDeps, req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<boolean> {
  const path = url.pathname;
  if (!path.startsWith('/api/v1/')) return false;
  const method = req.method ?? 'GET';
  const get = method === 'GET' || method === 'HEAD';
  try {
    if (path === '/api/v1/status' && get) {
      sendJson(res, 200, statusJson(await deps.status()));
    } else if (path === '/api/v1/monitors' && get) {
      sendJson(res, 200, { monitors: (await deps.status()).monitors ?? [] });
    } else if (path === '/api/v1/deliveries' && get) {
      sendJson(res, 200, deps.store.listDeliveries(deliveryFilter(url.searchParams)));
    } else if (path.startsWith('/api/v1/events/') && get) {
      const id = decodeURIComponent(path.slice('/api/v1/events/'.length));
      const ev = deps.store.eventDetail(id);
      if (!ev) throw new ApiError(404, `no event ${id} in this database (pruned after BRIDGE_RETENTION_DAYS, or never written)`);
      sendJson(res, 200, ev);
    } else if (path === '/api/v1/replay') {
      if (method !== 'POST') throw new ApiError(405, 'replay is a POST');
      const r = parseReplay(await readJson(req), deps.sinkNames());
      const replayed = deps.store.replayDeliveries(r);
      deps.logger.info(
        {
          replayed,
          ...(r.deliveries ? { deliveries: r.deliveries.slice(0, 50), deliveryCount: r.deliveries.length } : {}),
          ...(r.eventIds ? { eventIds: r.eventIds.slice(0, 50), eventCount: r.eventIds.length } : {}),
          ...(r.sink !== undefined ? { sink: r.sink, since: r.sinceMs ? new Date(r.sinceMs).toISOString() : null } : {}),
          ...(r.resend ? { resend: true } : {}),
          from: req.socket.remoteAddress ?? 'unknown',
        },
        r.resend ? 'console: deliveries sent again' : 'console: dead letters replayed',
      );
      if (replayed) deps.wake();
      sendJson(res, 200, { replayed });
    } else {
      throw new ApiError(get ? 404 : 405, get ? `no such API path: ${path} (see /api/v1/status, /api/v1/deliveries, /api/v1/events/<id>, /api/v1/replay, /api/v1/monitors)` : `${method} is not allowed on ${path}`);
    }
  } catch (err) {
    if (err instanceof ApiError) sendJson(res, err.status, { error: err.message });
    else {
      deps.logger.error({ path, err: oneLine(err) }, 'console API request failed');
      sendJson(res, 500, { error: (err as Error).message });
    }
  }
  return true;
}
