// The dashboard's shell: who is logged in (GET /api/me), the menu their role allows, hash routes
// to the pages, the language switch, and the /api/events socket whose instance changes every
// page may follow.
import { t, currentLang, setLang } from './i18n.js';
import { api } from './api.js';
import { h, notice, loadError, showError } from './dom.js';
import * as workbench from './workbench.js';
import * as queue from './queue.js';
import * as instances from './instances.js';
import * as users from './users.js';
import * as packs from './packs.js';

const ROLES = { student: 0, teacher: 1, admin: 2 };

// route → page; `role` is the least role that sees it (the API refuses the rest anyway)
const PAGES = [
  { route: 'workbench', label: 'nav.workbench', role: 'student', page: workbench },
  { route: 'my-queue', label: 'nav.my_queue', role: 'student', page: queue.mine },
  { route: 'queue', label: 'nav.queue', role: 'teacher', page: queue.all },
  { route: 'instances', label: 'nav.instances', role: 'admin', page: instances },
  { route: 'users', label: 'nav.users', role: 'admin', page: users },
  { route: 'packs', label: 'nav.packs', role: 'admin', page: packs },
];

const state = { me: null, mounted: null, socket: null, socketRetry: 0 };

function allowedPages() {
  return PAGES.filter((p) => ROLES[state.me.role] >= ROLES[p.role]);
}

function currentPage() {
  const route = location.hash.replace(/^#\/?/, '') || 'workbench';
  const pages = allowedPages();
  return pages.find((p) => p.route === route) || pages[0];
}

function renderHeader() {
  const page = currentPage();
  const nav = h('nav', { 'aria-label': t('app.nav') }, h('ul', {}, allowedPages().map((p) =>
    h('li', {}, h('a', { href: `#/${p.route}`, 'aria-current': p === page ? 'page' : null }, t(p.label))))));
  const user = h('div', { class: 'who' },
    h('span', { class: 'who-name' }, state.me.name),
    h('span', { class: `role role-${state.me.role}` }, t(`role.${state.me.role}`)),
    h('button', { type: 'button', class: 'link', id: 'lang', lang: currentLang() === 'zh' ? 'en' : 'zh-CN',
      title: t('app.other_lang_label'), onclick: switchLang }, t('app.other_lang')),
    h('button', { type: 'button', id: 'logout', onclick: logout }, t('app.logout')));
  document.getElementById('header').replaceChildren(
    h('a', { class: 'brand', href: '#/workbench' }, t('app.title')), nav, user);
  document.title = `${t(page.label)} · ${t('app.title')}`;
  document.getElementById('live').textContent = t('app.live_lost');
}

function mountPage() {
  state.mounted?.unmount?.();
  const page = currentPage();
  const main = document.getElementById('main');
  main.replaceChildren();
  document.getElementById('notice').replaceChildren(); // a message of the last page is stale here
  renderHeader();
  state.mounted = page.page.mount(main, { me: state.me });
}

function switchLang() {
  setLang(currentLang() === 'zh' ? 'en' : 'zh');
  mountPage();
  document.getElementById('lang').focus();
}

async function logout() {
  try {
    await api('POST', '/api/logout');
  } catch (err) {
    if (err.status !== 401) { showError(err); return; }
  }
  location.href = '/login';
}

// ---- live instance changes ----

function connectEvents() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/api/events`);
  state.socket = ws;
  ws.onopen = () => {
    state.socketRetry = 0;
    document.getElementById('live').hidden = true;
  };
  ws.onmessage = (e) => {
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    if (msg.type === 'instance') state.mounted?.onInstance?.(msg.data);
    if (msg.type === 'packs') state.mounted?.onPacks?.(msg.data);
  };
  ws.onclose = () => {
    // A hub restart or a network hiccup: say so (the cards may be stale), then try again with a
    // growing delay; the page reloads its lists when the socket is back.
    document.getElementById('live').hidden = false;
    const delay = Math.min(30000, 1000 * 2 ** state.socketRetry++);
    setTimeout(() => { connectEvents(); state.mounted?.refresh?.(); }, delay);
  };
}

async function start() {
  const main = document.getElementById('main');
  main.replaceChildren(h('p', { class: 'muted' }, t('app.loading')));
  try {
    state.me = (await api('GET', '/api/me')).user;
  } catch (err) {
    if (err.status === 401) return; // api() is taking the visitor to the login page
    main.replaceChildren(loadError(err, start));
    return;
  }
  mountPage();
  connectEvents();
}

window.addEventListener('hashchange', () => { if (state.me) mountPage(); });
window.addEventListener('unhandledrejection', (e) => notice('error', t('err.server'), String(e.reason?.message || '')));
start();
