// The mbpanel sign-in and account page. It uses the public API with the session cookies
// (credentials: 'include') and sends the CSRF cookie back in X-CSRF-Token.
'use strict';

const api = '/api/v1';
const $ = (id) => document.getElementById(id);
let pending = { preauth: null, teams: [] };
let events = null;

function csrf() {
  const c = document.cookie.split('; ').find((x) => x.startsWith('mbpanel_csrf='));
  return c ? decodeURIComponent(c.split('=')[1]) : '';
}

function show(section) {
  for (const id of ['signin', 'otp', 'team-choice', 'waiting', 'account']) $(id).hidden = id !== section;
}

function say(text) { $('message').textContent = text || ''; }

async function call(method, path, body, retry = true) {
  const headers = { 'X-CSRF-Token': csrf() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(api + path, { method, credentials: 'include', headers, body: body === undefined ? undefined : JSON.stringify(body) });
  // An expired access token: refresh once, then repeat the call.
  if (r.status === 401 && retry && path !== '/auth/refresh' && path !== '/auth/login') {
    const refreshed = await fetch(api + '/auth/refresh', { method: 'POST', credentials: 'include', headers: { 'X-CSRF-Token': csrf() } });
    if (refreshed.ok) return call(method, path, body, false);
  }
  const data = r.status === 204 ? {} : await r.json().catch(() => ({}));
  return { status: r.status, ok: r.ok, data };
}

async function signIn(event) {
  event.preventDefault();
  say('');
  const form = new FormData(event.target);
  const r = await call('POST', '/auth/login', { email: form.get('email'), password: form.get('password') });
  if (!r.ok) return say(r.data.detail || 'Sign-in failed');
  pending = { preauth: r.data.preauth_token, teams: r.data.teams || [] };
  if (r.data.otp_required) return show('otp');
  chooseTeam();
}

async function verifyCode(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const r = await call('POST', '/auth/otp/verify', { preauth_token: pending.preauth, code: form.get('code') });
  if (!r.ok) return say(r.data.detail || 'Wrong code');
  say('');
  chooseTeam();
}

function chooseTeam() {
  if (pending.teams.length <= 1) return exchange(pending.teams[0] && pending.teams[0].id);
  const select = $('team-select');
  select.replaceChildren(...pending.teams.map((t) => new Option(`${t.name} (${t.role})`, t.id)));
  show('team-choice');
}

async function exchange(teamId) {
  const body = { preauth_token: pending.preauth };
  if (teamId) body.team_id = Number(teamId);
  const r = await call('POST', '/auth/session-exchange', body);
  if (r.ok) return loadAccount();
  if (r.status === 423) return waitForApproval(r.data.token, teamId);
  say(r.data.detail || 'Sign-in failed');
  show('signin');
}

function waitForApproval(token, teamId) {
  show('waiting');
  const poll = async () => {
    const r = await call('GET', `/auth/concurrent-login/${encodeURIComponent(token)}`, undefined, false);
    const status = r.ok ? r.data.status : 'expired';
    $('waiting-status').textContent = status === 'pending' ? 'Pending…' : status;
    if (status === 'pending') return setTimeout(poll, 2000);
    if (status === 'approved') return exchange(teamId);
    say(status === 'denied' ? 'This sign-in was denied by your other session.' : 'The request expired. Sign in again.');
    show('signin');
  };
  setTimeout(poll, 1000);
}

async function loadAccount() {
  const me = await call('GET', '/auth/me');
  if (!me.ok) { show('signin'); return; }
  $('who').textContent = `${me.data.user.name} · ${me.data.user.email}`;
  $('role').textContent = me.data.role.name;
  const teams = await call('GET', '/teams');
  $('team-switcher').replaceChildren(...(teams.data.teams || []).map((t) => {
    const o = new Option(t.name, t.id);
    o.selected = t.id === me.data.team.id;
    return o;
  }));
  await loadSessions();
  listen();
  show('account');
}

async function loadSessions() {
  const r = await call('GET', '/auth/sessions');
  $('sessions').replaceChildren(...(r.data.sessions || []).map((s) => {
    const li = document.createElement('li');
    li.textContent = `${s.device} — ${s.ip_address || '?'} — last seen ${new Date(s.last_seen_at).toLocaleString()} `;
    if (s.current) li.classList.add('current');
    else {
      const b = document.createElement('button');
      b.textContent = 'Revoke';
      b.onclick = async () => { await call('DELETE', `/auth/sessions/${s.id}`); loadSessions(); };
      li.append(b);
    }
    return li;
  }));
}

function listen() {
  if (events) events.close();
  events = new EventSource(api + '/auth/events', { withCredentials: true });
  events.addEventListener('concurrent_login_requested', (e) => {
    const data = JSON.parse(e.data);
    const card = document.createElement('div');
    card.className = 'approval';
    card.textContent = `New sign-in from ${data.device.user_agent || 'unknown device'} (${data.device.ip || '?'}). `;
    for (const decision of ['approve', 'deny']) {
      const b = document.createElement('button');
      b.textContent = decision === 'approve' ? 'Approve' : 'Deny';
      b.onclick = async () => {
        const r = await call('POST', `/auth/concurrent-login/${encodeURIComponent(data.token)}/${decision}`);
        card.textContent = r.ok ? `Sign-in ${r.data.status}.` : (r.data.detail || 'Failed');
        loadSessions();
      };
      card.append(b);
    }
    $('approvals').append(card);
  });
  events.addEventListener('session_revoked', () => loadAccount());
  events.addEventListener('session_created', () => loadSessions());
  // The server ends the stream when the access token expires (and the browser's own retry
  // would carry the expired cookie): refresh through an ordinary call, then listen again.
  events.onerror = () => {
    if (events) events.close();
    events = null;
    setTimeout(async () => {
      const r = await call('GET', '/auth/me');
      if (r.ok) listen();
      else loadAccount();
    }, 1000);
  };
}

async function signOut(everywhere) {
  if (events) events.close();
  await call('POST', everywhere ? '/auth/logout-all' : '/auth/logout');
  show('signin');
}

document.addEventListener('DOMContentLoaded', () => {
  $('signin-form').addEventListener('submit', signIn);
  $('otp-form').addEventListener('submit', verifyCode);
  $('team-form').addEventListener('submit', (e) => { e.preventDefault(); exchange($('team-select').value); });
  $('team-switcher').addEventListener('change', async (e) => {
    const r = await call('POST', '/auth/switch-team', { team_id: Number(e.target.value) });
    if (!r.ok) say(r.data.detail || 'Could not switch team');
    loadAccount();
  });
  $('logout').onclick = () => signOut(false);
  $('logout-all').onclick = () => signOut(true);
  loadAccount();
});
