// Small DOM helpers shared by the views: elements, views, messages, field errors,
// confirmation dialogs and forgetting every secret the page held.
'use strict';

export const $ = (id) => document.getElementById(id);

/** h('p', {class: 'x'}, 'text', child) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export const VIEWS = ['signin', 'register', 'check-email', 'verify', 'forgot', 'reset', 'otp', 'mfa',
  'team-choice', 'waiting', 'link-decision', 'invite', 'account', 'teams'];

const TITLES = {
  signin: 'Sign in', register: 'Create an account', 'check-email': 'Check your email',
  verify: 'Verify your email', forgot: 'Forgot your password', reset: 'Choose a new password',
  otp: 'Enter the code', mfa: 'Second step', 'team-choice': 'Choose a team',
  waiting: 'Waiting for approval', 'link-decision': 'New sign-in', invite: 'Join a team',
  account: 'Your account', teams: 'Team',
};

/** Shows one view, names it in the title and moves focus to its first field (or heading). */
export function show(view, { keepMessage = false } = {}) {
  for (const id of VIEWS) $(id).hidden = id !== view;
  document.title = `${TITLES[view]} · mbpanel`;
  if (!keepMessage) say('');
  const section = $(view);
  const pageOfPanels = view === 'account' || view === 'teams';
  const first = pageOfPanels ? null : section.querySelector('input:not([type=hidden]):not([type=radio]), select, textarea');
  const heading = section.querySelector('h1');
  const target = first || heading;
  if (target === heading) heading.setAttribute('tabindex', '-1');
  target.focus();
}

/** A message for the whole page; errors are announced and take the focus. */
export function say(text, kind = 'error') {
  const m = $('message');
  m.replaceChildren();
  m.className = '';
  if (!text) return;
  m.className = `notice ${kind}`;
  m.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  m.textContent = text;
  if (kind === 'error') { m.setAttribute('tabindex', '-1'); m.focus(); }
}

/** Removes the field errors of a form. */
export function clearErrors(form) {
  for (const e of form.querySelectorAll('.field-error')) e.remove();
  for (const i of form.querySelectorAll('[aria-invalid]')) { i.removeAttribute('aria-invalid'); i.removeAttribute('aria-errormessage'); }
}

/** Puts an error beside its field and focuses the field; without one, a page message. */
export function fieldError(form, name, text) {
  const input = name && form.querySelector(`[name="${name}"]`);
  if (!input) { say(text); return; }
  const id = `${input.id || name}-error`;
  const p = h('p', { class: 'field-error', id }, text);
  input.closest('.field').append(p);
  input.setAttribute('aria-invalid', 'true');
  input.setAttribute('aria-errormessage', id);
  input.focus();
}

/** Asks before a destructive step; resolves true when confirmed. */
export function confirmStep(text, confirmLabel = 'Confirm') {
  const dialog = $('confirm-dialog');
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = confirmLabel;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

/** Empties every form and every place that showed a secret (codes, TOTP secret). */
export function forgetSecrets() {
  for (const f of document.querySelectorAll('form')) { f.reset(); clearErrors(f); }
  for (const el of document.querySelectorAll('[data-secret]')) el.remove();
}

/** "3 Dec 2026, 14:05" in the reader's locale. */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

const EVENT_WORDS = {
  otp_verified: 'Sign-in code accepted',
  otp_failed: 'Wrong sign-in code',
  otp_resent: 'New sign-in code sent',
  mfa_totp_enabled: 'Authenticator app turned on',
  mfa_totp_enrolment_started: 'Authenticator app set-up started',
  mfa_totp_disabled: 'Authenticator app turned off',
  mfa_verified: 'Second step passed',
  login_password_verified: 'Password accepted at sign-in',
  mfa_verify_failed: 'Wrong second-step code',
  mfa_recovery_code_used: 'Recovery code used',
  mfa_recovery_codes_regenerated: 'New recovery codes made',
  reauth: 'Password confirmed for a sensitive change',
  reauth_failed: 'Wrong password when confirming a change',
  refresh_token_reuse: 'A used session token came back (the session was ended)',
  new_device_alert_sent: 'New-device alert emailed',
  new_device_reported: '“This wasn’t me” reported',
  team_security_policy_changed: 'Team security policy changed',
  concurrent_login_requested: 'Sign-in waiting for approval',
  concurrent_login_approved: 'Sign-in approved',
  concurrent_login_denied: 'Sign-in denied',
  concurrent_login_cancelled: 'Waiting sign-in cancelled',
  passkey_registered: 'Passkey added',
  passkey_renamed: 'Passkey renamed',
  passkey_deleted: 'Passkey deleted',
  passkey_login_verified: 'Signed in with a passkey',
  passkey_login_failed: 'Passkey not accepted',
  profile_name_changed: 'Name changed',
  trusted_device_forgotten: 'Trusted device forgotten',
  trusted_devices_forgotten: 'All trusted devices forgotten',
  logout: 'Signed out',
  logout_all: 'Signed out everywhere',
  login_succeeded: 'Signed in',
  login_failed: 'Wrong password at sign-in',
  login_rate_limited: 'Sign-in paused after too many attempts',
  user_registered: 'Account created',
};

/** "email_verified" → "Email verified" (a few events have their own words) */
export function eventWords(event) {
  if (EVENT_WORDS[event]) return EVENT_WORDS[event];
  const s = String(event || '').replace(/[_.]/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** A labelled data table. */
export function table(caption, headers, rows) {
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('caption', { class: 'sr-only' }, caption),
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c) => h('td', {}, c)))))));
}
