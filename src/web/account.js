// The account page: profile (display name), password change, sessions (named devices, revoke
// with confirmation), pending approvals (listed from the server, updated live), trusted
// devices, security (authenticator app, passkeys, recovery codes) and the person's own audit
// events. Also the live event stream, which refreshes the access token and reconnects when
// the server ends it.
'use strict';

import { API, call, plain, refresh } from './api.js';
import { $, h, say, clearErrors, fieldError, confirmStep, when, eventWords, table } from './dom.js';
import { deviceName } from './device.js';
import * as webauthn from './webauthn.js';

let ctx = null;
let me = null;
let events = null;
let retryTimer = null;
let failures = 0;
const decided = new Set();

export function render(profile) {
  me = profile;
  renderProfile();
  const deadline = $('mfa-deadline');
  deadline.hidden = !me.mfa_setup_required_by;
  deadline.textContent = me.mfa_setup_required_by
    ? `${me.team.name} requires two-step sign-in. Set up an authenticator app or a passkey below before ${when(me.mfa_setup_required_by)}, or you will no longer be able to open this team.`
    : '';
  return Promise.all([loadSessions(), loadPending(), loadDevices(), loadSecurity(), loadAudit()]);
}

/** The name and the facts about the person. A name change redraws only these: the other
 * panels (a TOTP set-up under way, recovery codes shown only once) stay as they are. */
function renderProfile() {
  $('who').textContent = `${me.user.name} · ${me.user.email}`;
  $('profile').replaceChildren(
    h('dt', {}, 'Name'), h('dd', {}, me.user.name),
    h('dt', {}, 'Email'), h('dd', {}, me.user.email),
    h('dt', {}, 'Email verified'), h('dd', {}, me.user.email_verified_at ? when(me.user.email_verified_at) : 'No'),
    h('dt', {}, 'Current team'), h('dd', {}, `${me.team.name} (${me.role.name})`));
  $('profile-name').value = me.user.name;
}

async function changeName(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const name = form.name.value.trim();
  if (!name) return fieldError(form, 'name', 'Enter your name.');
  if (name.length > 100) return fieldError(form, 'name', 'Use at most 100 characters.');
  const r = await call('PATCH', '/auth/me', { name });
  if (!r.ok) return fieldError(form, 'name', plain(r));
  me.user.name = r.data.name;
  renderProfile();
  loadAudit();
  say('Your name was changed.', 'success');
}

export async function loadDevices() {
  const r = await call('GET', '/auth/devices');
  const list = $('devices');
  if (!r.ok) { list.replaceChildren(h('li', {}, plain(r))); return; }
  const devices = r.data.devices || [];
  $('forget-all-devices').hidden = devices.length === 0;
  if (!devices.length) { list.replaceChildren(h('li', { class: 'muted' }, 'No trusted devices: every sign-in asks for the emailed code.')); return; }
  list.replaceChildren(...devices.map((d) => {
    const name = deviceName(d.user_agent);
    return h('li', { class: d.current ? 'row current' : 'row' },
      h('div', { class: 'row-main' },
        h('strong', {}, name), d.current ? h('span', { class: 'badge' }, 'This device') : null,
        h('span', { class: 'muted' }, `Trusted since ${when(d.created_at)} · last used ${when(d.last_used_at)} · until ${when(d.expires_at)}`)),
      h('button', {
        type: 'button', class: 'btn danger small', 'aria-label': `Forget ${name}${d.current ? ' (this device)' : ''}, last used ${when(d.last_used_at)}`,
        onclick: async () => {
          const words = d.current ? 'Forget this device? Your next sign-in here asks for the emailed code again.'
            : `Forget ${name}? Its next sign-in asks for the emailed code again.`;
          if (!await confirmStep(words, 'Forget device')) return;
          const x = await call('DELETE', `/auth/devices/${d.id}`);
          if (!x.ok && x.status !== 404) return say(plain(x));
          await loadDevices();
          say(`${name} is no longer trusted.`, 'success');
          focusDevices();
        },
      }, 'Forget'));
  }));
}

