/**
 * The console: everything the ops server serves besides /healthz and /metrics — pages and the JSON API.
 *
 * Access: with BRIDGE_HTTP_TOKEN, a bearer header or the login's cookie (HttpOnly, SameSite=Strict);
 * without it, only on a loopback address (and only for requests that name a loopback host, so a web
 * page elsewhere cannot reach it through a DNS name pointed at 127.0.0.1). A POST whose Origin is not
 * the console's own is refused whatever authenticates it.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import { ApiError, handleApi, sendJson, type ConsoleDeps } from '../api.js';
import { CONSOLE_CSS, CONSOLE_JS } from './assets.js';
import { renderDeliveries, renderEvent, renderLogin, renderOverview } from './pages.js';

export type { ConsoleDeps } from '../api.js';

export interface ConsoleOptions {
  /** The address the ops server listens on. */
  host: string;
  token: string | null;
}

export type ConsoleHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const COOKIE = 'lfb_console';

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::ffff:127.0.0.1';
}

/** The Host header's name without its port. */
function hostName(hostHeader: string | undefined): string {
  const h = hostHeader ?? '';
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const i = h.lastIndexOf(':');
  return i >= 0 ? h.slice(0, i) : h;
}

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  // same-origin, not no-referrer: with no-referrer a form's POST says `Origin: null` and would be refused.
  'referrer-policy': 'same-origin',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookies(req: http.IncomingMessage): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of String(req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return out;
}

async function readForm(req: http.IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > 16 * 1024) throw new ApiError(413, 'form over 16 KB');
    chunks.push(c);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

export function createConsole(given: ConsoleDeps, opts: ConsoleOptions): ConsoleHandler {
  // The status report counts the whole outbox: several open pages refreshing share one per 2 s.
  let cached: { at: number; report: ReturnType<ConsoleDeps['status']> } | null = null;
  const deps: ConsoleDeps = {
    ...given,
    status: () => {
      if (!cached || Date.now() - cached.at > 2_000) {
        const report = given.status();
        report.catch(() => (cached = null));
        cached = { at: Date.now(), report };
      }
      return cached.report;
    },
    wake: () => {
      cached = null;
      given.wake();
    },
  };
  const token = opts.token;
  const loopback = isLoopback(opts.host);
  if (!token && !loopback) {
    given.logger.warn({ host: opts.host }, 'the console is off on this address (it answers 403): set BRIDGE_HTTP_TOKEN to open it; /healthz and /metrics answer as usual');
  }
  // The cookie holds a value derived from the token, not the token itself.
  const session = token ? createHmac('sha256', token).update('langfuse-bridge console session').digest('base64url') : null;

  const authenticated = (req: http.IncomingMessage): boolean => {
    if (!token || !session) return false;
    const auth = String(req.headers.authorization ?? '');
    if (auth.startsWith('Bearer ') && equal(auth.slice(7).trim(), token)) return true;
    const c = cookies(req).get(COOKIE);
    return c !== undefined && equal(c, session);
  };

  const html = (res: http.ServerResponse, status: number, body: string, extra: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...SECURITY_HEADERS, ...extra });
    res.end(body);
  };

  const wantsJson = (path: string): boolean => path.startsWith('/api/');

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://console.invalid');
    const path = url.pathname;
    const method = req.method ?? 'GET';

    // Static assets carry nothing secret (and the login page needs them).
    if (path === '/console.css' || path === '/console.js') {
      const css = path.endsWith('.css');
      res.writeHead(200, { 'content-type': css ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8', ...SECURITY_HEADERS, 'cache-control': 'no-cache' });
      res.end(css ? CONSOLE_CSS : CONSOLE_JS);
      return;
    }
    if (path === '/favicon.ico') {
      res.writeHead(204, SECURITY_HEADERS).end();
      return;
    }

    if (!token) {
      if (!loopback) {
        res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
        res.end(`the console is off: this server listens on ${opts.host}, not loopback; set BRIDGE_HTTP_TOKEN to open it there\n`);
        return;
      }
      if (!isLoopback(hostName(req.headers.host))) {
        res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
        res.end('the console answers only to a loopback host name (127.0.0.1, localhost, [::1]) unless BRIDGE_HTTP_TOKEN is set\n');
        return;
      }
    }

    if (method !== 'GET' && method !== 'HEAD') {
      const origin = req.headers.origin;
      if (origin !== undefined) {
        let same = false;
        try {
          same = new URL(origin).host === req.headers.host;
        } catch {
          same = false;
        }
        if (!same) {
          if (wantsJson(path)) sendJson(res, 403, { error: `cross-origin request refused (Origin ${origin})` });
          else {
            res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
            res.end('cross-origin request refused\n');
          }
          return;
        }
      }
    }

    if (token) {
      if (path === '/login') {
        if (method === 'POST') {
          const form = await readForm(req);
          if (equal(form.get('token') ?? '', token)) {
            res.writeHead(303, {
              ...SECURITY_HEADERS,
              location: '/',
              'set-cookie': `${COOKIE}=${session}; HttpOnly; SameSite=Strict; Path=/`,
            });
            res.end();
            deps.logger.info({ from: req.socket.remoteAddress ?? 'unknown' }, 'console: signed in');
          } else {
            deps.logger.warn({ from: req.socket.remoteAddress ?? 'unknown' }, 'console: sign-in with a wrong token');
            html(res, 401, renderLogin('That is not the token set in BRIDGE_HTTP_TOKEN.'));
          }
          return;
        }
        html(res, 200, renderLogin(null));
        return;
      }
      if (path === '/logout' && method === 'POST') {
        res.writeHead(303, { ...SECURITY_HEADERS, location: '/login', 'set-cookie': `${COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0` });
        res.end();
        return;
      }
      if (!authenticated(req)) {
        if (wantsJson(path)) {
          res.setHeader('www-authenticate', 'Bearer');
          sendJson(res, 401, { error: 'send Authorization: Bearer <BRIDGE_HTTP_TOKEN>' });
        } else html(res, 401, renderLogin(null));
        return;
      }
    } else if (path === '/login' || path === '/logout') {
      res.writeHead(303, { ...SECURITY_HEADERS, location: '/' }).end();
      return;
    }

    if (await handleApi(deps, req, res, url)) return;
    if (method !== 'GET' && method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS }).end('pages are read with GET; changes go through POST /api/v1/replay\n');
      return;
    }
    const signOut = token !== null;
    if (path === '/') {
      html(res, 200, renderOverview(deps, await deps.status(), signOut));
    } else if (path === '/deliveries') {
      try {
        html(res, 200, renderDeliveries(deps, url.searchParams, signOut));
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        html(res, err.status, renderDeliveries(deps, new URLSearchParams(), signOut, err.message));
      }
    } else if (path.startsWith('/events/')) {
      const id = decodeURIComponent(path.slice('/events/'.length));
      const page = renderEvent(deps, id, signOut);
      html(res, page.found ? 200 : 404, page.html);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
      res.end('not found: the console is at /, the API under /api/v1/, probes at /healthz and /metrics\n');
    }
  };

  return (req, res) => {
    handle(req, res).catch((err: Error) => {
      deps.logger.error({ path: req.url, err: err.message }, 'console request failed');
      if (!res.headersSent) {
        if (err instanceof ApiError) res.writeHead(err.status, { 'content-type': 'text/plain; charset=utf-8' }).end(`${err.message}\n`);
        else res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('console error; see the bridge log\n');
      } else res.end();
    });
  };
}
