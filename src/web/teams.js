// The team pages: members (change role, remove), roles and their permissions, invites
// (create, list, revoke), the team's audit log, Virtuozzo credentials and the security policy
// for Owners; creating a team. Each panel shows only when the person's role allows it.
'use strict';

import { call, plain } from './api.js';
import { $, h, say, clearErrors, fieldError, confirmStep, when, eventWords, table } from './dom.js';
import { deviceName } from './device.js';

let ctx = null;
let me = null;
let roles = [];
let catalogue = [];

const can = (slug) => me && me.permissions.includes(slug);

function panel(id, title, ...body) {
  return h('section', { class: 'card', 'aria-labelledby': `${id}-h`, id },
    h('h2', { id: `${id}-h` }, title), ...body);
}

export async function render(profile, teamId) {
  me = profile;
  const panels = $('team-panels');
  panels.replaceChildren();
  if (teamId && Number(teamId) !== me.team.id) {
    $('team-title').textContent = 'Another team';
    $('team-role').textContent = `You are working in ${me.team.name}. Use the team switcher above to open another team.`;
    return;
  }
  $('team-title').textContent = me.team.name;
  $('team-role').textContent = `Your role: ${me.role.name}`;
  const [r, p] = await Promise.all([
    can('team.members.read') ? call('GET', `/teams/${me.team.id}/roles`) : null,
    call('GET', '/permissions'),
  ]);
  roles = r && r.ok ? r.data.roles : [];
  catalogue = p.ok ? p.data.permissions : [];
  const tasks = [];
  if (can('team.members.read')) tasks.push(members(panels));
  if (can('team.members.read')) rolesPanel(panels);
  if (can('team.members.invite')) tasks.push(invites(panels));
  if (can('audit.read')) tasks.push(audit(panels));
  if (can('environments.read')) tasks.push(virtuozzo(panels));
  if (me.role.name === 'Owner') tasks.push(securityPolicy(panels));
  if (!panels.children.length) panels.append(h('p', { class: 'muted' }, 'Your role in this team shows no team settings.'));
  await Promise.all(tasks);
}

const rerender = () => ctx.refreshTeam();

function roleSelect(id, label, selected, assignable = true) {
  const options = roles.map((r) => h('option', { value: r.id, selected: r.id === selected }, r.name));
  return h('div', { class: 'field' }, h('label', { for: id }, label),
    h('select', { id, name: 'role_id', disabled: !assignable }, options));
}

async function members(panels) {
  const box = panel('members', 'Members');
  panels.append(box);
  const r = await call('GET', `/teams/${me.team.id}/members`);
  if (!r.ok) { box.append(h('p', {}, plain(r))); return; }
  const list = h('ul', { class: 'rows' });
  for (const m of r.data.members) {
    const self = m.user_id === me.user.id;
    const li = h('li', { class: 'row' }, h('div', { class: 'row-main' },
      h('strong', {}, m.name || m.email), self ? h('span', { class: 'badge' }, 'You') : null,
      h('span', { class: 'muted' }, `${m.email} · ${m.role.name}`)));
    if (can('team.members.manage')) {
      const form = h('form', { class: 'inline', novalidate: true },
        roleSelect(`member-role-${m.user_id}`, `Role for ${m.email}`, m.role.id),
        h('button', { type: 'submit', class: 'btn secondary small' }, `Change role of ${m.email}`));
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        clearErrors(form);
        const roleId = Number(form.role_id.value);
        const c = await call('PATCH', `/teams/${me.team.id}/members/${m.user_id}`, { role_id: roleId });
        if (!c.ok) return fieldError(form, 'role_id', plain(c));
        await rerender();
        say(`${m.email} is now ${(roles.find((x) => x.id === roleId) || {}).name}.`, 'success');
      });
      li.append(form);
      li.append(h('button', {
        type: 'button', class: 'btn danger small',
        onclick: async () => {
          const who = m.name || m.email;
          if (!await confirmStep(`Remove ${who} from ${me.team.name}? Their sessions in this team end.`, 'Remove')) return;
          const d = await call('DELETE', `/teams/${me.team.id}/members/${m.user_id}`);
          if (!d.ok) return say(plain(d));
          await rerender();
          say(`${who} was removed from the team.`, 'success');
        },
      }, `Remove ${m.email}`));
    }
    list.append(li);
  }
  box.append(list);
}

