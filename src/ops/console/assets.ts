/** The console's stylesheet and its one script, served by the bridge itself (no CDN, no web fonts). */

export const CONSOLE_CSS = `
:root { --bg: #f7f7f5; --fg: #1d2125; --muted: #6b7178; --line: #dfe1e4; --card: #fff; --accent: #2458d3;
  --ok: #1b7f3b; --warn: #a15c00; --bad: #c0262d; --info: #3b5bdb; color-scheme: light dark; }
@media (prefers-color-scheme: dark) { :root { --bg: #15171a; --fg: #e4e6e8; --muted: #9aa1a9; --line: #2d3136; --card: #1d2024;
  --accent: #7ea2ff; --ok: #4cc374; --warn: #e8a33d; --bad: #ff6b70; --info: #8ea6ff; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display: flex; align-items: center; gap: 1rem; flex-wrap: wrap; padding: .6rem 1rem; background: var(--card); border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 1; }
header .brand { font-weight: 700; }
header nav { display: flex; gap: .25rem; flex-wrap: wrap; }
header nav a { padding: .25rem .6rem; border-radius: 6px; color: var(--fg); text-decoration: none; }
header nav a[aria-current] { background: var(--bg); font-weight: 600; }
header .spacer { flex: 1; }
header form { margin: 0; }
.live { color: var(--muted); font-size: 12px; }
main { padding: 1rem; max-width: 1200px; margin: 0 auto; }
footer { padding: 1rem; color: var(--muted); font-size: 12px; text-align: center; }
h1 { font-size: 1.35rem; margin: .2rem 0 1rem; word-break: break-all; }
h2 { font-size: 1rem; margin: 1.4rem 0 .5rem; display: flex; align-items: center; gap: .5rem; flex-wrap: wrap; }
a { color: var(--accent); }
section { margin-bottom: 1rem; }
.table-wrap { overflow-x: auto; background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; white-space: nowrap; }
tr:last-child td { border-bottom: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.mono, code, pre, time { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.muted { color: var(--muted); font-size: 12px; }
.nowrap, time { white-space: nowrap; }
.extras { display: flex; flex-wrap: wrap; gap: .1rem .6rem; font-size: 12px; margin-top: .2rem; }
.extras .extra { word-break: break-word; }
.chart figcaption .muted { font-weight: 400; }
.err { color: var(--bad); word-break: break-word; }
table.deliveries td.err { min-width: 14rem; }
.empty { color: var(--muted); text-align: center; padding: 1rem; }
.code { font-family: ui-monospace, monospace; font-weight: 600; }
a.dead { color: var(--bad); font-weight: 700; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: 12px; font-weight: 600; border: 1px solid currentColor; white-space: nowrap; }
.s-delivered, .s-ok { color: var(--ok); }
.s-dead, .s-failing, .s-open { color: var(--bad); }
.s-retrying, .s-paused { color: var(--warn); }
.s-queued, .s-delivering { color: var(--info); }
.s-none { color: var(--muted); }
.btn { font: inherit; font-size: 13px; padding: .25rem .7rem; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; white-space: nowrap; }
.btn.secondary { background: transparent; color: var(--accent); }
.btn:disabled { opacity: .6; cursor: wait; }
button.link { background: none; border: 0; color: var(--accent); cursor: pointer; font: inherit; padding: 0; }
.toolbar { display: flex; gap: .75rem; align-items: center; margin: .4rem 0; flex-wrap: wrap; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: .75rem; }
.chart { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .5rem .7rem; }
.chart figcaption { display: flex; flex-direction: column; font-weight: 600; }
.chart svg { width: 100%; height: 90px; display: block; margin-top: .3rem; }
.chart .axis { stroke: var(--line); }
.c-events rect { fill: var(--info); } .c-delivered rect { fill: var(--ok); } .c-failed rect { fill: var(--bad); }
.axis-labels { display: flex; justify-content: space-between; color: var(--muted); font-size: 11px; }
.filters { display: flex; gap: .6rem; flex-wrap: wrap; align-items: end; margin-bottom: .75rem; }
.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: .15rem; }
input, select { font: inherit; padding: .25rem .4rem; border: 1px solid var(--line); border-radius: 6px; background: var(--card); color: var(--fg); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .6rem .8rem; margin: 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; word-break: break-all; }
pre { margin: 0; white-space: pre-wrap; word-break: break-word; }
pre.body { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .7rem; max-height: 70vh; overflow: auto; }
pre.answer { max-width: 32rem; max-height: 8rem; overflow: auto; }
.when { font-weight: 400; color: var(--muted); font-size: 12px; }
#flash:not(:empty) { position: fixed; right: 1rem; bottom: 1rem; background: var(--fg); color: var(--bg); padding: .6rem 1rem; border-radius: 8px; z-index: 2; max-width: 90vw; }
#flash.error { background: var(--bad); color: #fff; }
.pager { margin-top: .6rem; }
body.login main { max-width: 420px; margin-top: 10vh; }
body.login form { display: flex; gap: .5rem; align-items: end; flex-wrap: wrap; }
body.login label { display: flex; flex-direction: column; gap: .2rem; flex: 1; }
@media (max-width: 640px) {
  body { font-size: 13px; }
  header { gap: .5rem; padding: .5rem .6rem; }
  header .brand { display: none; }
  main { padding: .6rem; }
  h2 { margin-top: 1rem; }
  th, td { padding: .35rem .4rem; }
  table.deliveries td:nth-child(6), table.deliveries th:nth-child(6) { display: none; }
  /* The sinks fit a phone without Delivering and the Replay-all button (dead letters below have Replay). */
  table.sinks td:nth-child(4), table.sinks th:nth-child(4), table.sinks td:nth-child(8), table.sinks th:nth-child(8) { display: none; }
}
`;

