import { createHash } from 'node:crypto'

/**
 * The admin port's `/` page: one self-contained document (no CDN, no framework) that fetches
 * `status` next to it, renders it, counts expiries down each second and fetches again every few
 * seconds (`?refresh=SECONDS`, default 5). Everything from the status is set as text, never as
 * markup. Cards and wrapping tables keep it readable on a phone.
 */
const style = `
:root { color-scheme: light dark; --ok: #17803d; --bad: #c62828; --muted: #6b7280; --line: #d1d5db; --card: #f8fafc; }
@media (prefers-color-scheme: dark) { :root { --ok: #4ade80; --bad: #f87171; --muted: #9ca3af; --line: #374151; --card: #111827; } }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; padding: 12px; max-width: 960px; }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 6px 12px; border-bottom: 1px solid var(--line); padding-bottom: 8px; }
h1 { font-size: 1.25rem; margin: 0; }
h2 { font-size: 1.05rem; margin: 18px 0 6px; }
.badge { font-weight: 600; padding: 1px 8px; border-radius: 10px; color: #fff; background: var(--bad); }
.badge.ok { background: var(--ok); }
.muted, #updated { color: var(--muted); font-size: 0.85rem; }
ul.reasons { margin: 6px 0 0; padding-left: 20px; color: var(--bad); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 10px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; min-width: 0; }
.card h3 { font-size: 0.95rem; margin: 0 0 6px; overflow-wrap: anywhere; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.9em; }
.state-ok { color: var(--ok); font-weight: 600; }
.state-bad { color: var(--bad); font-weight: 600; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px 4px 0; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: break-word; }
ul.routes { list-style: none; margin: 0; padding: 0; }
ul.routes li { padding: 6px 0; border-bottom: 1px solid var(--line); overflow-wrap: anywhere; }
th { color: var(--muted); font-weight: 500; }
`