function permissionBoxes(prefix, held) {
  return h('fieldset', { class: 'perms' }, h('legend', {}, 'Permissions'),
    catalogue.map((p) => h('label', { class: 'choice' },
      h('input', { type: 'checkbox', name: 'permissions', value: p.slug, checked: held.includes(p.slug), id: `${prefix}-${p.slug}` }),
      ` ${p.description || p.slug}`)));
}

const checked = (form) => [...form.querySelectorAll('input[name=permissions]:checked')].map((i) => i.value);

function rolesPanel(panels) {
  const box = panel('roles', 'Roles');
  for (const role of roles) {
    const item = h('details', { class: 'role' }, h('summary', {}, role.name, role.builtin ? ' (built in)' : ' (custom)'));
    if (role.builtin || !can('team.roles.manage')) {
      item.append(h('ul', { class: 'plain' }, role.permissions.map((slug) => h('li', {}, (catalogue.find((p) => p.slug === slug) || { description: slug }).description || slug))));
    } else {
      const form = h('form', { novalidate: true }, permissionBoxes(`role-${role.id}`, role.permissions),
        h('button', { type: 'submit', class: 'btn primary small' }, `Save permissions of ${role.name}`));
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        const r = await call('PUT', `/teams/${me.team.id}/roles/${role.id}/permissions`, { permissions: checked(form) });
        if (!r.ok) return say(plain(r));
        await rerender();
        say(`The permissions of ${role.name} were saved.`, 'success');
      });
      item.append(form);
    }
    box.append(item);
  }
  if (can('team.roles.manage')) {
    const form = h('form', { novalidate: true, id: 'role-form' },
      h('h3', {}, 'Add a custom role'),
      h('div', { class: 'field' }, h('label', { for: 'new-role-name' }, 'Role name'), h('input', { id: 'new-role-name', name: 'name', required: true, maxlength: '100' })),
      permissionBoxes('new-role', []),
      h('button', { type: 'submit', class: 'btn primary' }, 'Add role'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      const name = form.name.value.trim();
      if (!name) return fieldError(form, 'name', 'Name the role.');
      const r = await call('POST', `/teams/${me.team.id}/roles`, { name, permissions: checked(form) });
      if (!r.ok) return r.data.field === 'name' ? fieldError(form, 'name', plain(r)) : say(plain(r));
      await rerender();
      say(`The role ${name} was added.`, 'success');
    });
    box.append(form);
  }
  panels.append(box);
}