/**
 * Refreshes the page's <main> every 5 s while visible (not while a row is selected or a field is
 * being edited), and sends the Replay / Resend buttons' requests, showing their result in place.
 */
export const CONSOLE_JS = `'use strict';
(function () {
  var REFRESH_MS = 5000;
  var timer = null;
  var fast = 0;
  function flash(text, isError) {
    var el = document.getElementById('flash');
    if (!el) return;
    el.textContent = text;
    el.className = isError ? 'error' : '';
    clearTimeout(flash.t);
    flash.t = setTimeout(function () { el.textContent = ''; }, 6000);
  }
  function busy() {
    if (document.querySelector('input.sel:checked')) return true;
    var a = document.activeElement;
    return !!(a && (a.tagName === 'INPUT' || a.tagName === 'SELECT') && a.type !== 'checkbox');
  }
  function live() {
    var box = document.getElementById('autorefresh');
    return !box || box.checked;
  }
  function refresh(force) {
    if (!force && (document.hidden || busy() || !live())) return Promise.resolve();
    return fetch(location.href, { headers: { accept: 'text/html' }, credentials: 'same-origin' }).then(function (r) {
      if (r.status === 401) { location.reload(); return; }
      return r.text().then(function (text) {
        var doc = new DOMParser().parseFromString(text, 'text/html');
        var next = doc.getElementById('main');
        var main = document.getElementById('main');
        if (next && main) main.replaceWith(document.importNode(next, true));
      });
    }).catch(function () { /* the bridge is restarting: try again next time */ });
  }
  function schedule() {
    clearTimeout(timer);
    var ms = fast > 0 ? 1000 : REFRESH_MS;
    if (fast > 0) fast--;
    timer = setTimeout(function () { refresh(false).then(schedule); }, ms);
  }
  function post(body, button) {
    if (button) button.disabled = true;
    return fetch('/api/v1/replay', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) throw new Error(j && j.error ? j.error : 'HTTP ' + r.status);
        var n = j.replayed;
        flash((body.resend ? 'Sent again: ' : 'Replayed: ') + n + (n === 1 ? ' delivery' : ' deliveries') + (n ? ', back in the queue' : ' (nothing was dead any more)'));
        fast = 10;
        return refresh(true).then(schedule);
      });
    }).catch(function (e) {
      flash('Replay failed: ' + e.message, true);
      if (button) button.disabled = false;
    });
  }
  document.addEventListener('click', function (ev) {
    var t = ev.target;
    if (!(t instanceof Element)) return;
    if (t.matches('input.sel-all')) {
      var all = document.querySelectorAll('input.sel');
      for (var i = 0; i < all.length; i++) all[i].checked = t.checked;
      return;
    }
    var b = t.closest('button[data-action]');
    if (!b) return;
    var action = b.getAttribute('data-action');
    if (action === 'replay' || action === 'resend') {
      var d = { deliveries: [{ eventId: b.getAttribute('data-event'), sink: b.getAttribute('data-sink') }] };
      if (action === 'resend') {
        if (!confirm('Send this delivered event to ' + b.getAttribute('data-sink') + ' again (same event id)?')) return;
        d.resend = true;
      }
      post(d, b);
    } else if (action === 'replay-selected') {
      var picked = document.querySelectorAll('input.sel:checked');
      if (!picked.length) { flash('Select dead letters first (the boxes on the left).', true); return; }
      var list = [];
      for (var k = 0; k < picked.length; k++) list.push({ eventId: picked[k].getAttribute('data-event'), sink: picked[k].getAttribute('data-sink') });
      post({ deliveries: list }, b);
    } else if (action === 'replay-sink') {
      var sink = b.getAttribute('data-sink');
      if (!confirm('Replay all ' + b.getAttribute('data-count') + ' dead letters of ' + sink + '?')) return;
      post({ sink: sink }, b);
    }
  });
  document.addEventListener('visibilitychange', function () { if (!document.hidden) refresh(false); });
  schedule();
})();
`;