async function forgetAllDevices() {
  if (!await confirmStep('Forget every trusted device, this one included? Each next sign-in asks for the emailed code again.', 'Forget all')) return;
  const r = await call('DELETE', '/auth/devices');
  if (!r.ok) return say(plain(r));
  await loadDevices();
  say('No device is trusted any more.', 'success');
  focusDevices();
}

/** The pressed button is gone with its row: the focus goes to the panel, not the page top. */
function focusDevices() {
  const heading = $('devices-h');
  heading.setAttribute('tabindex', '-1');
  heading.focus();
}

export async function loadSessions() {
  const r = await call('GET', '/auth/sessions');
  if (!r.ok) return;
  $('sessions').replaceChildren(...(r.data.sessions || []).map((s) => {
    const name = deviceName(s.user_agent || s.device);
    const li = h('li', { class: s.current ? 'row current' : 'row' },
      h('div', { class: 'row-main' },
        h('strong', {}, name), s.current ? h('span', { class: 'badge' }, 'This device') : null,
        h('span', { class: 'muted' }, `Signed in ${when(s.created_at)} · last seen ${when(s.last_seen_at)} · IP ${s.ip_address || 'unknown'}`)));
    if (!s.current) {
      li.append(h('button', {
        type: 'button', class: 'btn danger small', 'aria-label': `Revoke ${name}, last seen ${when(s.last_seen_at)}`,
        onclick: async () => {
          if (!await confirmStep(`Sign out ${name}? That device will have to sign in again.`, 'Revoke')) return;
          const d = await call('DELETE', `/auth/sessions/${s.id}`);
          if (d.ok || d.status === 404) say(`${name} was signed out.`, 'success');
          else say(plain(d));
          loadSessions();
        },
      }, 'Revoke'));
    }
    return li;
  }));
}

function approvalCard(token, userAgent, ip, at) {
  const id = `approval-${token.slice(0, 12)}`;
  if (document.getElementById(id)) return;
  const name = deviceName(userAgent);
  const card = h('div', { class: 'approval', id, role: 'group', 'aria-label': `Sign-in request from ${name}` },
    h('p', {}, h('strong', {}, `New sign-in from ${name}`), ` (IP ${ip || 'unknown'}, ${when(at)}). Was it you?`));
  for (const decision of ['approve', 'deny']) {
    card.append(h('button', {
      type: 'button', class: decision === 'approve' ? 'btn primary' : 'btn danger',
      onclick: async () => {
        for (const b of card.querySelectorAll('button')) b.disabled = true;
        const r = await call('POST', `/auth/concurrent-login/${encodeURIComponent(token)}/${decision}`);
        decided.add(token);
        settle(card, r.ok ? r.data.status : null, r);
        loadSessions();
      },
    }, decision === 'approve' ? 'Approve' : 'Deny'));
  }
  $('approvals').append(card);
}

/** A decided card keeps its words and loses its buttons. */
function settle(card, status, r) {
  const text = status ? `Sign-in ${status}.` : plain(r);
  card.replaceChildren(h('p', {}, text));
  card.classList.add('decided');
}

export async function loadPending() {
  const r = await call('GET', '/auth/concurrent-login/pending');
  if (!r.ok) return;
  for (const p of r.data.pending || []) {
    if (!decided.has(p.token)) approvalCard(p.token, p.device, p.ip_address, p.created_at);
  }
}