async function invites(panels) {
  const box = panel('invites', 'Invites');
  panels.append(box);
  const form = h('form', { novalidate: true, id: 'invite-form' },
    h('div', { class: 'field' }, h('label', { for: 'invite-email' }, 'Email to invite'), h('input', { id: 'invite-email', name: 'email', type: 'email', required: true })),
    roleSelect('invite-role', 'Role for the new member', (roles.find((r) => r.name === 'Member') || roles[0] || {}).id),
    h('button', { type: 'submit', class: 'btn primary' }, 'Send invite'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const email = form.email.value.trim();
    if (!email) return fieldError(form, 'email', 'Enter the email address to invite.');
    const r = await call('POST', `/teams/${me.team.id}/invites`, { email, role_id: Number(form.role_id.value) });
    if (!r.ok) return r.data.field ? fieldError(form, r.data.field, plain(r)) : fieldError(form, 'email', plain(r));
    await rerender();
    say(`An invitation was sent to ${email}.`, 'success');
  });
  box.append(form);
  const r = await call('GET', `/teams/${me.team.id}/invites`);
  if (!r.ok) { box.append(h('p', {}, plain(r))); return; }
  const list = h('ul', { class: 'rows', id: 'invite-list' });
  for (const i of r.data.invites) {
    const role = (roles.find((x) => x.id === i.role_id) || { name: 'a role' }).name;
    const li = h('li', { class: 'row' }, h('div', { class: 'row-main' }, h('strong', {}, i.email),
      h('span', { class: 'muted' }, `${role} · ${i.status} · sent ${when(i.created_at)}`)));
    if (i.status === 'pending') {
      li.append(h('button', {
        type: 'button', class: 'btn danger small',
        onclick: async () => {
          if (!await confirmStep(`Revoke the invitation of ${i.email}?`, 'Revoke invite')) return;
          const d = await call('DELETE', `/teams/${me.team.id}/invites/${i.id}`);
          if (!d.ok) return say(plain(d));
          await rerender();
          say(`The invitation of ${i.email} was revoked.`, 'success');
        },
      }, `Revoke invite of ${i.email}`));
    }
    list.append(li);
  }
  if (!r.data.invites.length) list.append(h('li', { class: 'muted' }, 'No invitations yet.'));
  box.append(list);
}

async function audit(panels) {
  const box = panel('team-audit', 'Team audit log');
  panels.append(box);
  const r = await call('GET', `/teams/${me.team.id}/audit?limit=50`);
  if (!r.ok) { box.append(h('p', {}, plain(r))); return; }
  const rows = r.data.entries.map((e) => [when(e.at), eventWords(e.event), e.actor ? e.actor.email : '—', deviceName(e.user_agent)]);
  box.append(rows.length ? table('Team audit log', ['When', 'What', 'Who', 'Device'], rows) : h('p', {}, 'Nothing yet.'));
}

async function virtuozzo(panels) {
  const box = panel('virtuozzo', 'Virtuozzo');
  panels.append(box);
  const r = await call('GET', `/teams/${me.team.id}/virtuozzo`);
  const status = r.ok ? r.data : {};
  const words = { active: 'signed in', expired: 'session expired', no_session: 'not signed in yet', not_configured: 'no credentials saved' };
  box.append(h('dl', { class: 'facts' },
    h('dt', {}, 'Account'), h('dd', {}, status.vz_email || 'none saved'),
    h('dt', {}, 'Status'), h('dd', { id: 'vz-status' }, r.ok ? (words[status.status] || String(status.status || '').replace(/_/g, ' ')) : plain(r)),
    h('dt', {}, 'Session valid until'), h('dd', {}, when(status.session_key_expires_at))));
  const owner = me.role.name === 'Owner';
  if (owner && can('virtuozzo.credentials.manage')) {
    const form = h('form', { novalidate: true, id: 'vz-form' },
      h('h3', {}, 'Virtuozzo credentials'),
      h('div', { class: 'field' }, h('label', { for: 'vz-email' }, 'Virtuozzo email'), h('input', { id: 'vz-email', name: 'email', type: 'email', required: true, value: status.vz_email || '' })),
      h('div', { class: 'field' }, h('label', { for: 'vz-password' }, 'Virtuozzo password'), h('input', { id: 'vz-password', name: 'password', type: 'password', autocomplete: 'off', required: true })),
      h('button', { type: 'submit', class: 'btn primary' }, 'Save credentials'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      const email = form.email.value.trim();
      const password = form.password.value;
      form.password.value = '';
      if (!email) return fieldError(form, 'email', 'Enter the Virtuozzo email.');
      if (!password) return fieldError(form, 'password', 'Enter the Virtuozzo password.');
      const s = await call('PUT', `/teams/${me.team.id}/virtuozzo`, { email, password });
      if (!s.ok) return s.data.field ? fieldError(form, s.data.field, plain(s)) : say(plain(s));
      await rerender();
      say('The Virtuozzo credentials were saved (encrypted).', 'success');
    });
    box.append(form);
  }
  if (owner && can('virtuozzo.session.refresh')) {
    box.append(h('p', { class: 'actions' }, h('button', {
      type: 'button', class: 'btn secondary',
      onclick: async () => {
        const s = await call('POST', `/teams/${me.team.id}/virtuozzo/refresh`);
        if (!s.ok) return say(plain(s));
        await rerender();
        say('Signed in to Virtuozzo.', 'success');
      },
    }, 'Sign in to Virtuozzo now')));
  }
}

