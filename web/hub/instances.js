// Instances, for admins: every ComfyUI the hub supervises with its port, pid, uptime, status and
// memory; stop and restart; the tail of one instance's log, polled while it is shown. With several
// hubs on one store, the hub of each instance and the hubs with whether each is heard from.
import { t, duration } from './i18n.js';
import { api } from './api.js';
import { h, table, statusBadge, notice, showError, loadError, replaceKeepingFocus } from './dom.js';

const POLL_MS = 3000;
const LOG_POLL_MS = 2000;
const LOG_LINES = 200;
const HAS_PROCESS = ['online', 'offline', 'starting'];

function memory(bytes) {
  return bytes === null || bytes === undefined ? t('app.none') : t('unit.mb', { n: Math.round(bytes / 1048576) });
}

export function mount(root) {
  let list = [];
  let shownLog = null; // the instance whose log is shown
  const box = h('div', { id: 'instances' }, h('p', { class: 'muted' }, t('app.loading')));
  const logTitle = h('h2', { id: 'log-title' });
  const logText = h('pre', { class: 'log', id: 'instance-log', tabindex: '0', 'aria-labelledby': 'log-title' });
  const logPanel = h('section', { class: 'panel', hidden: true, 'aria-labelledby': 'log-title' },
    h('div', { class: 'card-head' }, logTitle,
      h('button', { type: 'button', class: 'link', onclick: () => { shownLog = null; logPanel.hidden = true; } }, t('app.close'))),
    logText);

  // Several hubs on one store: which hub supervises each instance, and which hubs are heard from.
  let hubs = { self: '', hubs: [] };
  const hubsBox = h('section', { class: 'panel', id: 'hubs', hidden: true, 'aria-labelledby': 'hubs-title' });
  const severalHubs = () => hubs.hubs.length > 1;

  function hubRow(hub) {
    const cells = [
      h('span', {}, hub.id, hub.self ? h('span', { class: 'muted small' }, ` ${t('hubs.self')}`) : null),
      statusBadge(hub.alive ? 'online' : 'offline', hub.alive ? t('hubs.alive') : t('hubs.silent')),
      hub.last_seen_at ? t('hubs.ago', { time: duration(Math.max(0, Date.now() - hub.last_seen_at)) }) : t('app.none'),
    ];
    cells.key = hub.id;
    return cells;
  }

  function showHubs() {
    hubsBox.hidden = !severalHubs();
    if (hubsBox.hidden) return;
    const headers = ['col.hub', 'col.status', 'col.last_seen'].map((k) => t(k));
    replaceKeepingFocus(hubsBox, h('div', {},
      h('h2', { id: 'hubs-title' }, t('hubs.title')),
      h('p', { class: 'muted' }, t('hubs.intro', { seconds: hubs.silent_after_seconds })),
      table(t('hubs.title'), headers, hubs.hubs, hubRow)));
  }

  function row(inst) {
    const running = HAS_PROCESS.includes(inst.status);
    const label = (key) => `${t(key)} ${inst.user}/${inst.project}`;
    const cells = [
      inst.user, inst.project, ...(severalHubs() ? [inst.hub || t('app.none')] : []),
      String(inst.port || t('app.none')), running ? String(inst.pid) : t('app.none'),
      running && inst.started_at ? duration(Date.now() - inst.started_at) : t('app.none'),
      h('span', {}, statusBadge(inst.status), inst.reason ? h('span', { class: 'reason small' }, inst.reason) : null),
      memory(inst.memory_bytes),
      h('div', { class: 'actions' },
        h('button', { type: 'button', 'aria-label': label('inst.log'), onclick: () => showLog(inst) }, t('inst.log')),
        h('button', { type: 'button', 'aria-label': label('inst.restart'), onclick: () => restart(inst) }, t('inst.restart')),
        running ? h('button', { type: 'button', class: 'danger-quiet', 'aria-label': label('wb.stop'), onclick: () => stop(inst) }, t('wb.stop')) : null),
    ];
    cells.key = String(inst.id);
    return cells;
  }

  async function load() {
    try {
      [list, hubs] = await Promise.all([api('GET', '/api/instances'), api('GET', '/api/hubs')]);
      showHubs();
      const columns = ['col.user', 'col.project', ...(severalHubs() ? ['col.hub'] : []), 'col.port', 'col.pid', 'col.uptime', 'col.status', 'col.memory', 'col.actions'];
      const headers = columns.map((k) => t(k));
      replaceKeepingFocus(box, list.length ? table(t('inst.title'), headers, list, row) : h('p', { class: 'empty' }, t('inst.empty')));
    } catch (err) {
      box.replaceChildren(loadError(err, load));
    }
  }

  async function loadLog() {
    if (!shownLog) return;
    const atBottom = logText.scrollTop + logText.clientHeight >= logText.scrollHeight - 4;
    try {
      const text = await api('GET', `/api/instances/${shownLog.id}/log?tail=${LOG_LINES}`);
      logText.textContent = typeof text === 'string' && text ? text : t('inst.log_empty');
    } catch (err) {
      logText.textContent = err.status === 404 ? t('inst.log_empty') : `${t('err.load')} ${err.message}`;
    }
    if (atBottom) logText.scrollTop = logText.scrollHeight;
  }

  function showLog(inst) {
    shownLog = inst;
    logTitle.textContent = t('inst.log_title', { project: inst.project, user: inst.user });
    logText.textContent = t('app.loading');
    logPanel.hidden = false;
    loadLog().then(() => { logText.scrollTop = logText.scrollHeight; logText.focus(); });
  }

  async function stop(inst) {
    try {
      await api('POST', `/api/projects/${inst.project_id}/stop_comfy`);
      notice('ok', t('wb.stopped', { name: inst.project }));
    } catch (err) {
      showError(err);
    }
    load();
  }

  // A restart is a stop and an open: the supervisor then starts a fresh process on a free port.
  async function restart(inst) {
    notice('ok', t('inst.restarting', { name: inst.project }));
    try {
      await api('POST', `/api/projects/${inst.project_id}/stop_comfy`);
      await api('POST', `/api/projects/${inst.project_id}/open_comfy`);
      notice('ok', t('inst.restarted', { name: inst.project }));
    } catch (err) {
      showError(err);
    }
    load();
  }

  root.append(h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, t('inst.title')), h('p', { class: 'muted' }, t('inst.intro')))),
    box, hubsBox, logPanel);
  const timers = [setInterval(load, POLL_MS), setInterval(loadLog, LOG_POLL_MS)];
  load();
  return {
    unmount: () => timers.forEach(clearInterval),
    refresh: load,
    onInstance: () => load(),
  };
}