async function loadSecurity() {
  const box = $('security');
  const r = await call('GET', '/auth/mfa');
  if (r.status === 404 || r.status === 405) {
    box.replaceChildren(h('p', { class: 'muted' }, 'Two-step sign-in is not available on this server yet.'));
    return;
  }
  if (!r.ok) { box.replaceChildren(h('p', {}, plain(r))); return; }
  const s = r.data;
  const passkeys = s.passkeys || [];
  const app = s.totp
    ? [h('p', {}, 'The authenticator app is on.'),
      h('p', { class: 'actions' },
        h('button', { type: 'button', class: 'btn danger', onclick: disableTotp }, 'Turn off the authenticator app'))]
    : [h('p', {}, 'With an authenticator app, a stolen password is not enough to sign in.'),
      h('button', { type: 'button', class: 'btn primary', onclick: enrol }, 'Set up an authenticator app')];
  const on = s.totp || passkeys.length > 0;
  if (on) $('mfa-deadline').hidden = true;
  box.replaceChildren(
    h('p', { id: 'mfa-summary', tabindex: '-1' }, on
      ? `Two-step sign-in is on (${[s.totp ? 'authenticator app' : null, passkeys.length ? `${passkeys.length} passkey${passkeys.length === 1 ? '' : 's'}` : null].filter(Boolean).join(', ')}). Recovery codes left: ${s.recovery_codes_left ?? '—'}.`
      : 'Two-step sign-in is off.'),
    h('h3', {}, 'Authenticator app'), ...app,
    h('h3', {}, 'Passkeys'), passkeyList(passkeys), passkeyForm(),
    // replaceChildren would show a null as the text "null": only the parts that apply.
    ...(on ? [h('h3', {}, 'Recovery codes'),
      h('p', {}, 'A recovery code signs you in when your app or passkey is not at hand. Each works once.'),
      h('button', { type: 'button', class: 'btn secondary', onclick: newRecoveryCodes }, 'Make new recovery codes')] : []));
}

function passkeyList(passkeys) {
  if (!passkeys.length) return h('p', { class: 'muted', id: 'passkeys' }, 'No passkeys yet.');
  return h('ul', { class: 'rows', id: 'passkeys' }, passkeys.map((p) => {
    const form = h('form', { class: 'inline', novalidate: true },
      h('div', { class: 'field' }, h('label', { for: `passkey-name-${p.id}` }, `New name for ${p.name}`),
        h('input', { id: `passkey-name-${p.id}`, name: 'name', maxlength: '64', required: true, value: p.name })),
      h('button', { type: 'submit', class: 'btn secondary small' }, `Rename ${p.name}`));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      const name = form.name.value.trim();
      if (!name || name.length > 64) return fieldError(form, 'name', 'Use 1 to 64 characters.');
      const c = await call('PATCH', `/auth/mfa/passkeys/${p.id}`, { name });
      if (!c.ok) return fieldError(form, 'name', plain(c));
      await loadSecurity();
      say(`The passkey is now called ${name}.`, 'success');
      focusSecurity();
    });
    return h('li', { class: 'row' },
      h('div', { class: 'row-main' }, h('strong', {}, p.name),
        h('span', { class: 'muted' }, `Added ${when(p.created_at)} · ${p.last_used_at ? `last used ${when(p.last_used_at)}` : 'not used yet'}`)),
      form,
      h('button', {
        type: 'button', class: 'btn danger small',
        onclick: async () => {
          if (!await confirmStep(`Delete the passkey ${p.name}? It will no longer sign you in.`, 'Delete passkey')) return;
          const d = await call('DELETE', `/auth/mfa/passkeys/${p.id}`);
          if (!d.ok && d.status !== 404) return say(plain(d));
          await loadSecurity();
          say(`The passkey ${p.name} was deleted.`, 'success');
          focusSecurity();
        },
      }, `Delete ${p.name}`));
  }));
}

