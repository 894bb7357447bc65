// The public API, called with the session cookies (credentials: 'include') and the CSRF
// cookie sent back in X-CSRF-Token. An expired access token is refreshed once (one refresh at
// a time for the whole page); a step-up refusal asks for the password and repeats the call.
'use strict';

export const API = '/api/v1';

export function csrf() {
  const c = document.cookie.split('; ').find((x) => x.startsWith('mbpanel_csrf='));
  return c ? decodeURIComponent(c.slice('mbpanel_csrf='.length)) : '';
}

let refreshing = null;
let reauthHandler = null;
let sessionLost = () => {};

export function onReauth(handler) { reauthHandler = handler; }
export function onSessionLost(handler) { sessionLost = handler; }

/** POST /auth/refresh, shared by every caller that needs it at the same moment. */
export function refresh() {
  if (!refreshing) {
    refreshing = fetch(API + '/auth/refresh', {
      method: 'POST', credentials: 'include', headers: { 'X-CSRF-Token': csrf() },
    }).then((r) => r.ok).catch(() => false).finally(() => { refreshing = null; });
  }
  return refreshing;
}

const NO_REFRESH = new Set(['/auth/refresh', '/auth/login', '/auth/otp/verify', '/auth/otp/resend',
  '/auth/session-exchange', '/auth/mfa/verify', '/auth/mfa/webauthn/begin', '/auth/mfa/webauthn/finish',
  '/auth/concurrent-login/cancel', '/auth/register', '/auth/verify-email',
  '/auth/verify-email/resend', '/auth/password-reset/request', '/auth/password-reset/confirm',
  '/invites/preview', '/auth/concurrent-login/email-decision']);

/**
 * Calls the API. Answers { status, ok, data, retryAfter } and never throws: a network
 * failure is status 0.
 */
export async function call(method, path, body, options = {}) {
  const headers = { 'X-CSRF-Token': csrf() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(API + path, {
      method, credentials: 'include', headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    return { status: 0, ok: false, data: { detail: 'The server cannot be reached. Check your connection and try again.' } };
  }
  const data = r.status === 204 ? {} : await r.json().catch(() => ({}));
  const answer = { status: r.status, ok: r.ok, data, retryAfter: Number(r.headers.get('Retry-After')) || 0 };
  if (r.status === 401 && !options.noRefresh && !NO_REFRESH.has(path)) {
    if (await refresh()) return call(method, path, body, { ...options, noRefresh: true });
    sessionLost();
  }
  if (r.status === 403 && data.code === 'reauth_required' && reauthHandler && !options.noReauth) {
    if (await reauthHandler()) return call(method, path, body, { ...options, noReauth: true });
  }
  return answer;
}

/** A wait in plain words: "2 minutes", "30 seconds". */
export function waitWords(seconds) {
  if (seconds >= 90) return `${Math.ceil(seconds / 60)} minutes`;
  if (seconds >= 60) return '1 minute';
  return `${Math.max(1, seconds)} second${seconds === 1 ? '' : 's'}`;
}

const PLAIN = {
  invalid_credentials: 'The email or password is not right.',
  email_not_verified: 'Verify your email address first: open the link we sent you. You can ask for a new link below.',
  preauth_expired: 'This sign-in has expired. Sign in again.',
  otp_attempts_exceeded: 'Too many wrong codes. Sign in again to get a new code.',
  otp_not_pending: 'This sign-in does not wait for a code any more. Sign in again.',
  concurrent_login_denied: 'This sign-in was denied from your other session.',
  token_invalid: 'This link has expired or was already used.',
  csrf_mismatch: 'Your page was out of date. Reload it and try again.',
  not_authenticated: 'Your session has ended. Sign in again.',
  session_expired: 'Your session has ended. Sign in again.',
  not_member: 'You are not a member of this team.',
  invite_email_mismatch: 'This invitation was sent to another email address. Sign in with that address to accept it.',
  already_member: 'You are already a member of this team.',
  self_approval_forbidden: 'A sign-in cannot approve itself. Approve it from a session that was already signed in.',
  already_decided: 'This request was already decided.',
  approval_not_found: 'This request has expired.',
  service_unavailable: 'The service is temporarily unavailable. Try again in a minute.',
  virtuozzo_refresh_failed: 'Virtuozzo did not accept the stored credentials. Check them and try again.',
  virtuozzo_not_configured: 'Virtuozzo is not configured on this server.',
  owner_only: 'Only the team Owner can do this.',
  reauth_required: 'Confirm your password to make this change.',
  reauth_failed: 'That password or code is not right.',
  mfa_required_by_team: 'This team asks every member to use two-step sign-in. Set it up on your account page first.',
  mfa_not_pending: 'This sign-in does not wait for a second step any more. Sign in again.',
  password_too_weak: 'This password is too easy to guess. Choose a longer or less common one.',
  internal_error: 'Something went wrong on our side. Try again.',
};

/** The message a person reads for a failed call: plain words, never a machine code. */
export function plain(r) {
  const code = r.data && r.data.code;
  if (r.status === 429) {
    return `Too many attempts. Try again in ${waitWords(r.retryAfter || 60)}.`;
  }
  if (code === 'otp_invalid') {
    const left = r.data.attempts_remaining;
    return `That code is not right. ${left} attempt${left === 1 ? '' : 's'} left.`;
  }
  if (code === 'passkey_invalid') {
    const left = r.data.attempts_remaining;
    return left === undefined || left === null ? 'That passkey was not accepted. Try again.'
      : `That passkey was not accepted. ${left} attempt${left === 1 ? '' : 's'} left.`;
  }
  if (code === 'missing_permission') return 'Your role in this team does not allow this.';
  // The server's email checks speak in lower-case fragments ("email must contain @").
  if (code === 'validation_error' && r.data.field === 'email' && /^email /.test(r.data.detail || '')) {
    return 'Enter a valid email address, such as name@example.com.';
  }
  if (code && PLAIN[code]) return PLAIN[code];
  if (r.status === 0 || !r.data || !r.data.detail) return 'Something went wrong. Try again.';
  // Validation and other answers carry a human sentence.
  return r.data.detail;
}
