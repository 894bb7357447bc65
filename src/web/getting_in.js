// Getting in: sign in, the emailed code, the second factor, choosing a team, waiting for
// approval (live, with cancel), creating an account and asking again for its link.
'use strict';

import { call, plain } from './api.js';
import { $, show, say, clearErrors, fieldError, forgetSecrets } from './dom.js';
import * as webauthn from './webauthn.js';

let flow = null; // { preauth, teams, email } while a sign-in is under way
let ctx = null;
let waitTimer = null;

export function pendingSignIn() { return flow !== null; }

/** Forgets the sign-in under way (its pre-auth token and any waiting). */
export function abandonSignIn() {
  flow = null;
  if (waitTimer) clearTimeout(waitTimer);
  waitTimer = null;
}

/** Back to an empty sign-in form, with the email kept when given (never the password). */
export function toSignIn(message, kind = 'error', email = '') {
  abandonSignIn();
  forgetSecrets();
  if (location.pathname !== '/') history.pushState({}, '', '/');
  show('signin');
  if (email) { $('signin-email').value = email; $('signin-password').focus(); }
  if (message) say(message, kind);
}

function fail(form, r) {
  const field = r.data && r.data.field;
  const text = plain(r);
  if (field && form.querySelector(`[name="${field}"]`)) fieldError(form, field, text);
  else say(text);
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  say('');
  const email = form.email.value.trim();
  const password = form.password.value;
  if (!email) return fieldError(form, 'email', 'Enter your email address.');
  if (!password) return fieldError(form, 'password', 'Enter your password.');
  const r = await call('POST', '/auth/login', { email, password });
  form.password.value = '';
  if (!r.ok) {
    if (r.data.code === 'email_not_verified') {
      show('check-email');
      $('check-email-text').textContent = 'Your email address is not verified yet. Open the link we sent you, or ask for a new one.';
      $('resend-email').value = email;
      say(plain(r));
      return;
    }
    form.email.value = email;
    return fail(form, r);
  }
  form.reset();
  flow = { preauth: r.data.preauth_token, teams: r.data.teams || [], email };
  if (r.data.mfa_required) return showMfa(r.data.mfa_methods || ['totp']);
  if (r.data.otp_required) return show('otp');
  chooseTeam();
}

/** A refusal that ends the sign-in under way sends the person back to the sign-in form. */
function endsSignIn(r) {
  return ['preauth_expired', 'otp_attempts_exceeded', 'otp_not_pending', 'mfa_not_pending', 'concurrent_login_denied'].includes(r.data.code);
}

async function verifyCode(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const code = form.code.value.trim();
  if (!/^[0-9]{6}$/.test(code)) return fieldError(form, 'code', 'Enter the 6 digits from the email.');
  const r = await call('POST', '/auth/otp/verify', { preauth_token: flow && flow.preauth, code });
  form.code.value = '';
  if (!r.ok) {
    if (endsSignIn(r)) return toSignIn(plain(r), 'error', flow && flow.email);
    return fieldError(form, 'code', plain(r));
  }
  chooseTeam();
}

async function resendCode() {
  const form = $('otp-form');
  clearErrors(form);
  const r = await call('POST', '/auth/otp/resend', { preauth_token: flow && flow.preauth });
  if (r.ok) { say('We have sent a new code. The previous one no longer works.', 'success'); $('otp-code').focus(); return; }
  if (endsSignIn(r)) return toSignIn(plain(r), 'error', flow && flow.email);
  say(plain(r));
}

function showMfa(methods) {
  const form = $('mfa-form');
  let first = null;
  for (const radio of form.querySelectorAll('input[name=method]')) {
    const offered = methods.includes(radio.value);
    radio.closest('label').hidden = !offered;
    radio.checked = false;
    if (offered && !first) first = radio;
  }
  if (first) first.checked = true;
  const passkey = methods.includes('webauthn');
  $('mfa-passkey').hidden = !passkey;
  $('mfa-or').hidden = !first;
  form.hidden = !first;
  show('mfa');
  if (passkey) $('mfa-passkey-go').focus();
}

/** The passkey as the second factor: the server's challenge, signed by the authenticator. */
async function verifyPasskey() {
  if (!flow) return toSignIn('');
  say('');
  const button = $('mfa-passkey-go');
  button.disabled = true;
  try {
    const begin = await call('POST', '/auth/mfa/webauthn/begin', { preauth_token: flow.preauth });
    if (!begin.ok) {
      if (endsSignIn(begin)) return toSignIn(plain(begin), 'error', flow.email);
      return say(plain(begin));
    }
    let credential;
    try {
      credential = await webauthn.get(begin.data.options);
    } catch (e) {
      return say(webauthn.failureWords(e));
    }
    const r = await call('POST', '/auth/mfa/webauthn/finish', { preauth_token: flow.preauth, credential });
    if (!r.ok) {
      if (endsSignIn(r)) return toSignIn(plain(r), 'error', flow && flow.email);
      return say(plain(r));
    }
    chooseTeam();
  } finally {
    button.disabled = false;
  }
}

