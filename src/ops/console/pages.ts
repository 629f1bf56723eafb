/**
 * The console's pages, rendered on the server: every string from Langfuse or a receiver goes through
 * esc(), so it shows as text. The only script is /console.js (refresh, replay buttons).
 */
import type { StatusReport } from '../../commands/status.js';
import { deliveryFilter, type ConsoleDeps } from '../api.js';
import { DELIVERY_STATUSES } from '../../delivery/states.js';
import type { DeliveryItem } from '../../store/console.js';
import { isSuperseded } from '../../store/monitors.js';
import { VERSION } from '../../version.js';
import { agoIso, until } from '../ago.js';

/** Text for HTML content and quoted attribute values. */
export function esc(v: unknown): string {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** `ago` of an ISO time, '–' where there is none. */
export const ago = (iso: string | null, now = Date.now()): string => agoIso(iso, now, '–');

const time = (iso: string | null): string => (iso ? `<time datetime="${esc(iso)}" title="${esc(iso)}">${esc(iso.slice(0, 19).replace('T', ' '))}</time>` : '–');

function layout(title: string, active: string, body: string, signOut: boolean): string {
  const nav = [
    ['/', 'Overview'],
    ['/deliveries', 'Deliveries'],
    ['/deliveries?status=dead', 'Dead letters'],
  ]
    .map(([href, label]) => `<a href="${href}"${label === active ? ' aria-current="page"' : ''}>${label}</a>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · langfuse-bridge</title><link rel="stylesheet" href="/console.css"><script src="/console.js" defer></script></head>
<body><header><span class="brand">langfuse-bridge</span><nav>${nav}</nav><span class="spacer"></span>
<label class="live"><input type="checkbox" id="autorefresh" checked> live</label>${signOut ? '<form method="post" action="/logout"><button class="link">sign out</button></form>' : ''}</header>
<div id="flash" role="status" aria-live="polite"></div>
<main id="main">${body}</main>
<footer>langfuse-bridge ${esc(VERSION)} · <a href="/api/v1/status">/api/v1/status</a> · <a href="/metrics">/metrics</a></footer>
</body></html>`;
}

function badge(status: string, tone = status): string {
  return `<span class="badge s-${esc(tone)}">${esc(status)}</span>`;
}

/** The last answer in one line: the status code unless the error already names it. */
function answer(code: number | null, error: string | null): string {
  const shown = code !== null && !(error ?? '').includes(`HTTP ${code}`) ? `<span class="code">HTTP ${code}</span> ` : '';
  return `${shown}${esc(error ?? '')}`;
}

function chart(title: string, values: number[], minutes: number[], cls: string, unit: string): string {
  const max = Math.max(1, ...values);
  const w = 600;
  const h = 100;
  const bw = w / values.length;
  const bars = values
    .map((v, i) => {
      const bh = v === 0 ? 0 : Math.max(1.5, (v / max) * (h - 4));
      const label = `${new Date(minutes[i]!).toISOString().slice(11, 16)} UTC: ${v} ${unit}`;
      return `<rect x="${(i * bw + 0.5).toFixed(1)}" y="${(h - bh).toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${bh.toFixed(1)}"><title>${esc(label)}</title></rect>`;
    })
    .join('');
  const total = values.reduce((a, b) => a + b, 0);
  return `<figure class="chart ${cls}"><figcaption><span>${esc(title)}</span><span class="muted">${total} in the hour · peak ${Math.max(0, ...values)}/min</span></figcaption>
<svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" role="img" aria-label="${esc(title)}"><line x1="0" y1="${h - 0.5}" x2="${w}" y2="${h - 0.5}" class="axis"/>${bars}</svg>
<div class="axis-labels"><span>60 min ago</span><span>now</span></div></figure>`;
}

function replayButton(d: { eventId: string; sink: string }, resend = false): string {
  return `<button type="button" class="btn${resend ? ' secondary' : ''}" data-action="${resend ? 'resend' : 'replay'}" data-event="${esc(d.eventId)}" data-sink="${esc(d.sink)}">${resend ? 'Resend' : 'Replay'}</button>`;
}

/** Replay for a dead delivery, Resend for a delivered one; a superseded notification was never sent and is not sent now. */
function deliveryAction(d: { eventId: string; sink: string; status: string; lastError: string | null }): string {
  if (d.status === 'dead') return replayButton(d);
  if (d.status !== 'delivered') return '';
  return isSuperseded(d) ? '<span class="muted">superseded</span>' : replayButton(d, true);
}

function deliveryRows(items: DeliveryItem[], selectable: boolean): string {
  if (items.length === 0) return `<tr><td colspan="${selectable ? 9 : 8}" class="empty">Nothing here.</td></tr>`;
  return items
    .map((d) => {
      const select = selectable ? `<td>${d.status === 'dead' ? `<input type="checkbox" class="sel" data-event="${esc(d.eventId)}" data-sink="${esc(d.sink)}" aria-label="select">` : ''}</td>` : '';
      const action = deliveryAction(d);
      const when = d.status === 'queued' || d.status === 'retrying' ? `${time(d.lastAttemptAt)}${d.nextAttemptAt ? `<div class="muted">next ${time(d.nextAttemptAt)}</div>` : ''}` : time(d.lastAttemptAt);
      return `<tr data-status="${esc(d.status)}">${select}<td>${when}</td><td>${esc(d.sink)}</td><td>${badge(d.status)}</td>
<td><a href="/events/${encodeURIComponent(d.eventId)}">${esc(d.event)}</a><div class="muted mono">${esc(d.eventId)}</div></td>
<td class="mono">${d.traceId ? `<a href="/deliveries?traceId=${encodeURIComponent(d.traceId)}" title="${esc(d.traceId)}">${esc(d.traceId.length > 14 ? `${d.traceId.slice(0, 12)}…` : d.traceId)}</a>` : '–'}</td>
<td class="num">${d.attempts}</td><td class="err">${answer(d.lastStatusCode, d.lastError)}</td><td>${action}</td></tr>`;
    })
    .join('\n');
}

function deliveryTable(items: DeliveryItem[], selectable: boolean): string {
  return `<div class="table-wrap"><table class="deliveries"><thead><tr>${selectable ? '<th><input type="checkbox" class="sel-all" aria-label="select all"></th>' : ''}<th>Last attempt</th><th>Sink</th><th>Status</th><th>Event</th><th>Trace</th><th class="num">Attempts</th><th>Last answer</th><th></th></tr></thead>
<tbody>${deliveryRows(items, selectable)}</tbody></table></div>`;
}

/**
 * Fields of the status report this page does not lay out itself (added by later versions): shown as
 * `name value` so whatever `status --json` reports is seen here too.
 */
function extras(o: object, known: string[]): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(o)) {
    if (known.includes(k) || v === null || v === undefined) continue;
    const text = typeof v === 'object' ? JSON.stringify(v) : String(v);
    parts.push(`<span class="extra"><span class="muted">${esc(k)}</span> ${esc(text.length > 120 ? `${text.slice(0, 117)}...` : text)}</span>`);
  }
  return parts.length ? `<div class="extras">${parts.join(' ')}</div>` : '';
}

