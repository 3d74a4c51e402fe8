// comfyd serve's own page: run a workflow and follow it live, the queue and history, the node
// list. Plain JavaScript without a build step; it talks only to ComfyUI's public API.
'use strict';
(() => {

// ---------------------------------------------------------------------------------------------
// Where the API is. The page may be served at "/" or through the hub under a prefix such as
// "/comfyui/alice/proj1/", so every URL is built from the page's own directory (as ComfyUI's
// frontend does), never from "/".
const BASE = location.pathname.replace(/[^/]*$/, '');
const apiUrl = (route) => BASE + 'api/' + route;
const wsUrl = (clientId) =>
  (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + BASE + 'ws?clientId=' +
  encodeURIComponent(clientId);
const viewUrl = (img) => apiUrl('view?' + new URLSearchParams({
  filename: img.filename, subfolder: img.subfolder || '', type: img.type || 'output',
}));

// ---------------------------------------------------------------------------------------------
// Strings, in English and Chinese. Every text the page shows comes from here.
const STRINGS = {
  en: {
    'skip': 'Skip to content',
    'nav.label': 'Views',
    'tab.run': 'Run',
    'tab.queue': 'Queue & history',
    'tab.nodes': 'Nodes',
    'lang.label': 'Language',
    'conn.connecting': 'Connecting…',
    'conn.open': 'Connected',
    'conn.closed': 'Disconnected, retrying…',
    'retry': 'Retry',
    'refresh': 'Refresh',
    'run.title': 'Run a workflow',
    'run.hint': 'Paste a workflow in the API format (the prompt) or as the ComfyUI frontend saves it (with "nodes" and "links"), or open a .json file.',
    'run.json': 'Workflow JSON',
    'run.open': 'Open .json file…',
    'run.example': 'Example',
    'run.submit': 'Queue prompt',
    'run.progress': 'Progress',
    'run.idle': 'Nothing submitted yet. Queue a prompt to follow it here.',
    'run.overall': 'Workflow',
    'run.node': 'Current node',
    'run.preview': 'Live preview',
    'run.previewAlt': 'Live preview of the running node',
    'run.events': 'Events',
    'run.outputs': 'Outputs',
    'run.outputAlt': 'Output image {name}',
    'fmt.empty': 'Paste a workflow or open a file.',
    'fmt.api': 'API format · {n} nodes',
    'fmt.api.one': 'API format · 1 node',
    'fmt.ui': 'UI format · {n} nodes · the server converts it to the API format when queued',
    'fmt.invalidJson': 'Not valid JSON: {msg}',
    'fmt.notWorkflow': 'Not a workflow: expected the API format (nodes with "class_type") or the UI format (a "nodes" array).',
    'err.empty': 'Paste a workflow or open a .json file first.',
    'err.convert': 'The server could not convert this UI-format workflow: {msg}',
    'err.submit': 'The prompt was not queued: {msg}',
    'err.validation': 'The prompt was not queued: the workflow is not valid.',
    'err.partial': 'Queued, but some outputs were left out because they are not valid:',
    'err.network': 'Cannot reach the server ({msg}).',
    'err.http': 'The server answered {status}: {msg}',
    'err.load': 'Cannot load data from the comfyd server at {base}: {msg}',
    'err.file': 'Cannot read the file: {msg}',
    'err.input': 'input',
    'err.nodeLabel': 'Node {id} · {name}: ',
    'state.queued': 'Queued (#{n})',
    'state.hub': 'Waiting for a free slot: position {pos}',
    'state.running': 'Running',
    'state.success': 'Finished in {s} s',
    'state.successNoTime': 'Finished',
    'state.error': 'Failed',
    'state.interrupted': 'Interrupted',
    'run.nodeNow': 'Running {node}',
    'run.nodeProgress': 'Running {node} · {pct}%',
    'run.failedAt': '{node} failed: {type}: {msg}',
    'ev.queued': 'Queued as #{n}',
    'ev.hub': 'Waiting for a free slot (position {pos})',
    'ev.start': 'Started',
    'ev.cached': '{n} nodes taken from the cache',
    'ev.cached.one': '1 node taken from the cache',
    'ev.executing': 'Running {node}',
    'ev.executed': '{node} produced {n} images',
    'ev.executed.one': '{node} produced an image',
    'ev.executedOther': '{node} produced an output',
    'ev.success': 'Finished successfully',
    'ev.error': '{node} failed: {type}: {msg}',
    'ev.interrupted': 'Interrupted at {node}',
    'ev.done': 'The server is done with this prompt',
    'ev.preview': 'Preview received',
    'queue.title': 'Queue',
    'queue.interrupt': 'Interrupt',
    'queue.clear': 'Clear pending',
    'queue.running': 'Running',
    'queue.pending': 'Pending',
    'queue.noneRunning': 'Nothing is running.',
    'queue.nonePending': 'No prompt is waiting.',
    'queue.nodes': '{n} nodes',
    'queue.nodes.one': '1 node',
    'queue.mine': 'this page',
    'queue.stop': 'Stop',
    'queue.stopLabel': 'Stop prompt {id}',
    'queue.cancel': 'Cancel',
    'queue.cancelLabel': 'Cancel prompt {id}',
    'queue.interrupted': 'Interrupt sent.',
    'history.title': 'History',
    'history.clear': 'Clear history',
    'history.none': 'No finished prompt yet.',
    'history.success': 'Success',
    'history.error': 'Error',
    'history.interrupted': 'Interrupted',
    'history.unknown': 'Unknown',
    'history.took': '{s} s',
    'history.delete': 'Delete',
    'history.deleteLabel': 'Delete prompt {id} from the history',
    'history.images': '{n} images',
    'history.images.one': '1 image',
    'history.confirmClear': 'Delete the whole history?',
    'nodes.title': 'Nodes',
    'nodes.search': 'Search nodes',
    'nodes.placeholder': 'Search by name, display name or category',
    'nodes.count': '{shown} of {match} matching nodes ({all} in all)',
    'nodes.countAll': '{match} nodes',
    'nodes.countMatch': '{match} matching nodes ({all} in all)',
    'nodes.none': 'No node matches "{q}".',
    'nodes.more': 'Show more',
    'nodes.loading': 'Loading the node list…',
    'nodes.inputs': 'Inputs',
    'nodes.outputs': 'Outputs',
    'nodes.name': 'Name',
    'nodes.type': 'Type',
    'nodes.details': 'Details',
    'nodes.noInputs': 'No inputs.',
    'nodes.noOutputs': 'No outputs.',
    'nodes.optional': 'optional',
    'nodes.list': 'list',
    'nodes.outputNode': 'output node',
    'nodes.default': 'default {v}',
    'nodes.range': 'from {min} to {max}',
    'nodes.min': 'at least {v}',
    'nodes.max': 'at most {v}',
    'nodes.step': 'step {v}',
    'nodes.choices': '{n} choices: {list}',
    'nodes.multiline': 'multi-line',
    'nodes.uncategorized': '(no category)',
  },
  zh: {
    'skip': '跳到主要内容',
    'nav.label': '视图',
    'tab.run': '运行',
    'tab.queue': '队列与历史',
    'tab.nodes': '节点',
    'lang.label': '语言',
    'conn.connecting': '正在连接…',
    'conn.open': '已连接',
    'conn.closed': '连接已断开，正在重试…',
    'retry': '重试',
    'refresh': '刷新',
    'run.title': '运行工作流',
    'run.hint': '粘贴 API 格式的工作流（prompt），或 ComfyUI 前端保存的格式（含 "nodes" 与 "links"），也可以打开 .json 文件。',
    'run.json': '工作流 JSON',
    'run.open': '打开 .json 文件…',
    'run.example': '示例',
    'run.submit': '加入队列',
    'run.progress': '进度',
    'run.idle': '尚未提交。加入队列后可在此查看进度。',
    'run.overall': '工作流',
    'run.node': '当前节点',
    'run.preview': '实时预览',
    'run.previewAlt': '正在运行的节点的实时预览',
    'run.events': '事件',
    'run.outputs': '输出',
    'run.outputAlt': '输出图像 {name}',
    'fmt.empty': '请粘贴工作流或打开文件。',
    'fmt.api': 'API 格式 · {n} 个节点',
    'fmt.ui': '界面格式 · {n} 个节点 · 加入队列时由服务器转换为 API 格式',
    'fmt.invalidJson': '不是有效的 JSON：{msg}',
    'fmt.notWorkflow': '不是工作流：应为 API 格式（节点含 "class_type"）或界面格式（含 "nodes" 数组）。',
    'err.empty': '请先粘贴工作流或打开 .json 文件。',
    'err.convert': '服务器无法转换这个界面格式的工作流：{msg}',
    'err.submit': '未能加入队列：{msg}',
    'err.validation': '未能加入队列：工作流校验未通过。',
    'err.partial': '已加入队列，但以下输出因校验未通过而被跳过：',
    'err.network': '无法连接服务器（{msg}）。',
    'err.http': '服务器返回 {status}：{msg}',
    'err.load': '无法从 {base} 的 comfyd 服务器加载数据：{msg}',
    'err.file': '无法读取文件：{msg}',
    'err.input': '输入',
    'err.nodeLabel': '节点 {id} · {name}：',
    'state.queued': '排队中（#{n}）',
    'state.hub': '等待空闲名额：第 {pos} 位',
    'state.running': '运行中',
    'state.success': '已完成，用时 {s} 秒',
    'state.successNoTime': '已完成',
    'state.error': '失败',
    'state.interrupted': '已中断',
    'run.nodeNow': '正在运行 {node}',
    'run.nodeProgress': '正在运行 {node} · {pct}%',
    'run.failedAt': '{node} 失败：{type}：{msg}',
    'ev.queued': '已加入队列，编号 #{n}',
    'ev.hub': '等待空闲名额（第 {pos} 位）',
    'ev.start': '开始执行',
    'ev.cached': '{n} 个节点使用了缓存',
    'ev.executing': '正在运行 {node}',
    'ev.executed': '{node} 输出了 {n} 张图像',
    'ev.executedOther': '{node} 产生了输出',
    'ev.success': '执行成功',
    'ev.error': '{node} 失败：{type}：{msg}',
    'ev.interrupted': '在 {node} 处中断',
    'ev.done': '服务器已处理完这个任务',
    'ev.preview': '收到预览',
    'queue.title': '队列',
    'queue.interrupt': '中断',
    'queue.clear': '清空等待',
    'queue.running': '运行中',
    'queue.pending': '等待中',
    'queue.noneRunning': '当前没有运行的任务。',
    'queue.nonePending': '没有等待中的任务。',
    'queue.nodes': '{n} 个节点',
    'queue.mine': '本页提交',
    'queue.stop': '停止',
    'queue.stopLabel': '停止任务 {id}',
    'queue.cancel': '取消',
    'queue.cancelLabel': '取消任务 {id}',
    'queue.interrupted': '已发送中断请求。',
    'history.title': '历史',
    'history.clear': '清空历史',
    'history.none': '还没有完成的任务。',
    'history.success': '成功',
    'history.error': '出错',
    'history.interrupted': '已中断',
    'history.unknown': '未知',
    'history.took': '{s} 秒',
    'history.delete': '删除',
    'history.deleteLabel': '从历史中删除任务 {id}',
    'history.images': '{n} 张图像',
    'history.confirmClear': '确定删除全部历史吗？',
    'nodes.title': '节点',
    'nodes.search': '搜索节点',
    'nodes.placeholder': '按名称、显示名称或分类搜索',
    'nodes.count': '显示 {shown} / {match} 个匹配节点（共 {all} 个）',
    'nodes.countAll': '共 {match} 个节点',
    'nodes.countMatch': '{match} 个匹配节点（共 {all} 个）',
    'nodes.none': '没有与“{q}”匹配的节点。',
    'nodes.more': '显示更多',
    'nodes.loading': '正在加载节点列表…',
    'nodes.inputs': '输入',
    'nodes.outputs': '输出',
    'nodes.name': '名称',
    'nodes.type': '类型',
    'nodes.details': '说明',
    'nodes.noInputs': '没有输入。',
    'nodes.noOutputs': '没有输出。',
    'nodes.optional': '可选',
    'nodes.list': '列表',
    'nodes.outputNode': '输出节点',
    'nodes.default': '默认 {v}',
    'nodes.range': '范围 {min} 至 {max}',
    'nodes.min': '最小 {v}',
    'nodes.max': '最大 {v}',
    'nodes.step': '步长 {v}',
    'nodes.choices': '{n} 个选项：{list}',
    'nodes.multiline': '多行',
    'nodes.uncategorized': '（无分类）',
  },
};

// ComfyUI's validation error types in Chinese; in English the server's own message is shown.
const ZH_ERRORS = {
  prompt_outputs_failed_validation: '工作流的输出未通过校验',
  prompt_no_outputs: '工作流没有输出节点',
  invalid_prompt: '工作流无效',
  missing_node_type: '未知的节点类型',
  required_input_missing: '缺少必需的输入',
  bad_linked_input: '连接的输入格式错误',
  return_type_mismatch: '连接的类型不匹配',
  invalid_input_type: '输入的类型无效',
  value_smaller_than_min: (e) => boundText(e, 'min', '小于最小值'),
  value_bigger_than_max: (e) => boundText(e, 'max', '大于最大值'),
  value_not_in_list: (e) => (e.extra_info?.received_value !== undefined
    ? `值 ${JSON.stringify(e.extra_info.received_value)} 不在可选列表中` : '值不在可选列表中'),
  custom_validation_failed: '自定义校验未通过',
  exception_during_validation: '校验时出错',
  exception_during_inner_validation: '校验上游节点时出错',
  dependency_cycle: '节点之间形成了循环依赖',
};

// "值 0 小于最小值 1" from the error's received value and the input's bounds, when it has them.
function boundText(err, bound, words) {
  const value = err.extra_info?.received_value;
  const limit = err.extra_info?.input_config?.[1]?.[bound];
  return value !== undefined && limit !== undefined ? `值 ${value} ${words} ${limit}` : `值${words}`;
}

const LANG_KEY = 'comfyd.serve.lang';
const WORKFLOW_KEY = 'comfyd.serve.workflow';
const CLIENT_KEY = 'comfyd.serve.clientId';

let lang = pickLanguage();

function pickLanguage() {
  const saved = storageGet(localStorage, LANG_KEY);
  if (saved === 'en' || saved === 'zh') return saved;
  return /^zh\b/i.test(navigator.language || '') ? 'zh' : 'en';
}

function t(key, vars = {}) {
  const text = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

// A count's sentence: English has a singular ("key.one"), Chinese needs none.
function tn(key, n, vars = {}) {
  const one = n === 1 && STRINGS[lang][key + '.one'] !== undefined;
  return t(one ? key + '.one' : key, { n, ...vars });
}

// Storage can be unavailable (private modes, disabled cookies): the page works without it.
function storageGet(store, key) {
  try { return store.getItem(key); } catch { return null; }
}
function storageSet(store, key, value) {
  try { store.setItem(key, value); } catch { /* not remembered, nothing else lost */ }
}

// ---------------------------------------------------------------------------------------------
// Small DOM helpers.
const $ = (id) => document.getElementById(id);

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c != null && c !== false) el.append(c);
  return el;
}

const shortId = (id) => String(id).slice(0, 8);
const seconds = (ms) => (ms / 1000).toFixed(1);
const clock = (ms) => new Date(ms).toLocaleTimeString(lang === 'zh' ? 'zh-CN' : 'en');

// ---------------------------------------------------------------------------------------------
// HTTP. Errors carry a sentence for the page and, for 400s of POST prompt, the parsed answer.
class ApiError extends Error {
  constructor(message, status, json) {
    super(message);
    this.status = status;
    this.json = json;
  }
}

// comfyd writes JSON as Python does, which may hold NaN or Infinity (e.g. in a node's bounds).
function parseLenient(text) {
  try { return JSON.parse(text); } catch { /* fall through */ }
  return JSON.parse(text.replace(/-?\bInfinity\b|\bNaN\b/g, 'null'));
}

async function api(method, route, body) {
  let res;
  try {
    res = await fetch(apiUrl(route), {
      method,
      cache: 'no-store',
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(t('err.network', { msg: e.message }), 0, null);
  }
  const text = await res.text();
  let json = null;
  try { json = text ? parseLenient(text) : null; } catch { json = null; }
  if (!res.ok) {
    const msg = json?.error?.message || json?.error || text.slice(0, 200) || res.statusText;
    throw new ApiError(t('err.http', { status: res.status, msg: typeof msg === 'string' ? msg : JSON.stringify(msg) }),
      res.status, json);
  }
  return json;
}

// ---------------------------------------------------------------------------------------------
// State.
const state = {
  clientId: clientIdForThisTab(),
  nodes: null,            // object_info, by class name
  nodeList: [],           // sorted {name, display, category, haystack}
  nodeLimit: 100,
  queue: { running: [], pending: [] },
  history: [],
  runs: new Map(),        // prompt_id -> run, for the prompts this page queued
  early: [],              // events of prompts not (yet) known, see keepEarlyEvent
  current: null,          // the run the progress card follows
  runError: null,         // what the errors box under the editor says, kept to re-render
  loadError: null,
  queueError: null,
  historyError: null,
  nodesError: null,
  previewUrl: null,
  submitting: false,      // a POST prompt awaits its answer
  earlyPreview: null,     // a preview that came meanwhile (a Blob)
};

// One id per tab, kept across reloads of that tab so its prompts' events still reach it.
// crypto.randomUUID exists only in secure contexts; a hub reached over plain http is not one.
function clientIdForThisTab() {
  const saved = storageGet(sessionStorage, CLIENT_KEY);
  if (saved) return saved;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const id = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  storageSet(sessionStorage, CLIENT_KEY, id);
  return id;
}

function displayName(classType) {
  return state.nodes?.[classType]?.display_name || classType || '?';
}

function nodeLabel(run, nodeId) {
  if (nodeId == null) return '?';
  const cls = run?.prompt?.[nodeId]?.class_type;
  return cls ? `#${nodeId} ${displayName(cls)}` : `#${nodeId}`;
}

// ---------------------------------------------------------------------------------------------
// Static strings and the language switch.
function applyLanguage() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of document.querySelectorAll('[data-i18n-aria]')) el.setAttribute('aria-label', t(el.dataset.i18nAria));
  for (const el of document.querySelectorAll('[data-i18n-alt]')) el.alt = t(el.dataset.i18nAlt);
  $('lang').value = lang;
  renderAll();
}

function setLanguage(next) {
  lang = next === 'zh' ? 'zh' : 'en';
  storageSet(localStorage, LANG_KEY, lang);
  applyLanguage();
}

function renderAll() {
  renderConnection();
  renderBanner();
  renderWorkflowFormat();
  renderRunErrors();
  renderRun();
  renderQueue();
  renderHistory();
  renderNodes();
}

// ---------------------------------------------------------------------------------------------
// Views (tabs), with the arrow keys moving between tabs as the ARIA tab pattern asks.
const VIEWS = ['run', 'queue', 'nodes'];

function showView(name, focusTab = false) {
  if (!VIEWS.includes(name)) name = 'run';
  for (const v of VIEWS) {
    const tab = $('tab-' + v);
    const selected = v === name;
    tab.setAttribute('aria-selected', String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $('view-' + v).hidden = !selected;
    if (selected && focusTab) tab.focus();
  }
  if (location.hash !== '#' + name) history.replaceState(null, '', '#' + name);
  if (name === 'queue') refreshQueueAndHistory();
}

function bindTabs() {
  for (const v of VIEWS) $('tab-' + v).addEventListener('click', () => showView(v));
  document.querySelector('.tabs').addEventListener('keydown', (e) => {
    const current = VIEWS.findIndex((v) => $('tab-' + v).getAttribute('aria-selected') === 'true');
    let next = null;
    if (e.key === 'ArrowRight') next = (current + 1) % VIEWS.length;
    else if (e.key === 'ArrowLeft') next = (current + VIEWS.length - 1) % VIEWS.length;
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = VIEWS.length - 1;
    if (next === null) return;
    e.preventDefault();
    showView(VIEWS[next], true);
  });
}

// ---------------------------------------------------------------------------------------------
// Page-wide error banner: shown when the server cannot be reached at all, so the page is never
// blank or silently empty.
function renderBanner() {
  $('banner').hidden = !state.loadError;
  if (state.loadError) $('banner-text').textContent = t('err.load', { base: BASE, msg: state.loadError });
}

function renderSectionError(id, message) {
  const box = $(id);
  box.hidden = !message;
  box.textContent = message || '';
}

// ---------------------------------------------------------------------------------------------
// The workflow editor: what was pasted, in which format.
function classifyWorkflow(text) {
  if (!text.trim()) return { kind: 'empty' };
  let doc;
  try { doc = JSON.parse(text); } catch (e) { return { kind: 'invalid', message: t('fmt.invalidJson', { msg: e.message }) }; }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return { kind: 'invalid', message: t('fmt.notWorkflow') };
  if (Array.isArray(doc.nodes)) return { kind: 'ui', doc, count: doc.nodes.length };
  // The body of a POST prompt saved whole ({"prompt": {...}, ...}) holds the API format.
  const prompt = doc.prompt && typeof doc.prompt === 'object' && !Array.isArray(doc.prompt) ? doc.prompt : doc;
  const entries = Object.values(prompt);
  if (entries.length && entries.every((n) => n && typeof n === 'object' && typeof n.class_type === 'string'))
    return { kind: 'api', prompt, count: entries.length };
  return { kind: 'invalid', message: t('fmt.notWorkflow') };
}

function renderWorkflowFormat() {
  const c = classifyWorkflow($('workflow-text').value);
  const el = $('workflow-format');
  el.classList.toggle('bad', c.kind === 'invalid');
  if (c.kind === 'empty') el.textContent = t('fmt.empty');
  else if (c.kind === 'invalid') el.textContent = c.message;
  else el.textContent = tn(c.kind === 'ui' ? 'fmt.ui' : 'fmt.api', c.count);
}

function onWorkflowEdited() {
  const text = $('workflow-text').value;
  if (text.length < 1_000_000) storageSet(localStorage, WORKFLOW_KEY, text);
  renderWorkflowFormat();
}

async function onFileChosen(e) {
  const file = e.target.files?.[0];
  if (!file) return;
  try {
    $('workflow-text').value = await file.text();
    state.runError = null;
  } catch (err) {
    state.runError = { text: t('err.file', { msg: err.message }) };
  }
  e.target.value = '';
  onWorkflowEdited();
  renderRunErrors();
}

// A workflow every comfyd has: a flat colour image, saved to output/.
function exampleWorkflow() {
  return {
    1: { class_type: 'EmptyImage', inputs: { width: 512, height: 320, batch_size: 1, color: 0x2f6fde } },
    2: { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'comfyd_example' } },
  };
}

// ---------------------------------------------------------------------------------------------
// Submitting. A UI-format workflow is converted by the server's own POST /api/workflow/convert
// (the converter that `comfyd run` uses, which knows every node's inputs), then queued with the
// original in extra_pnginfo as the ComfyUI frontend does, so saved images carry it.
async function submit() {
  const button = $('submit');
  const c = classifyWorkflow($('workflow-text').value);
  state.runError = null;
  if (c.kind === 'empty') state.runError = { text: t('err.empty') };
  else if (c.kind === 'invalid') state.runError = { text: c.message };
  renderRunErrors();
  if (state.runError) return;
  button.disabled = true;
  try {
    let prompt = c.prompt;
    const extraData = {};
    if (c.kind === 'ui') {
      try {
        prompt = await api('POST', 'workflow/convert', c.doc);
      } catch (e) {
        state.runError = { text: t('err.convert', { msg: e.json?.error?.message || e.json?.error || e.message }) };
        return;
      }
      extraData.extra_pnginfo = { workflow: c.doc };
    }
    // The server sends a prompt's events only to a socket that is there when they happen.
    await socketOpen(3000);
    let answer;
    try {
      state.submitting = true;
      state.earlyPreview = null;
      answer = await api('POST', 'prompt', { prompt, client_id: state.clientId, extra_data: extraData });
    } catch (e) {
      state.runError = e.status === 400 && e.json?.error ? { validation: e.json } : { text: t('err.submit', { msg: e.message }) };
      return;
    }
    if (answer.node_errors && Object.keys(answer.node_errors).length)
      state.runError = { validation: answer, partial: true };
    startRun(answer.prompt_id, answer.number, prompt);
    refreshQueueAndHistory();
    // On a narrow screen the progress card is below the editor: bring it into view.
    if (matchMedia('(max-width: 860px)').matches) $('progress-card').scrollIntoView({ block: 'start' });
  } finally {
    state.submitting = false;
    state.earlyPreview = null;
    button.disabled = false;
    renderRunErrors();
  }
}

// One ComfyUI validation error in words: the type's sentence, the input it concerns, details.
function describeError(err) {
  const zh = lang === 'zh' ? ZH_ERRORS[err.type] : null;
  const base = (typeof zh === 'function' ? zh(err) : zh) || err.message || err.type || '?';
  const input = err.extra_info?.input_name;
  let text = base;
  if (input) text += ` — ${t('err.input')} “${input}”`;
  if (err.details && err.details !== input) text += `: ${err.details}`;
  return text;
}

function renderRunErrors() {
  const box = $('run-errors');
  const e = state.runError;
  box.replaceChildren();
  box.hidden = !e;
  if (!e) return;
  if (e.text) {
    box.append(h('p', { text: e.text }));
    return;
  }
  const answer = e.validation;
  const title = e.partial ? t('err.partial') : t('err.validation');
  box.append(h('h4', { text: title }));
  if (!e.partial && answer.error) box.append(h('p', { text: describeError(answer.error) }));
  const items = Object.entries(answer.node_errors || {}).map(([id, ne]) => h('li', {},
    h('span', { class: 'node', text: t('err.nodeLabel', { id, name: displayName(ne.class_type) }) }),
    (ne.errors || []).map(describeError).join('; ')));
  if (items.length) box.append(h('ul', {}, items));
}

// ---------------------------------------------------------------------------------------------
// Following a run: the WebSocket events of the prompts this page queued.
function startRun(id, number, prompt) {
  const run = {
    id, number, prompt,
    total: Object.keys(prompt || {}).length,
    done: new Set(),
    status: 'queued',
    node: null, value: 0, max: 1,
    outputs: [],
    log: [],
    started: null, ended: null,
    error: null,
    hubPosition: null,
  };
  state.runs.set(id, run);
  state.current = run;
  clearPreview();
  addLog(run, 'ev.queued', { n: number });
  replayEarlyEvents(run);
  if (state.earlyPreview) {
    showPreview(state.earlyPreview);
    addLog(run, 'ev.preview');
    state.earlyPreview = null;
  }
  renderRun();
}

// Entries keep their key and values, not text, so that a language switch re-renders them.
function addLog(run, key, vars = {}, kind = '', counted = false) {
  run.log.push({ at: Date.now(), key, vars, kind, counted });
}

function addOutputs(run, output) {
  for (const img of output?.images || []) {
    if (!img?.filename) continue;
    if (!run.outputs.some((o) => o.filename === img.filename && o.subfolder === img.subfolder && o.type === img.type))
      run.outputs.push(img);
  }
}

// Each handler updates the run; renderRun draws it.
const EVENT_HANDLERS = {
  execution_start(run, d) {
    run.status = 'running';
    run.started = d.timestamp || Date.now();
    run.hubPosition = null;
    addLog(run, 'ev.start');
  },
  execution_cached(run, d) {
    for (const n of d.nodes || []) run.done.add(String(n));
    if (d.nodes?.length) addLog(run, 'ev.cached', { n: d.nodes.length }, '', true);
  },
  executing(run, d) {
    if (run.node != null) run.done.add(String(run.node));
    if (d.node == null) {
      run.node = null;
      if (run.status === 'running' || run.status === 'queued') run.status = 'success';
      addLog(run, 'ev.done');
      return;
    }
    run.status = 'running';
    run.node = String(d.display_node ?? d.node);
    run.value = 0;
    run.max = 1;
    addLog(run, 'ev.executing', { node: nodeLabel(run, run.node) });
  },
  progress(run, d) {
    run.node = String(d.node ?? run.node);
    run.value = Number(d.value) || 0;
    run.max = Number(d.max) || 1;
  },
  executed(run, d) {
    const id = String(d.display_node ?? d.node);
    run.done.add(id);
    addOutputs(run, d.output);
    const n = d.output?.images?.length || 0;
    if (n) addLog(run, 'ev.executed', { node: nodeLabel(run, id), n }, '', true);
    else if (d.output) addLog(run, 'ev.executedOther', { node: nodeLabel(run, id) });
  },
  execution_success(run, d) {
    run.status = 'success';
    run.ended = d.timestamp || Date.now();
    addLog(run, 'ev.success', {}, 'ok');
  },
  execution_error(run, d) {
    run.status = 'error';
    run.ended = d.timestamp || Date.now();
    run.error = { node: d.node_id, type: d.exception_type, msg: d.exception_message };
    addLog(run, 'ev.error', { node: nodeLabel(run, d.node_id), type: d.exception_type, msg: d.exception_message }, 'err');
  },
  execution_interrupted(run, d) {
    run.status = 'interrupted';
    run.ended = d.timestamp || Date.now();
    addLog(run, 'ev.interrupted', { node: nodeLabel(run, d.node_id) }, 'err');
  },
  // The hub's admission queue: the prompt waits for a slot before it reaches this instance.
  'comfyd.queue'(run, d) {
    if (run.status !== 'queued' || run.hubPosition === d.position) return;
    run.hubPosition = d.position;
    addLog(run, 'ev.hub', { pos: d.position });
  },
};

// A prompt's first events can arrive before the answer to its POST prompt: they are kept a
// moment so that startRun can replay them.
const EARLY_EVENTS_KEPT = 200;
function keepEarlyEvent(msg) {
  state.early.push(msg);
  if (state.early.length > EARLY_EVENTS_KEPT) state.early.shift();
}

function replayEarlyEvents(run) {
  const mine = state.early.filter((m) => m.data.prompt_id === run.id);
  state.early = state.early.filter((m) => m.data.prompt_id !== run.id);
  for (const m of mine) EVENT_HANDLERS[m.type](run, m.data);
}

function onSocketMessage(msg) {
  const { type, data } = msg || {};
  if (type === 'status') {
    const remaining = data?.status?.exec_info?.queue_remaining;
    const badge = $('queue-badge');
    badge.hidden = !remaining;
    badge.textContent = remaining || '';
    refreshQueueAndHistorySoon();
    return;
  }
  const handler = EVENT_HANDLERS[type];
  if (!handler || !data?.prompt_id) return;
  const run = state.runs.get(data.prompt_id);
  if (!run) {
    keepEarlyEvent(msg);
    return;
  }
  handler(run, data);
  if (['execution_success', 'execution_error', 'execution_interrupted'].includes(type)) refreshQueueAndHistorySoon();
  renderRunSoon();
}

// Binary frames (comfyui-api.md §4.5): a 4-byte big-endian event type, then for type 1 a 4-byte
// image format (1 JPEG, 2 PNG) and the image; for type 4 a 4-byte JSON length, the JSON
// metadata and the image.
function onSocketBinary(buf) {
  if (buf.byteLength < 8) return;
  const view = new DataView(buf);
  const event = view.getUint32(0);
  let mime, offset;
  if (event === 1) {
    mime = view.getUint32(4) === 2 ? 'image/png' : 'image/jpeg';
    offset = 8;
  } else if (event === 4) {
    const len = view.getUint32(4);
    try {
      mime = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, len))).image_type || 'image/png';
    } catch { return; }
    offset = 8 + len;
  } else {
    return;
  }
  const run = state.current;
  const blob = new Blob([buf.slice(offset)], { type: mime });
  if (!run || (run.status !== 'running' && run.status !== 'queued')) {
    // a fast node's preview can come before the answer to the POST that queued it (frames
    // carry no prompt_id): the latest one is kept for startRun, as the early events are
    if (state.submitting) state.earlyPreview = blob;
    return;
  }
  showPreview(blob);
  if (!run.log.some((l) => l.key === 'ev.preview')) addLog(run, 'ev.preview');
  renderRunSoon();
}