function passkeyForm() {
  if (!webauthn.supported()) return h('p', { class: 'muted' }, 'This browser cannot use passkeys.');
  const form = h('form', { novalidate: true, id: 'passkey-form' },
    h('div', { class: 'field' }, h('label', { for: 'passkey-name' }, 'Passkey name'),
      h('input', { id: 'passkey-name', name: 'name', maxlength: '64', required: true, 'aria-describedby': 'passkey-name-hint' }),
      h('p', { class: 'hint', id: 'passkey-name-hint' }, 'A name you will recognise, such as “Work laptop”.')),
    h('button', { type: 'submit', class: 'btn primary' }, 'Add a passkey'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const name = form.name.value.trim();
    if (!name || name.length > 64) return fieldError(form, 'name', 'Name the passkey (1 to 64 characters).');
    const begin = await call('POST', '/auth/mfa/passkeys/register/begin');
    if (!begin.ok) return fieldError(form, 'name', plain(begin));
    let credential;
    try {
      credential = await webauthn.create(begin.data.options);
    } catch (e) {
      return fieldError(form, 'name', webauthn.failureWords(e));
    }
    const r = await call('POST', '/auth/mfa/passkeys/register/finish', { ceremony: begin.data.ceremony, name, credential });
    if (!r.ok) return fieldError(form, 'name', plain(r));
    await loadSecurity();
    say(`The passkey ${name} was added. You can now use it to sign in.`, 'success');
  });
  return form;
}

async function enrol() {
  const r = await call('POST', '/auth/mfa/totp/enroll');
  if (!r.ok) return say(plain(r));
  const box = $('security');
  const form = h('form', { novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'totp-confirm-code' }, 'Code from the app'),
      h('input', { id: 'totp-confirm-code', name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: '6', required: true })),
    h('p', { class: 'actions' },
      h('button', { type: 'submit', class: 'btn primary' }, 'Turn on'),
      h('button', { type: 'button', class: 'btn secondary', onclick: () => loadSecurity().then(focusSecurity) }, 'Cancel set-up')));
  box.replaceChildren(h('div', { 'data-secret': true },
    h('p', {}, 'Add this account to your authenticator app with the key below (or the link), then enter the 6-digit code it shows.'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Key'), h('dd', {}, h('code', { id: 'totp-secret' }, r.data.secret)),
      h('dt', {}, 'Link'), h('dd', {}, h('code', { id: 'totp-uri', class: 'wrap' }, r.data.otpauth_uri))),
    form));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const code = form.code.value.trim();
    if (!/^[0-9]{6}$/.test(code)) return fieldError(form, 'code', 'Enter the 6 digits from the app.');
    const c = await call('POST', '/auth/mfa/totp/confirm', { code });
    form.code.value = '';
    if (!c.ok) return fieldError(form, 'code', plain(c));
    showRecoveryCodes(c.data.recovery_codes || []);
  });
  $('totp-confirm-code').focus();
}

function showRecoveryCodes(codes) {
  const box = $('security');
  box.replaceChildren(h('div', { 'data-secret': true, id: 'recovery-codes' },
    h('p', {}, 'Two-step sign-in is on. Keep these recovery codes somewhere safe: each works once, and they are shown only now.'),
    h('ul', { class: 'codes' }, codes.map((c) => h('li', {}, h('code', {}, c)))),
    h('button', { type: 'button', class: 'btn primary', onclick: () => loadSecurity().then(focusSecurity) }, 'I have saved them')));
  box.querySelector('button').focus();
}

async function newRecoveryCodes() {
  if (!await confirmStep('Make new recovery codes? The old ones stop working.', 'Make new codes')) return;
  const r = await call('POST', '/auth/mfa/recovery-codes');
  if (!r.ok) return say(plain(r));
  showRecoveryCodes(r.data.recovery_codes || []);
}

async function disableTotp() {
  if (!await confirmStep('Turn off two-step sign-in? Your password alone will then be enough to sign in.', 'Turn off')) return;
  const r = await call('DELETE', '/auth/mfa/totp');
  if (!r.ok) return say(plain(r));
  say('Two-step sign-in is off.', 'success');
  await loadSecurity();
  focusSecurity();
}

/** The security panel was redrawn (the pressed control with it): the focus goes to its summary. */
function focusSecurity() {
  const summary = $('mfa-summary');
  if (summary) summary.focus();
}

