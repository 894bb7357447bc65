// The pages emailed links open: verify the email, choose a new password, decide a sign-in,
// join a team. Opening one changes nothing (mail scanners follow links); the buttons POST.
'use strict';

import { call, plain } from './api.js';
import { $, h, show, say, clearErrors, fieldError, forgetSecrets } from './dom.js';

let ctx = null;
const INVITE_KEY = 'mbpanel_invite';

const token = () => new URLSearchParams(location.search).get('token') || '';

export function showVerify() {
  show('verify');
  $('verify-go').hidden = false;
}

async function verify() {
  const r = await call('POST', '/auth/verify-email', { token: token() });
  if (r.ok) {
    $('verify-go').hidden = true;
    history.replaceState({}, '', '/');
    show('signin', { keepMessage: true });
    say('Your email is verified. You can sign in now.', 'success');
    return;
  }
  show('check-email');
  $('check-email-text').textContent = 'This verification link has expired or was already used. If your email is not verified yet, ask for a new link.';
  say(plain(r));
}

export function showReset() { show('reset'); }

async function reset(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const password = form.password.value;
  if (password.length < 8) return fieldError(form, 'password', 'Use at least 8 characters.');
  if (password !== form.confirm.value) { form.confirm.value = ''; return fieldError(form, 'confirm', 'The two passwords are not the same.'); }
  const r = await call('POST', '/auth/password-reset/confirm', { token: token(), password });
  form.reset();
  if (!r.ok) {
    if (r.data.field === 'password') return fieldError(form, 'password', plain(r));
    return say(plain(r));
  }
  ctx.signedOut();
  history.replaceState({}, '', '/');
  show('signin', { keepMessage: true });
  say('Your password was changed and every session was signed out. Sign in with the new password.', 'success');
}

export function showLinkDecision() {
  show('link-decision');
  const suggested = new URLSearchParams(location.search).get('action');
  for (const id of ['link-approve', 'link-deny']) $(id).hidden = false;
  if (suggested === 'deny') $('link-deny').focus();
  else $('link-approve').focus();
}

async function decide(action) {
  const r = await call('POST', '/auth/concurrent-login/email-decision', { token: token(), action });
  for (const id of ['link-approve', 'link-deny']) $(id).hidden = true;
  if (r.ok) say(action === 'approve' ? 'The sign-in was approved.' : 'The sign-in was denied. If it was not you, change your password.', 'success');
  else say(plain(r));
}

/** The new-device alert's page: "This wasn't me" secures the account. */
export function showNewDevice() {
  show('new-device');
  $('new-device-go').hidden = false;
}

async function notMe() {
  const r = await call('POST', '/auth/new-device/not-me', { token: token() });
  $('new-device-go').hidden = true;
  if (r.ok) {
    history.replaceState({}, '', '/');
    ctx.signedOut('Your account is secured: every session was signed out and every device forgotten. Check your email to choose a new password.');
  } else {
    say(plain(r));
  }
}

/** The invite page: names team, role and inviter; accepts when signed in, else leads in. */
export async function showInvite(signedIn) {
  show('invite');
  const t = token();
  for (const id of ['invite-accept', 'invite-signin', 'invite-register']) $(id).hidden = true;
  const r = await call('POST', '/invites/preview', { token: t });
  if (!r.ok) {
    sessionStorage.removeItem(INVITE_KEY);
    $('invite-text').textContent = r.data.code === 'token_invalid'
      ? 'This invitation has expired, was revoked or was already used. Ask the team for a new one.'
      : plain(r);
    return;
  }
  const p = r.data;
  $('invite-text').replaceChildren(
    h('strong', {}, p.inviter.name), ' invited you to join ', h('strong', {}, p.team.name),
    ' as ', h('strong', {}, p.role.name), `. The invitation is valid until ${new Date(p.expires_at).toLocaleDateString(undefined, { dateStyle: 'medium' })}.`);
  if (signedIn) {
    $('invite-accept').hidden = false;
    $('invite-accept').focus();
  } else {
    sessionStorage.setItem(INVITE_KEY, t);
    $('invite-text').append(' Sign in with the address the invitation was sent to, or create an account with it.');
    $('invite-signin').hidden = false;
    $('invite-register').hidden = false;
    $('invite-signin').focus();
  }
}

/** After sign-in: an invite that led here is shown again (to accept). */
export function inviteWaiting() {
  const t = sessionStorage.getItem(INVITE_KEY);
  return t ? `/invite?token=${encodeURIComponent(t)}` : null;
}

async function accept() {
  const r = await call('POST', '/invites/accept', { token: token() });
  $('invite-accept').hidden = true;
  sessionStorage.removeItem(INVITE_KEY);
  if (!r.ok) return say(plain(r));
  const switched = await call('POST', '/auth/switch-team', { team_id: Number(r.data.team_id) });
  await ctx.go(switched.ok ? `/teams/${r.data.team_id}` : '/teams');
  say('You joined the team.', 'success');
}

export function init(context) {
  ctx = context;
  $('verify-go').addEventListener('click', verify);
  $('reset-form').addEventListener('submit', reset);
  $('link-approve').addEventListener('click', () => decide('approve'));
  $('link-deny').addEventListener('click', () => decide('deny'));
  $('invite-accept').addEventListener('click', accept);
  $('new-device-go').addEventListener('click', notMe);
  $('forgot-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = event.target;
    clearErrors(form);
    const email = form.email.value.trim();
    if (!email) return fieldError(form, 'email', 'Enter your email address.');
    const r = await call('POST', '/auth/password-reset/request', { email });
    if (!r.ok) return fieldError(form, 'email', plain(r));
    forgetSecrets();
    say(`If ${email} has an account, we have sent a link to choose a new password. It works once.`, 'success');
  });
}
