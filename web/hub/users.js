// Users, for admins: create, change the role, disable or enable, set a new password, delete;
// and the audit log below, newest first, paged back on request.
import { t, dateTime } from './i18n.js';
import { api } from './api.js';
import { h, table, notice, showError, loadError, dialog, field } from './dom.js';

const ROLES = ['student', 'teacher', 'admin'];
const AUDIT_PAGE = 50;

function roleSelect(attrs, selected) {
  return h('select', attrs, ROLES.map((r) => h('option', { value: r, selected: r === selected }, t(`role.${r}`))));
}

export function mount(root, { me }) {
  const box = h('div', { id: 'users' }, h('p', { class: 'muted' }, t('app.loading')));
  const auditBox = h('div', { id: 'audit' }, h('p', { class: 'muted' }, t('app.loading')));
  let audit = [];

  async function change(u, body, doneKey, vars = {}) {
    try {
      await api('PATCH', `/api/users/${u.id}`, body);
      notice('ok', t(doneKey, { name: u.name, ...vars }));
    } catch (err) {
      showError(err);
    }
    load();
    loadAudit(true);
  }

  async function resetPassword(u) {
    const data = await dialog({ title: t('users.reset_title', { name: u.name }), confirm: t('app.save'),
      body: [field(t('users.password'), { name: 'password', type: 'password', required: true, autocomplete: 'new-password' })] });
    if (data) change(u, { password: data.get('password') }, 'users.reset_done');
  }

  async function remove(u) {
    const ok = await dialog({ title: t('users.delete_title'), confirm: t('wb.delete'), danger: true,
      body: [h('p', {}, t('users.delete_text', { name: u.name }))] });
    if (!ok) return;
    try {
      await api('DELETE', `/api/users/${u.id}`);
      notice('ok', t('users.deleted', { name: u.name }));
    } catch (err) {
      showError(err);
    }
    load();
    loadAudit(true);
  }

  function row(u) {
    const named = (key) => `${t(key)} ${u.name}`;
    const cells = [
      h('span', {}, u.name, u.id === me.id ? h('span', { class: 'muted' }, ` ${t('users.you')}`) : null),
      roleSelect({ 'aria-label': named('users.role'), onchange: (e) => change(u, { role: e.target.value }, 'users.role_changed', { role: t(`role.${e.target.value}`) }) }, u.role),
      h('span', { class: `badge ${u.disabled ? 'status-failed' : 'status-online'}` }, t(u.disabled ? 'users.disabled' : 'users.active')),
      dateTime(u.created_at),
      h('div', { class: 'actions' },
        // no one disables their own account by a slip (the hub keeps its last admin anyway)
        u.id === me.id ? null : h('button', { type: 'button', 'aria-label': named(u.disabled ? 'users.enable' : 'users.disable'),
          onclick: () => change(u, { disabled: !u.disabled }, u.disabled ? 'users.enabled_done' : 'users.disabled_done') },
        t(u.disabled ? 'users.enable' : 'users.disable')),
        h('button', { type: 'button', 'aria-label': named('users.reset'), onclick: () => resetPassword(u) }, t('users.reset')),
        u.id !== me.id ? h('button', { type: 'button', class: 'danger-quiet', 'aria-label': named('wb.delete'), onclick: () => remove(u) }, t('wb.delete')) : null),
    ];
    cells.key = String(u.id);
    return cells;
  }

  async function load() {
    try {
      const users = await api('GET', '/api/users');
      const headers = ['col.name', 'col.role', 'col.status', 'col.created', 'col.actions'].map((k) => t(k));
      box.replaceChildren(table(t('users.title'), headers, users, row));
    } catch (err) {
      box.replaceChildren(loadError(err, load));
    }
  }

  async function loadAudit(fresh) {
    try {
      const before = !fresh && audit.length ? `&before=${audit[audit.length - 1].id}` : '';
      const page = await api('GET', `/api/audit?limit=${AUDIT_PAGE}${before}`);
      audit = fresh ? page : audit.concat(page);
      const headers = ['col.time', 'col.user', 'col.action', 'col.target', 'col.detail', 'col.ip'].map((k) => t(k));
      const rows = audit.length
        ? table(t('audit.title'), headers, audit, (a) => [dateTime(a.at), a.username || t('audit.system'), a.action, a.target, a.detail, a.ip])
        : h('p', { class: 'empty' }, t('audit.empty'));
      const more = h('button', { type: 'button', class: 'more', onclick: () => loadAudit(false) }, t('audit.more'));
      auditBox.replaceChildren(...(page.length === AUDIT_PAGE ? [rows, more] : [rows]));
    } catch (err) {
      auditBox.replaceChildren(loadError(err, () => loadAudit(true)));
    }
  }

  async function create(e) {
    e.preventDefault();
    const f = e.target.elements;
    try {
      const u = await api('POST', '/api/users', { name: f.namedItem('name').value, password: f.namedItem('password').value, role: f.namedItem('role').value });
      notice('ok', t('users.created', { name: u.name }));
      e.target.reset();
    } catch (err) {
      showError(err);
    }
    load();
    loadAudit(true);
  }

  root.append(
    h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, t('users.title')), h('p', { class: 'muted' }, t('users.intro')))),
    h('section', { class: 'panel', 'aria-labelledby': 'new-user-title' },
      h('h2', { id: 'new-user-title' }, t('users.new')),
      h('form', { class: 'grid-form', id: 'create-user', onsubmit: create },
        field(t('users.name'), { name: 'name', required: true, maxlength: 64, autocomplete: 'off' }),
        field(t('users.password'), { name: 'password', type: 'password', required: true, autocomplete: 'new-password' }),
        h('div', { class: 'field' }, h('label', { for: 'new-user-role' }, t('users.role')), roleSelect({ id: 'new-user-role', name: 'role' }, 'student')),
        h('button', { type: 'submit', class: 'primary' }, t('users.create')))),
    box,
    h('section', { class: 'panel', 'aria-labelledby': 'audit-title' }, h('h2', { id: 'audit-title' }, t('audit.title')), auditBox));
  load();
  loadAudit(true);
  return { refresh: load };
}