function showPreview(blob) {
  const old = state.previewUrl;
  state.previewUrl = URL.createObjectURL(blob);
  $('preview').src = state.previewUrl;
  $('preview-box').hidden = false;
  if (old) URL.revokeObjectURL(old);
}

function clearPreview() {
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = null;
  $('preview').removeAttribute('src');
  $('preview-box').hidden = true;
}

let renderRunPending = false;
function renderRunSoon() {
  if (renderRunPending) return;
  renderRunPending = true;
  requestAnimationFrame(() => { renderRunPending = false; renderRun(); });
}

function runStateText(run) {
  switch (run.status) {
    case 'queued': return run.hubPosition != null ? t('state.hub', { pos: run.hubPosition }) : t('state.queued', { n: run.number });
    case 'running': return t('state.running');
    case 'success': return run.started && run.ended ? t('state.success', { s: seconds(run.ended - run.started) }) : t('state.successNoTime');
    case 'error': return t('state.error');
    default: return t('state.interrupted');
  }
}

const STATE_KIND = { queued: 'warn', running: 'run', success: 'ok', error: 'err', interrupted: 'err' };

function renderRun() {
  const run = state.current;
  $('run-idle').hidden = !!run;
  $('run-live').hidden = !run;
  if (!run) return;
  const stateEl = $('run-state');
  stateEl.textContent = runStateText(run);
  stateEl.dataset.kind = STATE_KIND[run.status];
  $('run-id').textContent = run.id;
  let nodeText = '';
  if (run.status === 'running' && run.node != null) {
    const pct = run.max > 0 ? Math.round((100 * run.value) / run.max) : 0;
    nodeText = t(run.value > 0 ? 'run.nodeProgress' : 'run.nodeNow', { node: nodeLabel(run, run.node), pct });
  } else if (run.status === 'error' && run.error) {
    nodeText = t('run.failedAt', { node: nodeLabel(run, run.error.node), type: run.error.type, msg: run.error.msg });
  }
  $('run-node').textContent = nodeText;
  const finished = run.status === 'success';
  $('bar-prompt').value = finished ? 1 : run.total ? Math.min(run.done.size / run.total, 1) : 0;
  $('bar-node').value = finished ? 1 : run.max > 0 ? Math.min(run.value / run.max, 1) : 0;
  renderGallery($('run-outputs'), run.outputs);
  $('run-outputs-box').hidden = !run.outputs.length;
  // Once the final images are there, the last preview only repeats them.
  if (finished && run.outputs.length) $('preview-box').hidden = true;
  renderLog(run);
}