async function loadAudit() {
  const r = await call('GET', '/auth/audit?limit=20');
  if (!r.ok) { $('my-audit').replaceChildren(h('p', {}, plain(r))); return; }
  const rows = (r.data.entries || []).map((e) => [when(e.at), eventWords(e.event), deviceName(e.user_agent), h('span', { class: 'ip' }, e.ip_address || '—')]);
  $('my-audit').replaceChildren(rows.length ? table('Your recent activity', ['When', 'What', 'Device', 'IP'], rows) : h('p', {}, 'Nothing yet.'));
}

async function changePassword(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const current = form.current_password.value;
  const next = form.new_password.value;
  if (!current) return fieldError(form, 'current_password', 'Enter your current password.');
  if (next.length < 8) return fieldError(form, 'new_password', 'Use at least 8 characters.');
  const r = await call('POST', '/auth/password/change', { current_password: current, new_password: next });
  form.reset();
  if (!r.ok) {
    const field = r.data.field === 'current_password' || r.data.code === 'invalid_credentials' ? 'current_password' : 'new_password';
    return fieldError(form, field, r.data.code === 'invalid_credentials' ? 'Your current password is not right.' : plain(r));
  }
  say('Your password was changed. Your other sessions were signed out.', 'success');
  loadSessions();
}

/** Listens to the live events; when the stream ends (it does at access-token expiry), refreshes and listens again. */
export function listen() {
  stopListening();
  events = new EventSource(API + '/auth/events', { withCredentials: true });
  events.addEventListener('open', () => { failures = 0; });
  events.addEventListener('concurrent_login_requested', (e) => {
    const data = JSON.parse(e.data);
    const d = data.device || {};
    approvalCard(data.token, d.user_agent, d.ip, d.requested_at);
  });
  events.addEventListener('concurrent_login_decided', (e) => {
    const data = JSON.parse(e.data);
    decided.add(data.token);
    const card = document.getElementById(`approval-${String(data.token).slice(0, 12)}`);
    if (card && !card.classList.contains('decided')) settle(card, data.status);
  });
  events.addEventListener('session_revoked', (e) => {
    const data = JSON.parse(e.data || '{}');
    if (me && data.session_id === me.session.id) { stopListening(); ctx.sessionEnded('This session was signed out from another device.'); }
    else loadSessions();
  });
  events.addEventListener('session_created', () => loadSessions());
  events.onerror = () => {
    stopListening();
    failures += 1;
    retryTimer = setTimeout(reconnect, Math.min(30000, 500 * 2 ** Math.min(failures, 6)));
  };
}

async function reconnect() {
  retryTimer = null;
  // The stream ended: most often the access token expired. Refresh, then check the session.
  const r = await call('GET', '/auth/me');
  if (r.ok) { me = r.data; listen(); loadPending(); return; }
  if (r.status === 401 && !(await refresh())) return ctx.sessionEnded('Your session has ended. Sign in again.');
  retryTimer = setTimeout(reconnect, 5000);
}

export function stopListening() {
  if (events) { events.onerror = null; events.close(); }
  events = null;
  if (retryTimer) clearTimeout(retryTimer);
  retryTimer = null;
}

export function forget() {
  stopListening();
  me = null;
  decided.clear();
  for (const id of ['approvals', 'sessions', 'devices', 'security', 'my-audit', 'profile']) $(id).replaceChildren();
  $('who').textContent = 'Your account';
  $('mfa-deadline').hidden = true;
}

export function init(context) {
  ctx = context;
  $('password-form').addEventListener('submit', changePassword);
  $('name-form').addEventListener('submit', changeName);
  $('forget-all-devices').addEventListener('click', forgetAllDevices);
  $('logout-all').addEventListener('click', async () => {
    if (!await confirmStep('Sign out on every device, this one included?', 'Sign out everywhere')) return;
    ctx.signOut(true);
  });
}
