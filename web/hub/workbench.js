// The workbench: one card per project with its instance's status (kept current from
// /api/events), the button that starts ComfyUI and opens it in a new tab, and create, rename,
// delete and stop.
import { t } from './i18n.js';
import { api } from './api.js';
import { h, statusBadge, notice, showError, loadError, dialog, field } from './dom.js';

const RUNNING = ['online', 'offline', 'starting'];

export function mount(root, { me }) {
  let projects = [];
  const opening = new Map(); // project id → when its open began (ms), while POST open_comfy runs
  const list = h('div', { class: 'cards', id: 'projects', 'aria-live': 'polite' }, h('p', { class: 'muted' }, t('app.loading')));
  const ticker = setInterval(() => { for (const id of opening.keys()) redraw(id); }, 1000);

  const mayChange = (p) => p.owner_id === me.id || me.role === 'admin';

  function card(p) {
    const status = opening.has(p.id) && p.status !== 'online' ? 'starting' : p.status;
    const reason = ['failed', 'offline'].includes(status) ? p.instance?.reason : '';
    return h('article', { class: 'card project', 'data-project-id': p.id, 'aria-labelledby': `pname-${p.id}` },
      h('div', { class: 'card-head' }, h('h2', { id: `pname-${p.id}` }, p.name), statusBadge(status)),
      p.owner_id !== me.id ? h('p', { class: 'muted' }, t('wb.owner', { name: p.owner })) : null,
      reason ? h('p', { class: 'reason' }, reason) : null,
      opening.has(p.id) ? progress(p.id) : null,
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'primary open', title: t('wb.open_hint'), disabled: opening.has(p.id),
          onclick: () => open(p) }, t('wb.open')),
        RUNNING.includes(p.status) ? h('button', { type: 'button', class: 'stop', onclick: () => stop(p) }, t('wb.stop')) : null,
        mayChange(p) ? h('button', { type: 'button', class: 'rename', onclick: () => rename(p) }, t('wb.rename')) : null,
        mayChange(p) ? h('button', { type: 'button', class: 'danger-quiet delete', onclick: () => remove(p) }, t('wb.delete')) : null));
  }

  function progress(id) {
    const seconds = Math.floor((Date.now() - opening.get(id)) / 1000);
    return h('div', { class: 'progress', role: 'status' },
      h('div', { class: 'bar', role: 'progressbar', 'aria-label': t('status.starting') }, h('span')),
      h('span', {}, t('wb.starting', { seconds })));
  }

  function redraw(id) {
    const p = projects.find((x) => x.id === id);
    const old = list.querySelector(`[data-project-id="${id}"]`);
    if (!p || !old) return;
    const focused = document.activeElement && old.contains(document.activeElement) ? document.activeElement.className : null;
    const fresh = card(p);
    old.replaceWith(fresh);
    // keep the keyboard where it was when a live update redraws the card
    if (focused) fresh.querySelector(`button.${focused.split(' ').pop()}`)?.focus();
  }

  function drawAll() {
    if (!projects.length) list.replaceChildren(h('p', { class: 'empty' }, t('wb.empty')));
    else list.replaceChildren(...projects.map(card));
  }

  async function load() {
    try {
      projects = await api('GET', '/api/projects');
      drawAll();
    } catch (err) {
      list.replaceChildren(loadError(err, load));
    }
  }

  async function create(e) {
    e.preventDefault();
    const input = e.target.elements.namedItem('name');
    try {
      const p = await api('POST', '/api/projects', { name: input.value });
      projects.push(p);
      drawAll();
      input.value = '';
      notice('ok', t('wb.created', { name: p.name }));
    } catch (err) {
      showError(err);
    }
  }

  // The tab is opened now, while the click still counts as the user's (a browser blocks a
  // window.open that comes seconds later, after the instance started), and shown ComfyUI then.
  function waitingTab(p) {
    const tab = window.open('', '_blank');
    if (!tab) return null;
    tab.document.title = p.name;
    tab.document.body.style.font = '16px system-ui, sans-serif';
    tab.document.body.style.padding = '2rem';
    tab.document.body.textContent = t('wb.tab_wait', { name: p.name });
    return tab;
  }

  async function open(p) {
    const tab = waitingTab(p);
    opening.set(p.id, Date.now());
    redraw(p.id);
    try {
      const r = await api('POST', `/api/projects/${p.id}/open_comfy`);
      Object.assign(p, { status: r.status, instance: r.instance });
      if (tab && !tab.closed) {
        tab.location.href = p.url;
        notice('ok', t('wb.started', { name: p.name }));
      } else {
        notice('ok', t('wb.popup_blocked'), '', h('a', { href: p.url, target: '_blank', rel: 'noopener' }, p.url));
      }
    } catch (err) {
      tab?.close();
      showError(err);
    } finally {
      opening.delete(p.id);
      redraw(p.id);
    }
  }

  async function stop(p) {
    try {
      const r = await api('POST', `/api/projects/${p.id}/stop_comfy`);
      Object.assign(p, { status: r.status, instance: r.instance });
      redraw(p.id);
      notice('ok', t('wb.stopped', { name: p.name }));
    } catch (err) {
      showError(err);
    }
  }

  async function rename(p) {
    const data = await dialog({ title: t('wb.rename_title'), confirm: t('app.save'),
      body: [field(t('wb.rename_label'), { name: 'name', value: p.name, required: true, maxlength: 128, autocomplete: 'off' })] });
    if (!data) return;
    try {
      Object.assign(p, await api('PATCH', `/api/projects/${p.id}`, { name: data.get('name') }));
      redraw(p.id);
    } catch (err) {
      showError(err);
      if (err.status === 404) load();
    }
  }

  async function remove(p) {
    const ok = await dialog({ title: t('wb.delete_title'), confirm: t('wb.delete'), danger: true,
      body: [h('p', {}, t('wb.delete_text', { name: p.name }))] });
    if (!ok) return;
    try {
      await api('DELETE', `/api/projects/${p.id}`);
      projects = projects.filter((x) => x.id !== p.id);
      drawAll();
      notice('ok', t('wb.deleted', { name: p.name }));
    } catch (err) {
      showError(err);
      if (err.status === 404) load();
    }
  }

  root.append(
    h('div', { class: 'page-head' },
      h('div', {}, h('h1', {}, t('wb.title')), h('p', { class: 'muted' }, t('wb.intro'))),
      h('form', { class: 'inline-form', id: 'create-project', onsubmit: create },
        h('label', { for: 'new-project' }, t('wb.new_label')),
        h('input', { id: 'new-project', name: 'name', required: true, maxlength: 128, autocomplete: 'off' }),
        h('button', { type: 'submit', class: 'primary' }, t('wb.create')))),
    list);
  load();

  return {
    unmount: () => clearInterval(ticker),
    refresh: load,
    onInstance(inst) {
      const p = projects.find((x) => x.id === inst.project_id);
      if (!p) return;
      Object.assign(p, { status: inst.status, instance: inst });
      redraw(p.id);
    },
  };
}
