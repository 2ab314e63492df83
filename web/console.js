// The sipbridge web console: log in, a dashboard, call records with filters, and one call's
// timeline, SIP ladder and media quality. Plain modules, no build step; data comes from
// /api/v1 with the session cookie set at login.

const view = document.getElementById('view');
const loginForm = document.getElementById('login');
const passwordForm = document.getElementById('password');
let me = null;
// Each route() is one render; a slower earlier one (the dashboard's two requests, say) must not
// overwrite the page the user has since moved to.
let renders = 0;

const escapeHtml = (text) => String(text ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const time = (ms) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '');
const seconds = (ms) => (ms == null ? '' : (ms / 1000).toFixed(1) + ' s');

async function api(path) {
  const response = await fetch(path, { credentials: 'same-origin' });
  if (response.status === 401) { showLogin(); throw new Error('logged out'); }
  const body = await response.json();
  if (!response.ok) throw new Error(body?.error?.message ?? response.statusText);
  return body;
}

function showLogin() {
  me = null;
  renders += 1; // what was being drawn is for the session that ended

  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  document.getElementById('who').textContent = '';
  view.innerHTML = '';
  passwordForm.hidden = true;
  loginForm.hidden = false;
}

// A first-start account must choose its own password before anything else (the API refuses
// everything else to its session meanwhile).
passwordForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const data = Object.fromEntries(new FormData(passwordForm));
  const response = await fetch('/console/password', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(data) });
  const body = await response.json();
  if (!response.ok) { document.getElementById('password-error').textContent = body?.error?.message ?? 'not changed'; return; }
  passwordForm.reset();
  document.getElementById('password-error').textContent = '';
  await start();
});

loginForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const data = Object.fromEntries(new FormData(loginForm));
  const response = await fetch('/console/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(data) });
  const body = await response.json();
  if (!response.ok) { document.getElementById('login-error').textContent = body?.error?.message ?? 'login failed'; return; }
  loginForm.reset();
  document.getElementById('login-error').textContent = '';
  await start();
});

document.getElementById('logout').addEventListener('click', async () => {
  await fetch('/console/logout', { method: 'POST' });
  showLogin();
});

async function start() {
  const response = await fetch('/console/me');
  if (!response.ok) return showLogin();
  me = await response.json();
  loginForm.hidden = true;
  if (me.must_change_password) {
    me = null;
    passwordForm.hidden = false;
    document.getElementById('logout').hidden = false;
    return;
  }
  passwordForm.hidden = true;
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = false;
  document.getElementById('who').textContent = `${me.user} (${me.role})`;
  if (!location.hash || location.hash === '#/') location.hash = '#/dashboard';
  else route();
}

window.addEventListener('hashchange', () => { if (me) route(); });

function route() {
  const [path, query] = location.hash.slice(1).split('?');
  const parts = path.split('/').filter(Boolean);
  const render = ++renders;
  // Puts `html` in the view unless a later route() has started since; false if it has.
  const show = (html) => { if (render !== renders) return false; view.innerHTML = html; return true; };
  const drawn = parts[0] === 'calls' && parts[1] ? detail(decodeURIComponent(parts[1]), show) : parts[0] === 'calls' ? records(new URLSearchParams(query), show) : dashboard(show);
  drawn.catch((e) => { if (e.message !== 'logged out') show(`<p class="error">${escapeHtml(e.message)}</p>`); });
}

async function dashboard(show) {
  const active = await api('/api/v1/calls?status=in_progress&limit=100');
  let sip = null;
  if (me.role === 'admin') sip = await api('/api/v1/sip/status').catch(() => null);
  const peers = (sip?.upstreams ?? []).map((u) => `<tr><td>${escapeHtml(u.profile)}</td><td class="${u.peer_status === 'up' ? 'up' : 'down'}">${escapeHtml(u.peer_status)}</td><td>${u.registered ? 'registered' : ''}</td></tr>`).join('');
  const phones = (sip?.bindings ?? []).map((b) => `<tr><td>${escapeHtml(b.aor)}</td><td>${escapeHtml(b.source)}</td><td>${escapeHtml(b.user_agent)}</td></tr>`).join('');
  if (!show(`
    <div class="tiles">
      <div class="card tile">Active calls<b id="active-count">${active.calls.length}</b></div>
      ${sip ? `<div class="card tile">Registered phones<b>${sip.bindings.length}</b></div>` : ''}
    </div>
    <div class="card"><h2>Active calls</h2>${table(active.calls, 'active-calls')}</div>
    ${sip ? `<div class="card"><h2>Profiles</h2><table><tr><th>Profile</th><th>Peer</th><th>Registration</th></tr>${peers}</table></div>
    <div class="card"><h2>Registrations</h2><table><tr><th>AOR</th><th>From</th><th>User agent</th></tr>${phones}</table></div>` : ''}`)) return;
  bindRows();
}

