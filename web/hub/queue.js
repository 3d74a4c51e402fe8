// The prompt queue: "My queue" (a person's own prompts) and, for teachers and admins, the whole
// queue with its figures and a chart of the last hour. Both poll: positions change with every
// prompt that starts or ends anywhere on the hub, which /api/events does not carry.
import { t, duration } from './i18n.js';
import { api } from './api.js';
import { h, table, notice, showError, loadError, replaceKeepingFocus } from './dom.js';

const POLL_MS = 2000;
const SERIES_MS = 10000;

function positionText(task) {
  if (task.state !== 'queued' || !task.position) return t('app.none');
  return task.ahead === 0 ? t('pos.next') : t('pos.value', { position: task.position, ahead: task.ahead });
}

/** How long a prompt has waited, or run since it was sent to its instance. */
function age(task) {
  if (task.state === 'queued' || !task.dispatched_at) return t('age.queued', { time: duration(Date.now() - task.created_at) });
  return t('age.running', { time: duration(Date.now() - task.dispatched_at) });
}

function stateBadge(state) {
  return h('span', { class: `badge state-${state}` }, t(`state.${state}`) || state);
}

/** The task table; everyone: prompt, project, state, position, age; `withUser` adds the user. */
function tasksTable(tasks, withUser, cancel) {
  const headers = [t('col.prompt'), ...(withUser ? [t('col.user')] : []), t('col.project'), t('col.state'),
    t('col.position'), t('col.age'), t('col.actions')];
  return table(t(withUser ? 'q.title' : 'mq.title'), headers, tasks, (task) => {
    const cells = [
      h('code', { title: task.prompt_id }, task.prompt_id.slice(0, 8)),
      ...(withUser ? [task.user] : []),
      task.project,
      stateBadge(task.state),
      positionText(task),
      age(task),
      task.state === 'queued'
        ? h('button', { type: 'button', class: 'danger-quiet cancel', 'aria-label': `${t('app.cancel')} ${task.prompt_id}`,
          onclick: () => cancel(task) }, t('app.cancel'))
        : '',
    ];
    cells.key = task.prompt_id;
    return cells;
  });
}

/** Polls fn every ms while the page is shown; returns the stop function. */
function every(ms, fn) {
  fn();
  const id = setInterval(fn, ms);
  return () => clearInterval(id);
}

async function cancelTask(task, reload) {
  try {
    await api('DELETE', `/api/queue/tasks/${encodeURIComponent(task.prompt_id)}`);
    notice('ok', t('q.cancelled'));
  } catch (err) {
    showError(err);
  }
  reload();
}

// ---- my queue ----

export const mine = {
  mount(root) {
    const box = h('div', { id: 'my-tasks', 'aria-live': 'polite' }, h('p', { class: 'muted' }, t('app.loading')));
    root.append(h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, t('mq.title')), h('p', { class: 'muted' }, t('mq.intro')))), box);
    async function load() {
      try {
        const { tasks } = await api('GET', '/api/queue/tasks?mine=1');
        replaceKeepingFocus(box, tasks.length ? tasksTable(tasks, false, (x) => cancelTask(x, load)) : h('p', { class: 'empty' }, t('mq.empty')));
      } catch (err) {
        box.replaceChildren(loadError(err, load));
      }
    }
    return { unmount: every(POLL_MS, load), refresh: load };
  },
};

// ---- the whole queue ----