function renderLog(run) {
  const list = $('run-log');
  list.replaceChildren(...run.log.map((l) => h('li', {},
    h('time', { text: clock(l.at) }), h('span', { class: l.kind === 'err' ? 'err' : '', text: l.counted ? tn(l.key, l.vars.n, l.vars) : t(l.key, l.vars) }))));
  list.scrollTop = list.scrollHeight;
}

function renderGallery(container, images) {
  container.replaceChildren(...images.map((img) => {
    const url = viewUrl(img);
    return h('a', { href: url, target: '_blank', rel: 'noopener', title: img.filename },
      h('img', { src: url, alt: t('run.outputAlt', { name: img.filename }), loading: 'lazy' }));
  }));
}

// ---------------------------------------------------------------------------------------------
// The WebSocket, reconnected with a growing pause; a reconnect refreshes the lists because
// events may have been missed meanwhile.
let socket = null;
let socketState = 'connecting';
let reconnectDelay = 1000;

function connectSocket() {
  socketState = 'connecting';
  renderConnection();
  let ws;
  try {
    ws = new WebSocket(wsUrl(state.clientId));
  } catch {
    scheduleReconnect();
    return;
  }
  ws.binaryType = 'arraybuffer';
  socket = ws;
  ws.onopen = () => {
    socketState = 'open';
    reconnectDelay = 1000;
    renderConnection();
    refreshQueueAndHistorySoon();
  };
  ws.onmessage = (e) => {
    if (typeof e.data !== 'string') { onSocketBinary(e.data); return; }
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    onSocketMessage(msg);
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    socketState = 'closed';
    renderConnection();
    scheduleReconnect();
  };
}