const KNOWN_REPORT = ['database', 'at', 'daemon', 'streams', 'sinks', 'backfills', 'oldestPendingAt', 'deadLast24h', 'recentDead', 'pollPace', 'monitors', 'attention', 'queues', 'queueLines'];
const KNOWN_STREAM = ['project', 'source', 'streams', 'cursor', 'behindSeconds', 'lastPollAt', 'lastPollAgeSeconds', 'lastOkAt', 'lastOutcome', 'lastError', 'sweepBehindSeconds', 'lastSweepDoneAt'];
const KNOWN_SINK = ['name', 'state', 'pausedUntil', 'queued', 'delivering', 'retrying', 'delivered', 'dead', 'lastSuccessAt', 'lastErrorAt', 'lastError', 'nextRetryAt', 'deadByReason'];


/** Each monitor: severity, last value against its threshold, last evaluation. */
function monitorSection(rows: StatusReport['monitors']): string {
  if (!rows.length) return '<p class="empty">No monitors configured.</p>';
  const tone = { ok: 'delivered', warning: 'retrying', alert: 'dead' } as const;
  const body = rows
    .map(
      (m) => `<tr data-monitor="${esc(m.monitor)}"><td>${esc(m.monitor)}${m.projectId ? `<div class="muted">${esc(m.projectId)}</div>` : ''}</td><td>${badge(m.severity, tone[m.severity])}</td>
<td class="num">${esc(m.valueText)}</td><td>${esc(m.thresholdText)}</td><td>${esc(m.window)}</td><td>${time(m.lastEvaluation)}${m.configured ? '' : ' <span class="muted">not in the config</span>'}</td></tr>`,
    )
    .join('');
  return `<div class="scroll"><table><thead><tr><th>Monitor</th><th>Severity</th><th>Value</th><th>Threshold</th><th>Window</th><th>Last evaluation</th></tr></thead><tbody>${body}</tbody></table></div>`;
}

