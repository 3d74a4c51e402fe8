// Node packs, for admins: the catalog with search and each pack's state, install / update /
// disable / enable / uninstall as queued tasks whose progress comes over /api/events, and a
// restart of the running instances (an instance loads packs when it starts).
import { t } from './i18n.js';
import { api } from './api.js';
import { h, table, notice, showError, loadError, dialog } from './dom.js';

const ACTIONS_BY_STATE = {
  'not-installed': ['install'],
  enabled: ['update', 'disable', 'uninstall'],
  disabled: ['enable', 'uninstall'],
};
const RUNNING = ['online', 'starting', 'offline'];

export function mount(root) {
  let query = '';
  let searchTimer = null;
  const tasks = new Map(); // task id → {id, action, name} of a queued task, until it ends
  const busy = new Set(); // ids of the packs those tasks change
  const endedEarly = new Map(); // task id → its end, when the event beat the POST's answer
  const box = h('div', { id: 'packs' }, h('p', { class: 'muted' }, t('app.loading')));
  const progress = h('p', { id: 'packs-progress', class: 'muted', role: 'status' });

  function stateBadge(state) {
    const cls = state === 'enabled' ? 'status-online' : state === 'disabled' ? 'status-stopped' : 'status-starting';
    return h('span', { class: `badge ${cls}`, 'data-state': state }, t(`packs.state.${state}`));
  }

  function row(pack) {
    const working = busy.has(pack.id);
    const cells = [
      h('div', {}, h('strong', {}, pack.title || pack.id), h('div', { class: 'muted small' }, pack.id)),
      pack.author || t('app.none'),
      pack.version || t('app.none'),
      working ? h('span', { class: 'badge status-starting' }, t('packs.working')) : stateBadge(pack.state),
      h('span', { class: 'small' }, pack.description),
      h('div', { class: 'actions' }, (ACTIONS_BY_STATE[pack.state] || []).map((action) =>
        h('button', { type: 'button', class: action === 'install' ? 'primary' : action === 'uninstall' ? 'danger-quiet' : '',
          disabled: working, 'aria-label': `${t(`packs.${action}`)} ${pack.title || pack.id}`, onclick: () => run(pack, action) },
        t(`packs.${action}`)))),
    ];
    cells.key = pack.id;
    return cells;
  }

  async function load() {
    try {
      const { packs, queue } = await api('GET', `/api/packs?q=${encodeURIComponent(query)}`);
      const headers = ['packs.col.pack', 'packs.col.author', 'packs.col.version', 'col.state', 'packs.col.description', 'col.actions'].map((k) => t(k));
      box.replaceChildren(packs.length ? table(t('packs.title'), headers, packs, row) : h('p', { class: 'empty' }, t('packs.none')));
      showQueue(queue);
    } catch (err) {
      box.replaceChildren(loadError(err, load));
    }
  }

  function showQueue(q) {
    // the status route says is_processing; the worker's events say status "in_progress"/"done"
    const active = q && (q.is_processing === true || q.status === 'in_progress');
    progress.textContent = active ? t('packs.progress', { done: q.done_count ?? 0, total: q.total_count ?? 0 }) : '';
  }

  async function run(pack, action) {
    if (action === 'uninstall') {
      const ok = await dialog({ title: t('packs.uninstall_title'), confirm: t('packs.uninstall'), danger: true,
        body: [h('p', {}, t('packs.uninstall_text', { name: pack.title || pack.id }))] });
      if (!ok) return;
    }
    try {
      const r = await api('POST', '/api/packs/tasks', { action, id: pack.id });
      tasks.set(r.task_id, { id: pack.id, action, name: pack.title || pack.id });
      busy.add(pack.id);
      if (endedEarly.has(r.task_id)) taskDone(endedEarly.get(r.task_id));
      else load();
    } catch (err) {
      showError(err);
    }
  }

  // A task ended: say how, and show the pack's new state.
  function taskDone(ev) {
    const task = tasks.get(ev.task_id);
    if (!task) { // another admin's task, or ours before its POST answered
      endedEarly.set(ev.task_id, ev);
      load();
      return;
    }
    endedEarly.delete(ev.task_id);
    tasks.delete(ev.task_id);
    busy.delete(task.id);
    const skip = ev.ok && ev.msg && /^skip/.test(ev.msg);
    if (ev.ok) notice('ok', t(`packs.done.${task.action}`, { name: task.name }) + (skip ? '' : ` ${t('packs.restart_hint')}`));
    else notice('error', t('packs.failed', { name: task.name }), ev.msg ? t('err.details', { message: ev.msg }) : '');
    load();
  }

  async function restartInstances() {
    const ok = await dialog({ title: t('packs.restart_title'), confirm: t('packs.restart'),
      body: [h('p', {}, t('packs.restart_text'))] });
    if (!ok) return;
    try {
      const running = (await api('GET', '/api/instances')).filter((i) => RUNNING.includes(i.status));
      notice('ok', t('packs.restarting', { n: running.length }));
      // one after another: each start takes a port and a moment of the machine
      for (const inst of running) {
        await api('POST', `/api/projects/${inst.project_id}/stop_comfy`);
        await api('POST', `/api/projects/${inst.project_id}/open_comfy`);
      }
      notice('ok', t('packs.restarted', { n: running.length }));
    } catch (err) {
      showError(err);
    }
  }

  const search = h('input', { id: 'pack-search', type: 'search', autocomplete: 'off',
    oninput: (e) => { query = e.target.value; clearTimeout(searchTimer); searchTimer = setTimeout(load, 250); } });
  root.append(
    h('div', { class: 'page-head' },
      h('div', {}, h('h1', {}, t('packs.title')), h('p', { class: 'muted' }, t('packs.intro'))),
      h('button', { type: 'button', id: 'restart-instances', onclick: restartInstances }, t('packs.restart'))),
    h('form', { class: 'inline-form search', role: 'search', onsubmit: (e) => { e.preventDefault(); load(); } },
      h('label', { for: 'pack-search' }, t('packs.search')), search),
    progress,
    box);
  load();
  return {
    unmount: () => clearTimeout(searchTimer),
    refresh: load,
    onPacks(ev) {
      if (ev.event === 'cm-task-done') taskDone(ev);
      else if (ev.event === 'cm-queue-status') showQueue(ev);
    },
  };
}