// Resolves once the socket is open, or after timeoutMs (the prompt then runs without live
// events, and its history entry tells how it ended).
function socketOpen(timeoutMs) {
  if (socketState === 'open') return Promise.resolve();
  return new Promise((resolve) => {
    const deadline = Date.now() + timeoutMs;
    const poll = () => (socketState === 'open' || Date.now() > deadline ? resolve() : setTimeout(poll, 50));
    poll();
  });
}

function scheduleReconnect() {
  setTimeout(connectSocket, reconnectDelay);
  reconnectDelay = Math.min(reconnectDelay * 2, 15000);
}

function renderConnection() {
  $('conn').dataset.state = socketState;
  $('conn-text').textContent = t('conn.' + socketState);
}

// ---------------------------------------------------------------------------------------------
// Queue and history.
let refreshTimer = null;
function refreshQueueAndHistorySoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshQueueAndHistory, 150);
}

function refreshQueueAndHistory() {
  return Promise.all([refreshQueue(), refreshHistory()]);
}

async function refreshQueue() {
  try {
    const q = await api('GET', 'queue');
    state.queue = { running: q?.queue_running || [], pending: q?.queue_pending || [] };
    state.queueError = null;
  } catch (e) {
    state.queueError = e.message;
  }
  renderQueue();
}

