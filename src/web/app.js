// The mbpanel web UI: a small single-page app of plain JS modules. Every page has its own
// address (history API); the server answers each with this same app. It uses the public API
// with the session cookies (credentials: 'include') and the CSRF header (see ui/api.js).
'use strict';

import { call, plain, onReauth, onSessionLost } from './ui/api.js';
import { $, show, say, forgetSecrets, clearErrors, fieldError } from './ui/dom.js';
import * as gettingIn from './ui/getting_in.js';
import * as links from './ui/links.js';
import * as account from './ui/account.js';
import * as teams from './ui/teams.js';

let me = null;

async function loadMe() {
  const r = await call('GET', '/auth/me');
  me = r.ok ? r.data : null;
  return me;
}

async function loadTeams() {
  const r = await call('GET', '/teams');
  if (!r.ok || !me) return;
  $('team-switcher').replaceChildren(...(r.data.teams || []).map((t) => {
    const o = new Option(`${t.name} (${t.role})`, t.id);
    o.selected = t.id === me.team.id;
    return o;
  }));
}

function signedInChrome(on) {
  $('nav').hidden = !on;
}

/** Shows the page for the current address. */
async function route() {
  const path = location.pathname;
  if (path === '/verify-email') return links.showVerify();
  if (path === '/reset-password') return links.showReset();
  if (path === '/concurrent-login') return links.showLinkDecision();
  if (path === '/new-device') return links.showNewDevice();
  if (path === '/register') { signedInChrome(false); return show('register'); }
  if (path === '/forgot-password') { signedInChrome(false); return show('forgot'); }
  if (gettingIn.pendingSignIn() && path === '/') return undefined;
  const signedIn = await loadMe();
  signedInChrome(Boolean(signedIn));
  if (path === '/invite') return links.showInvite(Boolean(signedIn));
  if (!signedIn) {
    account.forget();
    teams.forget();
    if (path !== '/') history.replaceState({}, '', '/');
    return show('signin');
  }
  await loadTeams();
  account.listen();
  const teamMatch = path.match(/^\/teams(?:\/(\d+))?\/?$/);
  if (teamMatch) {
    show('teams');
    return teams.render(me, teamMatch[1]);
  }
  // `/security` is the account page opened at its security panel.
  if (path !== '/account' && path !== '/security') history.replaceState({}, '', '/account');
  show('account');
  await account.render(me);
  if (path === '/security') {
    // Opened at its security panel: the focus too, so keyboard and screen-reader use start there.
    const heading = $('security-h');
    heading.setAttribute('tabindex', '-1');
    heading.scrollIntoView();
    heading.focus();
  }
  return undefined;
}

async function go(path) {
  history.pushState({}, '', path);
  await route();
}

/** A session now exists: continue where the person was going. */
async function enterApp() {
  forgetSecrets();
  const invite = links.inviteWaiting();
  await go(invite || '/account');
}

/** Everything the page knew about the signed-in person goes; the sign-in form shows empty. */
function signedOut(message, kind = 'success') {
  account.forget();
  teams.forget();
  $('team-switcher').replaceChildren();
  me = null;
  signedInChrome(false);
  gettingIn.toSignIn(message, kind);
}

async function signOut(everywhere) {
  account.stopListening();
  await call('POST', everywhere ? '/auth/logout-all' : '/auth/logout');
  signedOut(everywhere ? 'You were signed out on every device.' : 'You were signed out.');
}

function sessionEnded(message) {
  if (!me) return;
  signedOut(message, 'error');
}

/** Step-up: asks for the password, renews the session's authentication, answers whether it worked. */
function reauth() {
  const dialog = $('reauth-dialog');
  const form = $('reauth-form');
  clearErrors(form);
  form.reset();
  dialog.showModal();
  return new Promise((resolve) => {
    const done = (ok) => {
      form.reset();
      form.removeEventListener('submit', submit);
      $('reauth-cancel').removeEventListener('click', cancel);
      dialog.close();
      resolve(ok);
    };
    const cancel = () => done(false);
    const submit = async (event) => {
      event.preventDefault();
      clearErrors(form);
      const password = form.password.value;
      if (!password) return fieldError(form, 'password', 'Enter your password.');
      const r = await call('POST', '/auth/reauth', { password }, { noReauth: true });
      form.password.value = '';
      if (r.ok) return done(true);
      return fieldError(form, 'password', ['invalid_credentials', 'reauth_failed'].includes(r.data.code) ? 'That password is not right.' : plain(r));
    };
    form.addEventListener('submit', submit);
    $('reauth-cancel').addEventListener('click', cancel);
    dialog.addEventListener('cancel', () => done(false), { once: true });
  });
}

document.addEventListener('DOMContentLoaded', () => {
  const ctx = {
    go, enterApp, signedOut, signOut, sessionEnded, loadTeams,
    refreshTeam: async () => { await loadMe(); if (me) await teams.render(me); },
  };
  gettingIn.init(ctx);
  links.init(ctx);
  account.init(ctx);
  teams.init(ctx);
  onReauth(reauth);
  onSessionLost(() => sessionEnded('Your session has ended. Sign in again.'));

  // Links inside the app change the address without reloading the page.
  document.addEventListener('click', (event) => {
    const a = event.target.closest('a[data-route]');
    if (!a || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    if (a.id === 'invite-signin' || a.id === 'invite-register') gettingIn.abandonSignIn();
    go(a.getAttribute('href'));
  });
  window.addEventListener('popstate', route);

  // The team switcher switches only when its button is pressed (never on arrow keys).
  $('switch-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const teamId = Number($('team-switcher').value);
    if (me && teamId === me.team.id) return say('You are already working in this team.', 'success');
    const r = await call('POST', '/auth/switch-team', { team_id: teamId });
    if (!r.ok) return say(plain(r));
    await go(`/teams/${teamId}`);
    say(`You are now working in ${me.team.name}.`, 'success');
  });
  $('logout').addEventListener('click', () => signOut(false));
  route();
});