const script = `
const refreshSeconds = Math.max(Number(new URLSearchParams(location.search).get('refresh')) || 5, 0.5);
let latest, offset = 0;
const $ = (id) => document.getElementById(id);
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined) continue;
    if (name === 'class') node.className = value; else node.setAttribute(name, value);
  }
  for (const child of children) if (child !== undefined && child !== null) node.append(child instanceof Node ? child : String(child));
  return node;
}
function span(field, text, cls) { return el('span', { 'data-field': field, class: cls }, text); }
function time(ms) { return ms === undefined ? undefined : new Date(ms).toISOString().replace('.000', ''); }
function duration(ms) {
  const s = Math.round(Math.abs(ms) / 1000), d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  const text = d ? d + 'd ' + h + 'h' : h ? h + 'h ' + m + 'm' : m ? m + 'm ' + (s % 60) + 's' : s + 's';
  return ms >= 0 ? 'in ' + text : text + ' ago';
}
function rows(pairs) {
  const list = el('dl');
  for (const [label, value] of pairs) if (value) list.append(el('dt', {}, label), el('dd', {}, value));
  return list;
}
function table(headings, lines) {
  return el('div', { class: 'scroll' }, el('table', {}, el('thead', {}, el('tr', {}, ...headings.map((h) => el('th', {}, h)))),
    el('tbody', {}, ...lines.map((cells) => el('tr', {}, ...cells.map((c) => el('td', {}, c)))))));
}
function section(title, ...content) { return el('section', {}, el('h2', {}, title), ...content); }
function countdown(ms) { return el('span', { 'data-countdown': String(ms) }, duration(ms - (Date.now() + offset))); }
function tokenCard(t) {
  return el('div', { class: 'card token', 'data-key': t.key },
    el('h3', {}, span('key', t.key, 'mono')),
    rows([
      ['state', span('state', t.ready ? 'ready' : 'not ready', t.ready ? 'state-ok' : 'state-bad')],
      ['reason', t.reason && span('reason', t.reason)],
      ['source', t.source],
      ['fingerprint', t.fingerprint && span('fingerprint', t.fingerprint, 'mono')],
      ['subject', t.subject && span('subject', t.subject, 'mono')],
      ['audience', t.audience && span('audience', t.audience.join(', '), 'mono')],
      ['issued', time(t.issuedAt)],
      ['expires', t.expiresAt !== undefined && el('span', {}, time(t.expiresAt) + ' (', countdown(t.expiresAt), ')')],
      ['last refresh', t.lastRefreshAt !== undefined && el('span', {}, countdown(t.lastRefreshAt))],
      ['last error', t.lastError && span('last-error', t.lastError)],
    ]));
}
function issuerCard(i) {
  return el('div', { class: 'card issuer', 'data-issuer': i.issuer },
    el('h3', {}, span('issuer', i.issuer, 'mono')),
    rows([
      ['state', span('state', i.ready ? 'keys held' : 'no keys', i.ready ? 'state-ok' : 'state-bad')],
      ['reason', i.reason],
      ['key ids', i.keyIds && span('key-ids', i.keyIds.join(', '), 'mono')],
      ['last key fetch', i.keysFetchedAt !== undefined && el('span', {}, time(i.keysFetchedAt) + ' (', countdown(i.keysFetchedAt), ')')],
    ]));
}
function render(s) {
  document.title = 'bearer-sidecar ' + s.command + (s.ready ? '' : ' (not ready)');
  $('command').textContent = s.command;
  const badge = $('ready');
  badge.textContent = s.ready ? 'ready' : 'not ready';
  badge.className = 'badge' + (s.ready ? ' ok' : '');
  const main = el('main');
  if (!s.ready && s.reasons.length) main.append(el('ul', { class: 'reasons' }, ...s.reasons.map((r) => el('li', {}, r))));
  if (s.routes) main.append(section('Routes', el('ul', { class: 'routes' }, ...s.routes.map((r) => el('li', {},
    span('route-host', r.host, 'mono'), ' \u2192 ', span('route-upstream', r.upstream, 'mono'),
    el('div', { class: 'muted' }, 'token: ', span('route-token', r.tokenKey || 'per requested host', 'mono')))))));
  if (s.tokens) main.append(section('Tokens', s.tokens.length ? el('div', { class: 'cards' }, ...s.tokens.map(tokenCard)) : el('p', { class: 'muted' }, 'none held yet')));
  if (s.issuers) main.append(section('Issuers', el('div', { class: 'cards' }, ...s.issuers.map(issuerCard))));
  const counts = (title, list) => list && list.length && main.append(section(title,
    table([...Object.keys(list[0].labels), 'count'], list.map((c) => [...Object.values(c.labels), String(c.count)]))));
  counts('Requests', s.requests);
  counts('Verifications', s.verifications);
  if (!s.requests.length && !(s.verifications && s.verifications.length)) main.append(section('Requests', el('p', { class: 'muted' }, 'none yet')));
  $('content').replaceChildren(main);
}
function tick() {
  for (const node of document.querySelectorAll('[data-countdown]')) node.textContent = duration(Number(node.dataset.countdown) - (Date.now() + offset));
}
async function refresh() {
  try {
    const response = await fetch('status', { cache: 'no-store' });
    if (!response.ok) throw new Error('status answered HTTP ' + response.status);
    latest = await response.json();
    offset = latest.now - Date.now();
    render(latest);
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (error) {
    $('updated').textContent = 'cannot reach the sidecar: ' + error.message;
  }
}
refresh();
setInterval(refresh, refreshSeconds * 1000);
setInterval(tick, 1000);
`

const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bearer-sidecar</title>
<style>${style}</style>
</head>
<body>
<header><h1>bearer-sidecar <span id="command"></span></h1><span id="ready" class="badge">loading</span><span id="updated"></span></header>
<div id="content"><p class="muted">loading status...</p></div>
<script>${script}</script>
</body>
</html>
`

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`

/** The page and its headers: a CSP admitting only this page's own script and style, and fetches to its own origin. */
export const statusPage = {
  html,
  headers: {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'content-security-policy': `default-src 'none'; script-src ${sha256(script)}; style-src ${sha256(style)}; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
  },
} as const