async function refreshHistory() {
  try {
    const entries = await api('GET', 'history?max_items=50');
    state.history = Object.entries(entries || {}).map(([id, entry]) => ({ id, ...entry }))
      .sort((a, b) => (b.prompt?.[0] ?? 0) - (a.prompt?.[0] ?? 0));
    state.historyError = null;
    settleRunsFromHistory();
  } catch (e) {
    state.historyError = e.message;
  }
  renderHistory();
}

// A run whose end the WebSocket did not tell (it was down) is finished by its history entry.
function settleRunsFromHistory() {
  for (const entry of state.history) {
    const run = state.runs.get(entry.id);
    if (!run || run.status === 'success' || run.status === 'error' || run.status === 'interrupted') continue;
    if (!entry.status?.completed && entry.status?.status_str !== 'error') continue;
    run.status = historyStatus(entry);
    const { start, end } = historyTimes(entry);
    run.started = run.started ?? start;
    run.ended = end;
    const failure = historyMessage(entry, 'execution_error');
    if (failure) {
      run.error = { node: failure.node_id, type: failure.exception_type, msg: failure.exception_message };
      addLog(run, 'ev.error', { node: nodeLabel(run, failure.node_id), type: failure.exception_type, msg: failure.exception_message }, 'err');
    } else if (run.status === 'interrupted') {
      addLog(run, 'ev.interrupted', { node: nodeLabel(run, historyMessage(entry, 'execution_interrupted')?.node_id) }, 'err');
    } else {
      addLog(run, 'ev.success', {}, 'ok');
    }
    for (const out of Object.values(entry.outputs || {})) addOutputs(run, out);
    renderRunSoon();
  }
}

