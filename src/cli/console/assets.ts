/**
 * The page's script and style, served by the console itself (no CDN: it works offline).
 * The script only refreshes the live sections; every action is a plain form with a
 * confirmation page, so the console works without it.
 */
export const SCRIPT = `'use strict';
(function () {
  var every = 3000;
  function busy(live) {
    if (live.contains(document.activeElement) && document.activeElement !== document.body) return true;
    return live.querySelector('input:checked') !== null;
  }
  function refresh() {
    var live = document.getElementById('live');
    if (!live || document.hidden || busy(live)) return;
    fetch('/live', { credentials: 'same-origin', headers: { accept: 'text/html' } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (text) {
        var next = new DOMParser().parseFromString(text, 'text/html').getElementById('live');
        var current = document.getElementById('live');
        if (next && current && !busy(current)) current.replaceWith(document.importNode(next, true));
        document.body.classList.remove('stale');
      })
      .catch(function () { document.body.classList.add('stale'); });
  }
  setInterval(refresh, every);
})();
`;

export const STYLE = `
:root { color-scheme: light dark; --fg: #1d232a; --muted: #6b7480; --line: #d9dee4; --bg: #fff;
  --dead: #b3261e; --blocked: #a15c00; --ok: #1e7a3c; --accent: #2456a6; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e9ee; --muted: #9aa3ae; --line: #37404a;
  --bg: #14181d; --dead: #ff8a80; --blocked: #ffb74d; --ok: #81c995; --accent: #8ab4f8; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 12px 20px; border-bottom: 1px solid var(--line); display: flex; flex-wrap: wrap;
  gap: 8px 24px; align-items: center; }
header h1 { font-size: 18px; margin: 0; } header h1 a { color: inherit; text-decoration: none; }
.sources { margin: 0; color: var(--muted); flex: 1; }
main { padding: 8px 20px 40px; max-width: 1400px; }
h2 { font-size: 16px; margin: 24px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 14px; margin: 16px 0 6px; } h4 { margin: 12px 0 4px; }
table { border-collapse: collapse; width: 100%; margin-bottom: 8px; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
.totals { display: flex; flex-wrap: wrap; gap: 12px 32px; margin: 0 0 12px; }
.totals dt { color: var(--muted); font-size: 12px; } .totals dd { margin: 0; font-size: 22px; font-weight: 600; }
.spark rect { fill: var(--accent); } .rate .now { font-size: 14px; vertical-align: top; }
.badge { padding: 1px 6px; border-radius: 8px; font-size: 12px; border: 1px solid currentColor; }
.badge.dead { color: var(--dead); } .badge.blocked { color: var(--blocked); }
.badge.published, .badge.live { color: var(--ok); } .badge.pending, .badge.skipped, .badge.gone { color: var(--muted); }
.error { color: var(--dead); max-width: 420px; overflow-wrap: anywhere; }
pre.payload { margin: 0; max-width: 360px; max-height: 6em; overflow: auto; white-space: pre-wrap;
  overflow-wrap: anywhere; font-size: 12px; }
.hidden-payload, .empty, .note, .hint, .updated { color: var(--muted); }
.action { color: var(--accent); margin-right: 8px; }
.stale .updated::after { content: ' (stale: the console cannot be reached)'; color: var(--dead); }
.message dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; }
.message dl div { display: contents; } .message dt { color: var(--muted); } .message dd { margin: 0; }
code { font-size: 12px; }
`;