function table(calls, id) {
  if (!calls.length) return '<p>No calls.</p>';
  const rows = calls.map((c) => `<tr class="row" data-id="${escapeHtml(c.id)}">
      <td>${time(c.started_at)}</td><td>${escapeHtml(c.direction)}</td><td class="status-${escapeHtml(c.status)}">${escapeHtml(c.status)}</td>
      <td>${escapeHtml(c.from_uri)}</td><td>${escapeHtml(c.to_uri)}</td><td>${escapeHtml(c.browser_user)}</td><td>${escapeHtml(c.profile)}</td>
      <td>${seconds(c.duration_ms)}</td><td>${c.sip_codec ? `${escapeHtml(c.sip_codec)} / ${escapeHtml(c.browser_codec)}${c.transcoded ? ' ⇄' : ''}` : ''}</td></tr>`).join('');
  return `<table id="${id}"><tr><th>Started (UTC)</th><th>Direction</th><th>Status</th><th>From</th><th>To</th><th>User</th><th>Profile</th><th>Duration</th><th>Codecs</th></tr>${rows}</table>`;
}

function bindRows() {
  for (const row of view.querySelectorAll('tr.row')) row.addEventListener('click', () => { location.hash = `#/calls/${encodeURIComponent(row.dataset.id)}`; });
}

const FILTERS = ['q', 'direction', 'status', 'profile', 'min_duration', 'transcoded', 'from', 'to'];

async function records(params, show) {
  const query = new URLSearchParams();
  for (const key of [...FILTERS, 'cursor']) if (params.get(key)) query.set(key, params.get(key));
  query.set('limit', '50');
  const page = await api(`/api/v1/calls?${query}`);
  const value = (k) => escapeHtml(params.get(k) ?? '');
  const option = (k, v) => `<option${params.get(k) === v ? ' selected' : ''}>${v}</option>`;
  const exportQuery = new URLSearchParams([...query].filter(([k]) => FILTERS.includes(k)));
  if (!show(`
    <form id="filters" class="card filters">
      <label>Number or user <input name="q" value="${value('q')}"></label>
      <label>Direction <select name="direction"><option></option>${option('direction', 'inbound')}${option('direction', 'outbound')}</select></label>
      <label>Status <select name="status"><option></option>${['answered', 'missed', 'rejected', 'busy', 'cancelled', 'failed', 'in_progress'].map((s) => option('status', s)).join('')}</select></label>
      <label>Profile <input name="profile" value="${value('profile')}" size="10"></label>
      <label>Min. seconds <input name="min_duration" value="${value('min_duration')}" size="5"></label>
      <label>Transcoded <select name="transcoded"><option></option>${option('transcoded', 'true')}${option('transcoded', 'false')}</select></label>
      <label>From <input name="from" value="${value('from')}" placeholder="2026-11-24T00:00:00Z"></label>
      <label>To <input name="to" value="${value('to')}" placeholder="2026-11-25T00:00:00Z"></label>
      <button type="submit">Filter</button>
      ${me.role === 'admin' ? `<a href="/api/v1/calls.csv?${exportQuery}" download>Export CSV</a>` : ''}
    </form>
    <div class="card">${table(page.calls, 'records')}
      ${page.next_cursor ? `<p><a id="next" href="#/calls?${new URLSearchParams([...exportQuery, ['cursor', page.next_cursor]])}">Older calls →</a></p>` : ''}
    </div>`)) return;
  document.getElementById('filters').addEventListener('submit', (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams([...new FormData(event.target)].filter(([, v]) => v));
    location.hash = `#/calls?${chosen}`;
  });
  bindRows();
}