function historyStatus(entry) {
  const messages = entry.status?.messages || [];
  if (messages.some(([type]) => type === 'execution_interrupted')) return 'interrupted';
  if (entry.status?.status_str === 'error') return 'error';
  if (entry.status?.status_str === 'success' || entry.status?.completed) return 'success';
  return 'unknown';
}

// The data of the first status message of that type in a history entry.
function historyMessage(entry, type) {
  return (entry.status?.messages || []).find(([name]) => name === type)?.[1];
}

function historyTimes(entry) {
  const at = (type) => historyMessage(entry, type)?.timestamp;
  const start = at('execution_start');
  const end = at('execution_success') ?? at('execution_error') ?? at('execution_interrupted');
  return { start, end };
}

function queueRow(item, running) {
  const [number, id, prompt, extra] = item;
  const mine = extra?.client_id === state.clientId;
  const button = running
    ? h('button', { type: 'button', class: 'btn small', 'aria-label': t('queue.stopLabel', { id }), text: t('queue.stop'),
      onclick: () => interrupt(id) })
    : h('button', { type: 'button', class: 'btn small danger', 'aria-label': t('queue.cancelLabel', { id }), text: t('queue.cancel'),
      onclick: () => cancelPending(id) });
  return h('li', { 'data-prompt-id': id },
    h('span', { class: 'num', text: '#' + number }),
    h('span', { class: 'what' },
      tn('queue.nodes', Object.keys(prompt || {}).length), ' · ', h('code', { text: shortId(id) }),
      mine ? [' ', h('span', { class: 'tag', text: t('queue.mine') })] : null),
    button);
}