/** The daemon, what needs a human, the poll pace and backfills: the head of `status`. */
function daemonAndAttention(report: Partial<StatusReport>, now: number): string {
  const d = report.daemon;
  if (!d) return '<p class="muted">No daemon record.</p>';
  const who = `pid ${d.pid} on host ${d.host}`;
  const daemon =
    d.state === 'running'
      ? `${badge('running', 'ok')} <span class="muted">${esc(who)}, since ${esc(ago(d.startedAt, now))}; heartbeat ${esc(ago(d.heartbeatAt, now))}</span>`
      : d.state === 'stopped'
        ? `${badge('not running', 'failing')} <span class="muted">stopped ${esc(ago(d.stoppedAt, now))} (${esc(who)})</span>`
        : d.state === 'dead'
          ? `${badge('not running', 'failing')} <span class="muted">last heartbeat ${esc(ago(d.heartbeatAt, now))} (${esc(who)}); it did not stop cleanly</span>`
          : `${badge('not running', 'failing')} <span class="muted">no daemon has run on this database</span>`;
  const notes = report.attention ?? [];
  const attention = notes.length
    ? `<ul class="attention">${notes.map((a) => `<li class="err">${esc(a)}</li>`).join('')}</ul>`
    : '<p class="muted">Nothing needs attention.</p>';
  const paces = report.pollPace ?? [];
  const pace = paces
    .map((p) => {
      const every = p.measuredIntervalSeconds ?? p.effectiveIntervalSeconds;
      return `<p class="muted">Polls${paces.length > 1 ? ` of ${esc(p.project)}` : ''} every ${esc(every)} s (interval set: ${esc(p.intervalSeconds)} s)${p.limitedByCeiling ? `: the request ceiling of ${esc(p.ceiling)} calls a minute holds ${esc(p.callsPerPoll)} calls a poll every ${esc(p.effectiveIntervalSeconds)} s at most` : ''}.</p>`;
    })
    .join('');
  const backfills = report.backfills?.length
    ? `<p class="muted">Backfills in progress or interrupted: ${report.backfills.map((b) => `${esc(b.origin)} (${esc(b.open)} open)`).join(', ')}.</p>`
    : '';
  return `<p>${daemon}</p>${attention}${pace}${backfills}`;
}

/** A sink's last success, last error, next retry and pause, under its name. */
function sinkFacts(s: Partial<StatusReport['sinks'][number]>, now: number): string {
  if (!('lastSuccessAt' in s)) return '';
  const facts = [`last success ${s.lastSuccessAt ? ago(s.lastSuccessAt, now) : 'never'}`];
  if (s.lastErrorAt) facts.push(`last error ${ago(s.lastErrorAt, now)}: ${s.lastError ?? '?'}`);
  if (s.nextRetryAt) facts.push(`next retry ${until(s.nextRetryAt, now)}`);
  if (s.pausedUntil) facts.push(`paused until ${s.pausedUntil}`);
  return `<div class="muted facts">${esc(facts.join(' · '))}</div>`;
}