async function detail(id, show) {
  const call = await api(`/api/v1/calls/${encodeURIComponent(id)}`);
  const facts = [
    ['Direction', call.direction], ['Status', call.status], ['From', `${call.from_name ?? ''} ${call.from_uri}`], ['To', call.to_uri],
    ['Browser user', call.browser_user], ['Profile', call.profile], ['Started', time(call.started_at)], ['Answered', time(call.answered_at)],
    ['Ended', time(call.ended_at)], ['Duration', seconds(call.duration_ms)], ['Billable', call.billable_secs == null ? '' : `${call.billable_secs} s`],
    ['Hangup', `${call.hangup_side ?? ''} ${call.hangup_reason ?? ''} ${call.hangup_sip_code ? `(SIP ${call.hangup_sip_code}${call.hangup_q850 ? `, Q.850 ${call.hangup_q850}` : ''})` : ''}`],
    ['Codecs', `${call.sip_codec ?? ''} / ${call.browser_codec ?? ''}${call.transcoded ? ' (transcoded)' : ''}`], ['SIP Call-ID', (call.sip_call_ids ?? []).join(' ')],
  ].map(([k, v]) => `<tr><th>${k}</th><td>${escapeHtml(v)}</td></tr>`).join('');
  const quality = (call.quality ?? []).map((q) => `<tr><td>${escapeHtml(q.leg)}</td><td>${escapeHtml(q.direction)}</td><td>${q.packets}</td><td>${q.loss_percent.toFixed(2)} %</td><td>${q.jitter_ms.toFixed(1)} ms</td><td>${q.rtt_ms == null ? '' : q.rtt_ms.toFixed(1) + ' ms'}</td><td>${q.mos == null ? escapeHtml(q.note ?? '') : q.mos.toFixed(2)}</td><td>${escapeHtml(q.audio_bandwidth ?? '')}</td></tr>`).join('');
  const events = (call.events ?? []).map((e) => `<tr><td>${time(e.at)}</td><td>${escapeHtml(e.kind)}</td><td>${escapeHtml(e.detail)}</td></tr>`).join('');
  if (!show(`
    <p><a href="#/calls">← Call records</a></p>
    <div class="card"><h2>Call ${escapeHtml(call.id)}</h2><table>${facts}</table></div>
    <div class="card"><h2>Media quality</h2><table><tr><th>Leg</th><th>Direction</th><th>Packets</th><th>Loss</th><th>Jitter</th><th>RTT</th><th>MOS</th><th>Opus audio</th></tr>${quality}</table></div>
    <div class="card"><h2>Timeline</h2><table>${events}</table></div>
    <div class="card"><h2>SIP ladder</h2>${ladder(call.sip_messages ?? [])}<pre class="sip" id="sip-text">Click a message to see it.</pre></div>`)) return;
  for (const arrow of view.querySelectorAll('[data-message]')) {
    arrow.addEventListener('click', () => { document.getElementById('sip-text').textContent = call.sip_messages[Number(arrow.dataset.message)].text; });
  }
}

/// The messages as sngrep draws them: one column per endpoint, one arrow per message.
function ladder(messages) {
  if (!messages.length) return '<p>No SIP messages were kept for this call.</p>';
  const columns = ['sipbridge'];
  for (const m of messages) if (!columns.includes(m.peer)) columns.push(m.peer);
  const width = 280, row = 30, top = 40;
  const x = (name) => 80 + columns.indexOf(name) * width;
  const start = messages[0].at;
  const height = top + messages.length * row + 20;
  const heads = columns.map((c) => `<text class="peer" x="${x(c)}" y="20" text-anchor="middle">${escapeHtml(c)}</text><line x1="${x(c)}" y1="28" x2="${x(c)}" y2="${height}" stroke="#9aa6b8" stroke-dasharray="4 3"/>`).join('');
  const arrows = messages.map((m, i) => {
    const [from, to] = m.direction === 'out' ? ['sipbridge', m.peer] : [m.peer, 'sipbridge'];
    const y = top + i * row + 14;
    const label = m.summary.startsWith('SIP/2.0 ') ? m.summary.slice(8) : m.summary.split(' ')[0];
    const color = /^SIP\/2\.0 [3-6]/.test(m.summary) ? '#b00020' : m.summary.startsWith('SIP/2.0') ? '#0a7d32' : '#1d4ed8';
    return `<g data-message="${i}" style="cursor:pointer"><rect x="0" y="${y - 18}" width="${80 + columns.length * width}" height="${row}" fill="transparent"/><text x="8" y="${y}" fill="#667">+${((m.at - start) / 1000).toFixed(3)}</text>
      <line x1="${x(from)}" y1="${y}" x2="${x(to)}" y2="${y}" stroke="${color}" stroke-width="1.5" marker-end="url(#head)"/>
      <text x="${(x(from) + x(to)) / 2}" y="${y - 4}" text-anchor="middle" fill="${color}">${escapeHtml(label)}</text></g>`;
  }).join('');
  return `<svg class="ladder" width="${80 + columns.length * width}" height="${height}">
    <defs><marker id="head" markerWidth="8" markerHeight="8" refX="8" refY="4" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="context-stroke"/></marker></defs>${heads}${arrows}</svg>`;
}

start();