function renderQueue() {
  renderSectionError('queue-error', state.queueError);
  const running = $('queue-running');
  const pending = $('queue-pending');
  const { running: r, pending: p } = state.queue;
  running.replaceChildren(...(r.length ? r.map((i) => queueRow(i, true)) : [h('li', { class: 'empty-row', text: t('queue.noneRunning') })]));
  const sorted = [...p].sort((a, b) => a[0] - b[0]);
  pending.replaceChildren(...(sorted.length ? sorted.map((i) => queueRow(i, false)) : [h('li', { class: 'empty-row', text: t('queue.nonePending') })]));
  $('clear-queue').disabled = !p.length;
  $('interrupt').disabled = !r.length;
}

function historyRow(entry) {
  const status = historyStatus(entry);
  const { start, end } = historyTimes(entry);
  const images = Object.values(entry.outputs || {}).flatMap((o) => (o?.images || []).filter((i) => i?.filename));
  const tagClass = { success: 'tag ok', error: 'tag err', interrupted: 'tag warn' }[status] || 'tag';
  const error = historyMessage(entry, 'execution_error');
  const gallery = h('div', { class: 'gallery small' });
  renderGallery(gallery, images);
  return h('li', { 'data-prompt-id': entry.id },
    h('span', { class: tagClass, text: t('history.' + status) }),
    h('span', { class: 'what' },
      '#' + (entry.prompt?.[0] ?? '?'), ' · ', h('code', { text: shortId(entry.id) }),
      start ? ' · ' + clock(start) : '',
      start && end ? ' · ' + t('history.took', { s: seconds(end - start) }) : '',
      images.length ? ' · ' + tn('history.images', images.length) : ''),
    h('button', { type: 'button', class: 'btn small', 'aria-label': t('history.deleteLabel', { id: entry.id }),
      text: t('history.delete'), onclick: () => deleteHistory(entry.id) }),
    error ? h('div', { class: 'detail err',
      text: `#${error.node_id} ${displayName(error.node_type)}: ${error.exception_type}: ${error.exception_message}` }) : null,
    images.length ? gallery : null);
}

function renderHistory() {
  renderSectionError('history-error', state.historyError);
  const list = $('history');
  list.replaceChildren(...(state.history.length ? state.history.map(historyRow) : [h('li', { class: 'empty-row', text: t('history.none') })]));
  $('clear-history').disabled = !state.history.length;
}

// Queue actions; each failure goes into the queue card's error box.
async function queueAction(fn) {
  try {
    await fn();
    state.queueError = null;
  } catch (e) {
    state.queueError = e.message;
  }
  await refreshQueueAndHistory();
}

const interrupt = (promptId) => queueAction(() => api('POST', 'interrupt', promptId ? { prompt_id: promptId } : {}));
const cancelPending = (promptId) => queueAction(() => api('POST', 'queue', { delete: [promptId] }));
const clearPending = () => queueAction(() => api('POST', 'queue', { clear: true }));
const deleteHistory = (promptId) => queueAction(() => api('POST', 'history', { delete: [promptId] }));
const clearHistory = () => {
  if (confirm(t('history.confirmClear'))) queueAction(() => api('POST', 'history', { clear: true }));
};

// ---------------------------------------------------------------------------------------------
// The node list: search over the class name, the display name and the category; a node's
// inputs and outputs are built when it is opened (hundreds of nodes, most never opened).
async function loadNodes() {
  try {
    state.nodes = await api('GET', 'object_info');
    state.nodeList = Object.entries(state.nodes || {}).map(([name, info]) => {
      const display = info.display_name || name;
      const category = info.category || '';
      return { name, display, category, haystack: `${name}\n${display}\n${category}`.toLowerCase() };
    }).sort((a, b) => a.category.localeCompare(b.category) || a.display.localeCompare(b.display));
    state.nodesError = null;
  } catch (e) {
    state.nodesError = e.message;
    throw e;
  } finally {
    renderNodes();
    $('example').disabled = !(state.nodes?.EmptyImage && state.nodes?.SaveImage);
  }
}

function matchingNodes() {
  const words = $('node-search').value.toLowerCase().split(/\s+/).filter(Boolean);
  return state.nodeList.filter((n) => words.every((w) => n.haystack.includes(w)));
}