export function renderOverview(deps: ConsoleDeps, report: StatusReport, signOut: boolean, now = Date.now()): string {
  const delivered24 = deps.store.deliveredSince(now - 86_400_000);
  const hour = deps.store.lastHour(now);
  const dead = deps.store.listDeliveries({ status: 'dead', limit: 50 });

  const streamRows = report.streams.length
    ? report.streams
        .map((s) => {
          const sweep = s.sweepBehindSeconds > 0 ? `behind ${s.sweepBehindSeconds} s` : s.lastSweepDoneAt ? `up to date (${ago(s.lastSweepDoneAt, now)})` : '–';
          const outcome = s.lastOutcome ?? '–';
          return `<tr><td>${esc(s.project)}</td><td>${esc(s.streams.join(', '))}${extras(s, KNOWN_STREAM)}</td><td>${time(s.cursor)}${s.behindSeconds !== null && s.behindSeconds !== undefined ? ` <span class="muted">(${esc(s.behindSeconds)} s behind)</span>` : ''}</td>
<td>${outcome === '–' ? '–' : badge(outcome, outcome === 'ok' ? 'ok' : 'failing')} <span class="muted">${esc(ago(s.lastPollAt, now))}</span>${s.lastError ? `<div class="err">${esc(s.lastError)}</div>` : ''}</td><td>${esc(sweep)}</td></tr>`;
        })
        .join('\n')
    : '<tr><td colspan="5" class="empty">No poll yet.</td></tr>';

  const sinkRows = report.sinks
    .map((s) => {
      const state = (s as { state?: unknown }).state;
      return `<tr><td>${esc(s.name)}${sinkFacts(s, now)}${extras(s, KNOWN_SINK)}</td><td>${typeof state === 'string' ? badge(state) : '<span class="muted">–</span>'}</td>
<td class="num">${s.queued}</td><td class="num">${s.delivering}</td><td class="num">${s.retrying}</td>
<td class="num">${s.dead ? `<a class="dead" href="/deliveries?status=dead&amp;sink=${encodeURIComponent(s.name)}">${s.dead}</a>` : '0'}</td>
<td class="num">${delivered24.get(s.name) ?? 0}</td>
<td>${s.dead ? `<button type="button" class="btn" data-action="replay-sink" data-sink="${esc(s.name)}" data-count="${s.dead}">Replay all ${s.dead}</button>` : ''}</td></tr>`;
    })
    .join('\n');

  const deadSection = dead.items.length
    ? `<div class="toolbar"><button type="button" class="btn" data-action="replay-selected">Replay selected</button><span class="muted">${dead.items.length}${dead.nextCursor ? '+' : ''} dead, newest delivery first · <a href="/deliveries?status=dead">all dead letters</a></span></div>
${deliveryTable(dead.items, true)}`
    : '<p class="empty">No dead letters.</p>';

  const body = `<h1>Overview</h1>
<section><h2>Daemon</h2>${daemonAndAttention(report, now)}</section>
<section><h2>Streams</h2><div class="table-wrap"><table><thead><tr><th>Project</th><th>Streams</th><th>Cursor</th><th>Last poll</th><th>Late-data sweep</th></tr></thead><tbody>${streamRows}</tbody></table></div>
${extras(report, KNOWN_REPORT)}
${report.oldestPendingAt ? `<p class="muted">Oldest pending delivery since ${time(report.oldestPendingAt)} (${esc(ago(report.oldestPendingAt, now))}).</p>` : ''}</section>
<section><h2>Sinks</h2><div class="table-wrap"><table class="sinks"><thead><tr><th>Sink</th><th>State</th><th class="num">Queued</th><th class="num">Delivering</th><th class="num">Retrying</th><th class="num">Dead</th><th class="num">Delivered 24 h</th><th></th></tr></thead><tbody>${sinkRows}</tbody></table></div></section>
<section><h2>Monitors</h2>${monitorSection(report.monitors ?? [])}</section>
<section><h2>Last hour</h2><div class="charts">
${chart('Events per minute', hour.events, hour.minutes, 'c-events', 'events')}
${chart('Deliveries per minute', hour.delivered, hour.minutes, 'c-delivered', 'delivered')}
${chart('Failures per minute', hour.failed, hour.minutes, 'c-failed', 'failed attempts')}
</div></section>
<section><h2>Dead letters</h2>${deadSection}</section>`;
  return layout('Overview', 'Overview', body, signOut);
}

export function renderDeliveries(deps: ConsoleDeps, q: URLSearchParams, signOut: boolean, problem?: string): string {
  const f = deliveryFilter(q);
  const page = deps.store.listDeliveries(f);
  const sinks = deps.sinkNames();
  const option = (v: string, cur: string | null | undefined, label = v): string => `<option value="${esc(v)}"${v === (cur ?? '') ? ' selected' : ''}>${esc(label)}</option>`;
  const next = new URLSearchParams();
  for (const [k, v] of q) if (k !== 'cursor' && v) next.set(k, v);
  if (page.nextCursor) next.set('cursor', page.nextCursor);
  const active = f.status === 'dead' ? 'Dead letters' : 'Deliveries';
  const deadShown = page.items.some((d) => d.status === 'dead');
  const body = `<h1>${active === 'Dead letters' ? 'Dead letters' : 'Delivery log'}</h1>
${problem ? `<p class="err">${esc(problem)}</p>` : ''}
<form class="filters" method="get" action="/deliveries">
<label>Sink <select name="sink">${option('', f.sink, 'all')}${sinks.map((s) => option(s, f.sink)).join('')}</select></label>
<label>Status <select name="status">${option('', f.status, 'all')}${DELIVERY_STATUSES.map((s) => option(s, f.status)).join('')}</select></label>
<label>Event <input name="event" value="${esc(f.event ?? '')}" placeholder="trace.* or score.created"></label>
<label>Trace id <input name="traceId" value="${esc(f.traceId ?? '')}" placeholder="trace id"></label>
<button class="btn">Filter</button> <a href="/deliveries">clear</a></form>
${deadShown ? '<div class="toolbar"><button type="button" class="btn" data-action="replay-selected">Replay selected</button></div>' : ''}
${deliveryTable(page.items, deadShown)}
<p class="pager">${page.nextCursor ? `<a href="/deliveries?${esc(next.toString())}">Older →</a>` : '<span class="muted">No older deliveries.</span>'}</p>`;
  return layout(active, active, body, signOut);
}

