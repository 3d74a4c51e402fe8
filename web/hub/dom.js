// Small helpers to build the pages without a framework: elements, tables, dialogs, notices.
import { t } from './i18n.js';
import { explain } from './api.js';

/** h('button', {class: 'primary', onclick}, 'text', child…) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** A table whose rows come from rows.map(cells); wrapped so a phone can scroll it sideways. */
export function table(label, headers, rows, cells) {
  return h('div', { class: 'table-wrap' },
    h('table', { 'aria-label': label },
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows.map((r) => {
        const tds = cells(r);
        return h('tr', { 'data-key': tds.key ?? null }, tds.map((c) => h('td', {}, c)));
      }))));
}

/** A coloured badge of an instance's status; label replaces the status's own words. */
export function statusBadge(status, label = null) {
  const known = ['online', 'offline', 'starting', 'stopped', 'failed'];
  const s = known.includes(status) ? status : 'stopped';
  return h('span', { class: `badge status-${s}`, 'data-status': s }, h('span', { class: 'dot', 'aria-hidden': 'true' }), label ?? t(`status.${s}`));
}

// ---- notices ----

let noticeTimer = null;

/** A message at the top of the page: kind 'ok' fades, 'error' stays until dismissed. */
export function notice(kind, text, detail = '', link = null) {
  const box = document.getElementById('notice');
  clearTimeout(noticeTimer);
  box.replaceChildren(h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', { class: 'notice-text' }, text, link),
    detail ? h('span', { class: 'notice-detail' }, detail) : null,
    h('button', { class: 'link', type: 'button', onclick: () => box.replaceChildren() }, t('app.dismiss'))));
  if (kind === 'ok') noticeTimer = setTimeout(() => box.replaceChildren(), 6000);
}

export function showError(err) {
  const { text, detail } = explain(err);
  notice('error', text, detail);
}

/** A page-level failure (the list could not be loaded): words and a retry button, never blank. */
export function loadError(err, retry) {
  const { text, detail } = explain(err);
  return h('div', { class: 'load-error', role: 'alert' },
    h('p', {}, h('strong', {}, t('err.load')), ' ', text),
    detail ? h('p', { class: 'muted' }, detail) : null,
    h('button', { type: 'button', onclick: retry }, t('app.retry')));
}

// ---- dialogs ----

/**
 * A modal form: title, body nodes (inputs), the confirm button's text and class. Resolves with
 * the form's FormData, or null when cancelled (Escape closes it as well).
 */
export function dialog({ title, body = [], confirm, danger = false }) {
  return new Promise((resolve) => {
    const form = h('form', { method: 'dialog' },
      h('h2', {}, title),
      ...body,
      h('div', { class: 'dialog-buttons' },
        h('button', { type: 'button', value: 'cancel', onclick: () => dlg.close('cancel') }, t('app.cancel')),
        h('button', { type: 'submit', value: 'ok', class: danger ? 'danger' : 'primary' }, confirm)));
    const dlg = h('dialog', { 'aria-label': title }, form);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (!form.reportValidity()) return;
      const data = new FormData(form);
      dlg.close('ok');
      resolve(data);
    });
    dlg.addEventListener('close', () => {
      if (dlg.returnValue !== 'ok') resolve(null);
      dlg.remove();
    });
    document.body.append(dlg);
    dlg.showModal();
    const first = form.querySelector('input, select');
    if (first) { first.focus(); first.select?.(); }
  });
}

/** A labelled input for dialogs and forms. */
export function field(label, attrs) {
  const id = `f-${attrs.name}-${Math.random().toString(36).slice(2, 8)}`;
  return h('div', { class: 'field' }, h('label', { for: id }, label), h('input', { id, ...attrs }));
}

/**
 * Replaces box's content with node; a control that had the keyboard focus gets it back in the
 * new content (found by its aria-label), so a list refreshed every few seconds stays usable.
 */
export function replaceKeepingFocus(box, node) {
  const active = document.activeElement;
  const label = active && box.contains(active) ? active.getAttribute('aria-label') : null;
  box.replaceChildren(node);
  if (label) [...box.querySelectorAll('[aria-label]')].find((el) => el.getAttribute('aria-label') === label)?.focus();
}