function renderNodes() {
  renderSectionError('nodes-error', state.nodesError);
  const list = $('node-list');
  const count = $('node-count');
  if (!state.nodes) {
    count.textContent = state.nodesError ? '' : t('nodes.loading');
    list.replaceChildren();
    return;
  }
  const query = $('node-search').value.trim();
  const matches = matchingNodes();
  const shown = matches.slice(0, state.nodeLimit);
  const counts = { shown: shown.length, match: matches.length, all: state.nodeList.length };
  if (!query) count.textContent = t('nodes.countAll', counts);
  else count.textContent = t(shown.length < matches.length ? 'nodes.count' : 'nodes.countMatch', counts);
  if (!matches.length) {
    list.replaceChildren(h('p', { class: 'empty', text: t('nodes.none', { q: query }) }));
    return;
  }
  const items = shown.map(nodeItem);
  if (matches.length > shown.length)
    items.push(h('button', { type: 'button', class: 'btn more', text: t('nodes.more'),
      onclick: () => { state.nodeLimit += 100; renderNodes(); } }));
  list.replaceChildren(...items);
}

function nodeItem(n) {
  const details = h('details', { 'data-node': n.name },
    h('summary', {},
      h('span', { class: 'dn', text: n.display }),
      n.display !== n.name ? h('code', { class: 'cls', text: n.name }) : null,
      state.nodes[n.name].output_node ? h('span', { class: 'tag', text: t('nodes.outputNode') }) : null,
      h('span', { class: 'cat', text: n.category || t('nodes.uncategorized') })));
  details.addEventListener('toggle', () => {
    if (details.open && details.children.length === 1) details.append(nodeBody(n.name, state.nodes[n.name]));
  });
  return details;
}

function nodeBody(name, info) {
  const body = h('div', { class: 'node-body' });
  if (info.description) body.append(h('p', { text: info.description }));
  body.append(h('h3', { text: t('nodes.inputs') }));
  const inputs = nodeInputs(info);
  body.append(inputs.length ? table([t('nodes.name'), t('nodes.type'), t('nodes.details')], inputs)
    : h('p', { text: t('nodes.noInputs') }));
  body.append(h('h3', { text: t('nodes.outputs') }));
  const outputs = (info.output || []).map((type, i) => [
    info.output_name?.[i] ?? String(type),
    typeCell(type),
    info.output_is_list?.[i] ? t('nodes.list') : (info.output_tooltips?.[i] || ''),
  ]);
  body.append(outputs.length ? table([t('nodes.name'), t('nodes.type'), t('nodes.details')], outputs)
    : h('p', { text: t('nodes.noOutputs') }));
  return body;
}

// Rows [name, type, details] for the required then optional inputs (hidden ones are the
// server's business), in the node's own order when it gives one.
function nodeInputs(info) {
  const rows = [];
  for (const section of ['required', 'optional']) {
    const specs = info.input?.[section] || {};
    const order = info.input_order?.[section] || Object.keys(specs);
    for (const name of order) {
      const spec = specs[name];
      if (!spec) continue;
      const [type, opts] = Array.isArray(spec) ? spec : [spec, {}];
      const notes = inputNotes(type, opts || {});
      if (section === 'optional') notes.unshift(t('nodes.optional'));
      rows.push([name, typeCell(type, opts), notes.join(' · ')]);
    }
  }
  return rows;
}

function typeCell(type, opts) {
  if (Array.isArray(type) || (type === 'COMBO' && opts?.options)) return h('code', { text: 'COMBO' });
  return h('code', { text: String(type) });
}

function inputNotes(type, opts) {
  const notes = [];
  const choices = Array.isArray(type) ? type : type === 'COMBO' ? opts.options : null;
  if (choices) {
    const list = choices.slice(0, 8).map(String).join(', ') + (choices.length > 8 ? ', …' : '');
    notes.push(t('nodes.choices', { n: choices.length, list }));
  }
  if (opts.default !== undefined && typeof opts.default !== 'object')
    notes.push(t('nodes.default', { v: JSON.stringify(opts.default) }));
  if (opts.min !== undefined && opts.max !== undefined) notes.push(t('nodes.range', { min: opts.min, max: opts.max }));
  else if (opts.min !== undefined) notes.push(t('nodes.min', { v: opts.min }));
  else if (opts.max !== undefined) notes.push(t('nodes.max', { v: opts.max }));
  if (opts.step !== undefined) notes.push(t('nodes.step', { v: opts.step }));
  if (opts.multiline) notes.push(t('nodes.multiline'));
  if (opts.tooltip) notes.push(opts.tooltip);
  return notes;
}

function table(headers, rows) {
  return h('table', {},
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col', text: x })))),
    h('tbody', {}, rows.map((r) => h('tr', {},
      h('td', {}, h('code', { text: r[0] })), h('td', { class: 'type' }, r[1]), h('td', { class: 'opts', text: r[2] })))));
}

// ---------------------------------------------------------------------------------------------
// Start-up. Each part loads on its own: one failing leaves the others working, and the banner
// says what could not be reached.
async function loadVersion() {
  const stats = await api('GET', 'system_stats');
  const v = stats?.system?.comfyd_version;
  $('version').textContent = v ? 'v' + v : '';
}

async function loadAll() {
  const results = await Promise.allSettled([loadVersion(), loadNodes(), refreshQueueAndHistory()]);
  const failed = results.find((r) => r.status === 'rejected');
  state.loadError = failed ? failed.reason.message : (state.queueError || state.historyError);
  renderBanner();
  renderRun(); // node names may have arrived
}

function bindControls() {
  $('lang').addEventListener('change', (e) => setLanguage(e.target.value));
  $('banner-retry').addEventListener('click', loadAll);
  $('workflow-text').addEventListener('input', onWorkflowEdited);
  $('workflow-text').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); }
  });
  $('workflow-file').addEventListener('change', onFileChosen);
  $('example').addEventListener('click', () => {
    $('workflow-text').value = JSON.stringify(exampleWorkflow(), null, 2);
    onWorkflowEdited();
  });
  $('submit').addEventListener('click', submit);
  $('interrupt').addEventListener('click', () => interrupt(null));
  $('clear-queue').addEventListener('click', clearPending);
  $('refresh-queue').addEventListener('click', refreshQueue);
  $('clear-history').addEventListener('click', clearHistory);
  $('refresh-history').addEventListener('click', refreshHistory);
  $('node-search').addEventListener('input', () => { state.nodeLimit = 100; renderNodes(); });
}

function start() {
  $('workflow-text').value = storageGet(localStorage, WORKFLOW_KEY) || '';
  bindTabs();
  bindControls();
  applyLanguage();
  showView(location.hash.slice(1));
  connectSocket();
  loadAll();
}

start();
})();