/** The team security policy (Owner): require a second factor, after a grace period. */
async function securityPolicy(panels) {
  const box = panel('team-security', 'Security policy');
  panels.append(box);
  const r = await call('GET', `/teams/${me.team.id}/security`);
  if (!r.ok) { box.append(h('p', {}, plain(r))); return; }
  const p = r.data;
  const without = p.members_without_mfa || [];
  const state = !p.require_mfa ? 'Members may sign in without two-step sign-in.'
    : p.enforced_at && new Date(p.enforced_at) > new Date()
      ? `Two-step sign-in is required. Members without it are refused from ${when(p.enforced_at)}.`
      : 'Two-step sign-in is required: members without it cannot open this team.';
  box.append(h('p', { id: 'team-security-state' }, state));
  box.append(without.length
    ? h('div', {}, h('p', {}, p.require_mfa ? 'These members have no second factor yet:' : 'If you required it, these members would be blocked until they set it up:'),
      h('ul', { class: 'plain', id: 'members-without-mfa' }, without.map((m) => h('li', {}, m.email))))
    : h('p', { class: 'muted' }, 'Every member has a second factor.'));
  const form = h('form', { novalidate: true, id: 'team-security-form' },
    h('label', { class: 'choice' },
      h('input', { type: 'checkbox', name: 'require_mfa', id: 'require-mfa', checked: p.require_mfa }),
      ' Require two-step sign-in for every member'),
    h('div', { class: 'field' }, h('label', { for: 'grace-days' }, 'Days members have to set it up'),
      h('input', { id: 'grace-days', name: 'grace_days', type: 'number', inputmode: 'numeric', min: '0', max: '365', value: String(p.grace_days ?? 0), 'aria-describedby': 'grace-days-hint' }),
      h('p', { class: 'hint', id: 'grace-days-hint' }, 'From 0 (at once) to 365 days.')),
    h('button', { type: 'submit', class: 'btn primary' }, 'Save security policy'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const raw = form.grace_days.value.trim();
    const days = Number(raw);
    if (raw === '' || !Number.isInteger(days) || days < 0 || days > 365) return fieldError(form, 'grace_days', 'Enter a whole number of days from 0 to 365.');
    const c = await call('PUT', `/teams/${me.team.id}/security`, { require_mfa: form.require_mfa.checked, grace_days: days });
    if (!c.ok) return c.data.field === 'grace_days' ? fieldError(form, 'grace_days', plain(c)) : say(plain(c));
    await rerender();
    say(c.data.require_mfa ? 'The team now requires two-step sign-in.' : 'The team no longer requires two-step sign-in.', 'success');
  });
  box.append(form);
}

export function forget() {
  me = null;
  $('team-panels').replaceChildren();
  $('team-title').textContent = 'Team';
  $('team-role').textContent = '';
}

export function init(context) {
  ctx = context;
  $('create-team-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = event.target;
    clearErrors(form);
    const name = form.name.value.trim();
    if (!name) return fieldError(form, 'name', 'Name the team.');
    const r = await call('POST', '/teams', { name });
    if (!r.ok) return fieldError(form, 'name', plain(r));
    form.reset();
    await ctx.loadTeams();
    // The new team is chosen in the switcher and the focus is there: "Switch team" is next.
    const switcher = $('team-switcher');
    if ([...switcher.options].some((o) => Number(o.value) === r.data.id)) switcher.value = String(r.data.id);
    switcher.focus();
    say(`The team ${name} was created. It is chosen in the team switcher above: press "Switch team" to open it.`, 'success');
  });
}