function prettyBody(body: string): string {
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}

export function renderEvent(deps: ConsoleDeps, id: string, signOut: boolean): { found: boolean; html: string } {
  const ev = deps.store.eventDetail(id);
  if (!ev) {
    return { found: false, html: layout('Not found', '', `<h1>Event not found</h1><p>No event <code>${esc(id)}</code> in this database: pruned after BRIDGE_RETENTION_DAYS, or never written.</p>`, signOut) };
  }
  let data: Record<string, unknown> = {};
  try {
    data = ((JSON.parse(ev.body) as { data?: Record<string, unknown> }).data ?? {}) as Record<string, unknown>;
  } catch {
    /* shown raw below */
  }
  const facts: Array<[string, unknown]> = [
    ['event', ev.event],
    ['id', ev.id],
    ['timestamp', ev.timestamp],
    ['written', ev.createdAt],
    ['name', data.name],
    ['trace', data.traceId],
    ['observation', data.observationId],
    ['score', data.scoreId],
    ['level', data.level],
  ];
  const dl = facts
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `<dt>${esc(k)}</dt><dd class="${k === 'name' ? '' : 'mono'}">${k === 'trace' ? `<a href="/deliveries?traceId=${encodeURIComponent(String(v))}">${esc(v)}</a>` : esc(v)}</dd>`)
    .join('');
  const sinks = ev.sinks
    .map((s) => {
      const action = deliveryAction({ eventId: ev.id, sink: s.sink, status: s.status, lastError: s.lastError });
      const attempts = s.attempts.length
        ? s.attempts
            .map(
              (a, i) => `<tr><td class="num">${i + 1}</td><td>${time(a.at)}</td><td class="num nowrap">${a.durationMs} ms</td><td>${badge(a.outcome)}</td>
<td class="nowrap">${a.statusCode !== null ? `<span class="code">HTTP ${a.statusCode}</span>` : '–'}</td><td class="err">${esc(a.error ?? '')}</td><td>${a.response !== null ? `<pre class="answer">${esc(a.response)}</pre>` : '<span class="muted">–</span>'}</td></tr>`,
            )
            .join('\n')
        : '<tr><td colspan="7" class="empty">No attempt recorded yet.</td></tr>';
      const when = s.status === 'delivered' ? ` ${time(s.deliveredAt)}` : s.status === 'dead' ? ` ${time(s.deadAt)}` : s.nextAttemptAt ? ` next attempt ${time(s.nextAttemptAt)}` : '';
      return `<section class="sink" data-sink="${esc(s.sink)}"><h2>${esc(s.sink)} ${badge(s.status)}<span class="when">${when}</span> ${action}</h2>
${s.lastError && s.status !== 'delivered' ? `<p class="err">${esc(s.lastError)}</p>` : ''}
<div class="table-wrap"><table class="attempts"><thead><tr><th class="num">#</th><th>At</th><th class="num">Took</th><th>Outcome</th><th>Status</th><th>Error</th><th>Answer (first 256 bytes)</th></tr></thead><tbody>${attempts}</tbody></table></div></section>`;
    })
    .join('\n');
  const body = `<h1>${esc(ev.event)}</h1><dl class="facts">${dl}</dl>
${sinks || '<p class="empty">This event goes to no sink.</p>'}
<section><h2>Body <span class="muted">(as sent, formatted; <a href="/api/v1/events/${encodeURIComponent(ev.id)}">raw JSON</a>)</span></h2><pre class="body">${esc(prettyBody(ev.body))}</pre></section>`;
  return { found: true, html: layout(ev.event, '', body, signOut) };
}

export function renderLogin(problem: string | null): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · langfuse-bridge</title><link rel="stylesheet" href="/console.css"></head>
<body class="login"><main><h1>langfuse-bridge</h1><p>This console needs the token set in <code>BRIDGE_HTTP_TOKEN</code>.</p>
${problem ? `<p class="err">${esc(problem)}</p>` : ''}
<form method="post" action="/login"><label>Token <input type="password" name="token" autocomplete="current-password" autofocus required></label> <button class="btn">Sign in</button></form></main></body></html>`;
}