async function verifyMfa(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const method = (form.querySelector('input[name=method]:checked') || {}).value || 'totp';
  const code = form.code.value.trim();
  if (!code) return fieldError(form, 'code', 'Enter the code.');
  // A mistyped app code costs no attempt (the app shows 6 digits, sometimes as "123 456").
  if (method === 'totp' && !/^[0-9]{6}$/.test(code.replace(/\s/g, ''))) {
    return fieldError(form, 'code', 'Enter the 6 digits from your authenticator app.');
  }
  const r = await call('POST', '/auth/mfa/verify', { preauth_token: flow && flow.preauth, method, code });
  form.code.value = '';
  if (!r.ok) {
    if (endsSignIn(r)) return toSignIn(plain(r), 'error', flow && flow.email);
    return fieldError(form, 'code', plain(r));
  }
  chooseTeam();
}

function chooseTeam() {
  if (flow.teams.length <= 1) return exchange(flow.teams[0] && flow.teams[0].id);
  const select = $('team-select');
  select.replaceChildren(...flow.teams.map((t) => new Option(`${t.name} (${t.role})`, t.id)));
  show('team-choice');
}

async function exchange(teamId) {
  if (!flow) return toSignIn('');
  const body = { preauth_token: flow.preauth };
  if (teamId) body.team_id = Number(teamId);
  flow.teamId = teamId;
  const r = await call('POST', '/auth/session-exchange', body);
  if (r.ok) { abandonSignIn(); return ctx.enterApp(); }
  if (r.status === 423) return waitForApproval(r.data.token);
  toSignIn(plain(r), 'error', flow && flow.email);
}

function waitForApproval(token) {
  flow.approvalToken = token;
  if ($('waiting').hidden) show('waiting');
  $('waiting-status').textContent = 'Waiting for your other session to approve…';
  const poll = async () => {
    if (!flow) return;
    const r = await call('GET', `/auth/concurrent-login/${encodeURIComponent(token)}`);
    if (!flow) return;
    const status = r.ok ? r.data.status : (r.status === 404 ? 'expired' : 'unknown');
    if (status === 'pending' || status === 'unknown') { waitTimer = setTimeout(poll, 1500); return; }
    if (status === 'approved') return exchange(flow.teamId);
    const words = status === 'denied' ? 'This sign-in was denied from your other session.' : 'The request expired before anyone approved it. Sign in again.';
    toSignIn(words, 'error', flow.email);
  };
  waitTimer = setTimeout(poll, 1000);
}

/** Withdraws the waiting request on the server, so it leaves the other session's list. */
async function cancelWaiting() {
  const waiting = flow;
  abandonSignIn();
  if (waiting && waiting.approvalToken) {
    const r = await call('POST', '/auth/concurrent-login/cancel', { token: waiting.approvalToken, preauth_token: waiting.preauth });
    if (r.status === 409) {
      return toSignIn('Your other session had already answered this sign-in, so it could not be cancelled. Sign in again if you need to.', 'error', waiting.email);
    }
  }
  toSignIn('The sign-in was cancelled.', 'success', waiting && waiting.email);
}

async function register(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const name = form.name.value.trim();
  const email = form.email.value.trim();
  const password = form.password.value;
  if (!name) return fieldError(form, 'name', 'Enter your name.');
  if (!email) return fieldError(form, 'email', 'Enter your email address.');
  if (password.length < 8) return fieldError(form, 'password', 'Use at least 8 characters.');
  const r = await call('POST', '/auth/register', { name, email, password });
  form.password.value = '';
  if (!r.ok) return fail(form, r);
  form.reset();
  show('check-email');
  $('check-email-text').textContent = `We have sent a link to ${email}. Open it to verify your email address, then sign in.`;
  $('resend-email').value = email;
}

async function resendVerification(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const email = form.email.value.trim();
  if (!email) return fieldError(form, 'email', 'Enter your email address.');
  const r = await call('POST', '/auth/verify-email/resend', { email });
  if (!r.ok) return fail(form, r);
  say('If this address has an unverified account, we have sent a new link to it.', 'success');
}

export function init(context) {
  ctx = context;
  $('signin-form').addEventListener('submit', signIn);
  $('otp-form').addEventListener('submit', verifyCode);
  $('otp-resend').addEventListener('click', resendCode);
  $('mfa-form').addEventListener('submit', verifyMfa);
  $('mfa-passkey-go').addEventListener('click', verifyPasskey);
  for (const b of document.querySelectorAll('.another-account')) {
    b.addEventListener('click', () => toSignIn(''));
  }
  $('team-form').addEventListener('submit', (e) => { e.preventDefault(); exchange($('team-select').value); });
  $('waiting-cancel').addEventListener('click', cancelWaiting);
  $('register-form').addEventListener('submit', register);
  $('resend-verification-form').addEventListener('submit', resendVerification);
}