function figures(status) {
  const tile = (key, value, id) => h('div', { class: 'tile', id }, h('div', { class: 'tile-value' }, String(value)), h('div', { class: 'tile-label' }, t(key)));
  return h('div', { class: 'tiles' },
    tile('q.waiting', status.queue_length, 'fig-waiting'),
    tile('q.running', status.processing_count, 'fig-running'),
    tile('q.max', status.max_concurrent, 'fig-max'),
    tile('q.free', status.available_slots, 'fig-free'));
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

/**
 * Waiting and running over the last hour as two step lines. The x axis is always the whole
 * hour up to now, so a quiet hub shows a flat line at the right time rather than a stretched one.
 */
export function chart(series, width, now = Date.now()) {
  const W = Math.max(300, Math.round(width || 640)), H = 220, L = 36, R = 12, T = 12, B = 28;
  const from = now - 3600 * 1000;
  const points = (series.points || []).filter((p) => p.t >= from);
  const top = Math.max(1, ...points.map((p) => Math.max(p.waiting, p.running)));
  const ymax = top <= 4 ? top : Math.ceil(top / 4) * 4;
  const x = (ms) => L + ((ms - from) / (now - from)) * (W - L - R);
  const y = (v) => T + (1 - v / ymax) * (H - T - B);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': t('q.chart_label'), class: 'chart' },
    s('title', {}, t('q.chart_label')));
  for (let i = 0; i <= 4; i++) { // grid and y labels
    const v = Math.round((ymax * i) / 4);
    if (i > 0 && v === Math.round((ymax * (i - 1)) / 4)) continue;
    svg.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }),
      s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, String(v)));
  }
  const labelStep = W < 520 ? 30 : 15; // x labels every quarter hour, every half hour on a phone
  for (let m = 60; m >= 0; m -= labelStep) {
    svg.append(s('text', { x: x(now - m * 60000), y: H - 8, 'text-anchor': m === 60 ? 'start' : m === 0 ? 'end' : 'middle', class: 'axis' },
      m ? t('q.minutes_ago', { n: m }) : t('q.now')));
  }
  if (!points.length) {
    svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' }, t('q.chart_empty')));
    return svg;
  }
  const step = (key) => points.map((p, i) => {
    const prev = i ? `${x(p.t).toFixed(1)},${y(points[i - 1][key]).toFixed(1)} ` : '';
    return `${prev}${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`;
  }).join(' ');
  svg.append(s('polyline', { points: step('waiting'), class: 'line-waiting' }),
    s('polyline', { points: step('running'), class: 'line-running' }));
  return svg;
}

function legend() {
  return h('div', { class: 'legend' },
    h('span', {}, h('i', { class: 'key key-waiting', 'aria-hidden': 'true' }), t('q.waiting')),
    h('span', {}, h('i', { class: 'key key-running', 'aria-hidden': 'true' }), t('q.running')));
}

export const all = {
  mount(root) {
    const figs = h('div', { id: 'queue-figures' });
    const chartBox = h('div', { class: 'chart-box', id: 'queue-chart' }, h('p', { class: 'muted' }, t('app.loading')));
    const box = h('div', { id: 'all-tasks', 'aria-live': 'polite' }, h('p', { class: 'muted' }, t('app.loading')));
    root.append(
      h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, t('q.title')), h('p', { class: 'muted' }, t('q.intro')))),
      figs,
      h('section', { class: 'panel', 'aria-labelledby': 'chart-title' }, h('h2', { id: 'chart-title' }, t('q.chart_title')), legend(), chartBox),
      box);
    async function load() {
      try {
        const [{ tasks }, status] = await Promise.all([api('GET', '/api/queue/tasks'), api('GET', '/api/queue/status')]);
        figs.replaceChildren(figures(status));
        replaceKeepingFocus(box, tasks.length ? tasksTable(tasks, true, (x) => cancelTask(x, load)) : h('p', { class: 'empty' }, t('q.empty')));
      } catch (err) {
        box.replaceChildren(loadError(err, load));
      }
    }
    async function loadSeries() {
      try {
        chartBox.replaceChildren(chart(await api('GET', '/api/queue/series'), chartBox.clientWidth));
      } catch (err) {
        chartBox.replaceChildren(loadError(err, loadSeries));
      }
    }
    const stops = [every(POLL_MS, load), every(SERIES_MS, loadSeries)];
    return { unmount: () => stops.forEach((f) => f()), refresh: load };
  },
};
