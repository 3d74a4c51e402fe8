// The queue badge: the hub adds this script to the page of a proxied ComfyUI (page_badge.h).
// It shows the user where their prompts stand in the hub's admission queue ("前方还有 N 人排队"),
// from the hub's comfyd.queue messages on a WebSocket of its own, so it works whatever front
// end the instance serves. × hides it in this browser (localStorage comfyd.queueBadge = off);
// COMFYD_QUEUE_BADGE=0 turns it off for everyone.
(() => {
  'use strict';
  if (window.__comfydQueueBadge) return;
  window.__comfydQueueBadge = true;
  if (localStorage.getItem('comfyd.queueBadge') === 'off') return;

  const lang = localStorage.getItem('comfyd.lang') || (navigator.language || '').toLowerCase();
  const zh = lang.startsWith('zh');
  const text = zh
    ? {
        ahead: (n) => (n === 0 ? '你的任务是下一个' : `前方还有 ${n} 人排队`),
        more: (k) => `（共 ${k} 个任务在排队）`,
        running: '你的任务开始运行了',
        cancelled: '任务已取消',
        hide: '不再显示排队提示',
        label: '排队位置',
      }
    : {
        ahead: (n) => (n === 0 ? 'Your prompt is next' : `${n} ahead of you in the queue`),
        more: (k) => ` (${k} of your prompts waiting)`,
        running: 'Your prompt is running',
        cancelled: 'Prompt cancelled',
        hide: 'Stop showing the queue position',
        label: 'Queue position',
      };

  const waiting = new Map(); // prompt_id -> ahead
  let note = '', noteTimer = 0;

  const badge = document.createElement('div');
  badge.id = 'comfyd-queue-badge';
  badge.setAttribute('role', 'status');
  badge.setAttribute('aria-live', 'polite');
  badge.setAttribute('aria-label', text.label);
  badge.style.cssText = [
    'position:fixed', 'right:16px', 'bottom:16px', 'z-index:2147483647', 'display:none', 'align-items:center',
    'gap:10px', 'padding:10px 12px 10px 14px', 'border-radius:10px', 'background:#1f2937', 'color:#fff',
    'font:14px/1.4 system-ui,sans-serif', 'box-shadow:0 4px 16px rgba(0,0,0,.3)', 'max-width:min(90vw,360px)',
  ].join(';');
  const label = document.createElement('span');
  const close = document.createElement('button');
  close.type = 'button';
  close.textContent = '×';
  close.title = text.hide;
  close.setAttribute('aria-label', text.hide);
  close.style.cssText = 'border:0;background:transparent;color:#cbd5e1;font-size:18px;line-height:1;cursor:pointer;padding:0 2px';
  close.addEventListener('click', () => {
    localStorage.setItem('comfyd.queueBadge', 'off');
    badge.remove();
  });
  badge.append(label, close);

  function render() {
    let line = note;
    if (waiting.size) {
      const ahead = Math.min(...waiting.values());
      line = text.ahead(ahead) + (waiting.size > 1 ? text.more(waiting.size) : '');
    }
    label.textContent = line;
    badge.style.display = line ? 'flex' : 'none';
  }

  function flash(message) {
    note = message;
    clearTimeout(noteTimer);
    noteTimer = setTimeout(() => { note = ''; render(); }, 4000);
  }

  function onQueueMessage(data) {
    if (!data || typeof data.prompt_id !== 'string') return;
    if (data.position > 0) {
      waiting.set(data.prompt_id, data.ahead);
    } else if (waiting.delete(data.prompt_id)) {
      if (data.state === 'dispatching' || data.state === 'running') flash(text.running);
      else if (data.state === 'cancelled') flash(text.cancelled);
    }
    render();
  }

  // The API base as ComfyUI's frontend computes it: the page's path up to its last slash.
  const base = location.pathname.slice(0, location.pathname.lastIndexOf('/') + 1);
  const clientId = `comfyd-badge-${Math.random().toString(36).slice(2, 10)}`;
  let retry = 1000;
  function connect() {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${base}ws?clientId=${clientId}`);
    ws.addEventListener('open', () => { retry = 1000; });
    ws.addEventListener('message', (e) => {
      if (typeof e.data !== 'string' || !e.data.includes('comfyd.queue')) return;
      try {
        const msg = JSON.parse(e.data);
        if (msg.type === 'comfyd.queue') onQueueMessage(msg.data);
      } catch { /* not ours */ }
    });
    ws.addEventListener('close', () => {
      // the hub tells a new connection where its prompts stand: start from that
      waiting.clear();
      render();
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    });
  }

  function start() {
    document.body.append(badge);
    connect();
  }
  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start);
})();
