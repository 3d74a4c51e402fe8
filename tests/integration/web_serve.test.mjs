// `comfyd serve`'s own page (web/serve/, served at / when no --front-end-root is given), driven
// in a real browser: the node list, running workflows in both formats with live progress,
// previews and the history's images, validation errors, the queue's cancel and interrupt, the
// language switch, a hub-like path prefix, a failing API and a phone-sized screen.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { COMFYD_BIN, HOST, startServer } from './lib/server.mjs';
import { launchBrowser, screenshot } from './lib/browser.mjs';
import { startHub, trackInstancePid } from './lib/hub.mjs';

const T = { timeout: 90000 };
const PACK = path.join(path.dirname(COMFYD_BIN), 'tests', 'conformance', 'testing_pack', 'testing_pack.so');

let srv;
let base;
let browser;
const origin = () => `http://${HOST}:${srv.port}`;

before(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-web-serve-'));
  // The testing pack gives TestSleep: a node that takes its time and reports progress.
  fs.mkdirSync(path.join(base, 'custom_nodes', 'testing-pack'), { recursive: true });
  fs.copyFileSync(PACK, path.join(base, 'custom_nodes', 'testing-pack', 'testing_pack.so'));
  srv = await startServer({ baseDir: base });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await srv?.stop();
  fs.rmSync(base, { recursive: true, force: true });
});

// ---- helpers ----

/** A full-page screenshot from the top (the sticky header would otherwise sit mid-page). */
async function shot(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await screenshot(page, name);
}

/** Waits until the text of selector's element matches re. */
function waitText(page, selector, re, timeout = 30000) {
  return page.waitForFunction(([sel, src, flags]) => new RegExp(src, flags).test(document.querySelector(sel)?.textContent ?? ''),
    [selector, re.source, re.flags], { timeout });
}

/** Waits until every image matched by selector (at least one) has loaded with real pixels. */
function waitImagesLoaded(page, selector, timeout = 30000) {
  return page.waitForFunction((sel) => {
    const imgs = [...document.querySelectorAll(sel)];
    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, selector, { timeout });
}

async function openPage(url, options = {}) {
  const page = await browser.newPage({ locale: 'en-US', ...options });
  await page.goto(url);
  await waitText(page, '#node-count', /\d+ nodes/);
  return page;
}

async function submitWorkflow(page, workflow) {
  await page.fill('#workflow-text', typeof workflow === 'string' ? workflow : JSON.stringify(workflow, null, 2));
  await page.click('#submit');
}

async function apiPost(route, body) {
  const r = await fetch(`${origin()}/api/${route}`, { method: 'POST', body: JSON.stringify(body) });
  assert.equal(r.status, 200, await r.clone().text());
  return r.headers.get('content-type')?.includes('json') ? r.json() : r.text();
}

async function apiGet(route) {
  const r = await fetch(`${origin()}/api/${route}`);
  assert.equal(r.status, 200);
  return r.json();
}

const emptyImage = (w, h, color) => ({ class_type: 'EmptyImage', inputs: { width: w, height: h, batch_size: 1, color } });
const save = (src, prefix) => ({ class_type: 'SaveImage', inputs: { images: [src, 0], filename_prefix: prefix } });
/** A prompt that runs for `seconds` and shows nothing: for the queue's tests. */
const sleeper = (seconds) => ({
  1: { class_type: 'PrimitiveInt', inputs: { value: Math.round(seconds * 1000) } },
  2: { class_type: 'TestSleep', inputs: { value: ['1', 0], seconds } },
  3: { class_type: 'PreviewAny', inputs: { source: ['2', 0] } },
});

// ---- tests ----

test('GET / and /comfyd-ui/* serve the embedded page with its types; --front-end-root still wins', T, async () => {
  const index = await fetch(`${origin()}/`);
  assert.equal(index.status, 200);
  assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(index.headers.get('cache-control'), 'no-cache');
  assert.equal(index.headers.get('x-content-type-options'), 'nosniff');
  const html = await index.text();
  assert.match(html, /src="comfyd-ui\/app\.js"/);
  assert.doesNotMatch(html, /(src|href)="\//, 'the page refers to its files relatively');
  for (const [file, type] of [['app.js', 'text/javascript; charset=utf-8'], ['style.css', 'text/css; charset=utf-8']]) {
    const r = await fetch(`${origin()}/comfyd-ui/${file}`);
    assert.equal(r.status, 200, file);
    assert.equal(r.headers.get('content-type'), type);
    assert.equal(r.headers.get('cache-control'), 'no-cache');
    assert.ok((await r.text()).length > 1000);
  }
  assert.equal((await fetch(`${origin()}/comfyd-ui/nothing.js`)).status, 404);

  const withFrontEnd = await startServer({ frontEnd: { 'index.html': '<!doctype html><title>theirs</title>' } });
  try {
    const r = await fetch(`http://${HOST}:${withFrontEnd.port}/`);
    assert.match(await r.text(), /<title>theirs<\/title>/);
    assert.equal((await fetch(`http://${HOST}:${withFrontEnd.port}/comfyd-ui/app.js`)).status, 404,
      'our page stays out of the way of the configured front end');
  } finally {
    await withFrontEnd.stop();
  }
});

test('the node list loads without page errors and its search finds nodes by name, display name and category', T, async () => {
  const page = await openPage(`${origin()}/`);
  await page.click('#tab-nodes');
  assert.equal(await page.isVisible('#view-nodes'), true);
  assert.equal(await page.isVisible('#view-run'), false);

  await page.fill('#node-search', 'TestSleep');
  await page.waitForSelector('details[data-node="TestSleep"]');
  await page.fill('#node-search', 'test sleep'); // display name "Test Sleep"
  await page.waitForSelector('details[data-node="TestSleep"]');
  await page.fill('#node-search', '_for_testing'); // its category
  await page.waitForSelector('details[data-node="TestSleep"]');
  await waitText(page, '#node-count', /^\d+ matching nodes \(\d+ in all\)$/);
  await page.fill('#node-search', 'no such node anywhere');
  await waitText(page, '#node-list', /No node matches/);

  await page.fill('#node-search', 'EmptyImage');
  await page.click('details[data-node="EmptyImage"] summary');
  const body = page.locator('details[data-node="EmptyImage"] .node-body');
  await body.waitFor();
  const text = await body.textContent();
  for (const want of ['width', 'height', 'batch_size', 'color', 'INT', 'IMAGE', 'default 512', 'from 1 to 16384'])
    assert.ok(text.includes(want), `the expanded node shows ${want}: ${text}`);

  // every control has a name a screen reader can say
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim()))
    .map((el) => el.outerHTML));
  assert.deepEqual(unnamed, []);

  // keyboard: the tabs follow the arrow keys
  await page.focus('#tab-nodes');
  await page.keyboard.press('ArrowLeft');
  assert.equal(await page.isVisible('#view-queue'), true);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-queue');
  await page.keyboard.press('ArrowRight');
  await page.fill('#node-search', 'image');
  await page.click('details[data-node="ImageBlend"] summary');
  await page.locator('details[data-node="ImageBlend"] .node-body').waitFor();
  assert.match(await page.textContent('details[data-node="ImageBlend"] .node-body'), /blend_mode.*COMBO.*choices: normal, multiply/s);
  await shot(page, 'serve-nodes');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('an API-format workflow runs with live progress and a preview, then its image is in the history', T, async () => {
  const page = await openPage(`${origin()}/`);
  await submitWorkflow(page, {
    1: emptyImage(64, 48, 0x2f6fde),
    2: { class_type: 'TestSleep', inputs: { value: ['1', 0], seconds: 2.5 } },
    3: save('2', 'web_serve_api'),
    // SaveImageWebsocket sends the image as a binary preview frame (type 1, PNG)
    4: { class_type: 'SaveImageWebsocket', inputs: { images: ['1', 0] } },
  });
  await waitText(page, '#workflow-format', /API format · 4 nodes/);
  // live: the sleeping node's progress in per cent, then the preview that arrived on the socket
  await waitText(page, '#run-node', /Running #2 Test Sleep · \d+%/);
  await waitText(page, '#run-state', /^Running$/);
  await waitImagesLoaded(page, '#preview');
  assert.deepEqual(await page.$eval('#preview', (i) => [i.naturalWidth, i.naturalHeight]), [64, 48]);
  assert.ok(await page.$eval('#bar-node', (b) => b.value > 0));
  await shot(page, 'serve-run-live');

  await waitText(page, '#run-state', /Finished in \d+\.\d s/);
  await waitImagesLoaded(page, '#run-outputs img');
  const href = await page.$eval('#run-outputs a', (a) => a.getAttribute('href'));
  assert.match(href, /^\/api\/view\?filename=web_serve_api_00001_\.png&subfolder=&type=output$/);
  const log = await page.textContent('#run-log');
  for (const want of ['Queued as #', 'Started', 'Running #2 Test Sleep', '#3 Save Image produced an image', 'Finished successfully'])
    assert.ok(log.includes(want), `the event log has "${want}": ${log}`);
  assert.equal(await page.$eval('#bar-prompt', (b) => b.value), 1);
  await shot(page, 'serve-run');

  await page.click('#tab-queue');
  const id = await page.textContent('#run-id');
  const row = page.locator(`#history li[data-prompt-id="${id}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), /Success/);
  await waitImagesLoaded(page, `#history li[data-prompt-id="${id}"] img`);
  assert.deepEqual(await row.locator('img').evaluate((i) => [i.naturalWidth, i.naturalHeight]), [64, 48]);
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

// A prompt of two quick nodes sends its preview (a binary frame, which names no prompt) before
// the page has the answer to its POST, more often than not: the page keeps it for the run.
test('a preview that comes before the answer to its POST is shown for that run', T, async () => {
  const page = await openPage(`${origin()}/`);
  for (const [i, color] of [0x11aa33, 0xaa3311, 0x3311aa].entries()) {
    const before = await page.textContent('#run-id');
    await submitWorkflow(page, { 1: emptyImage(32 + i, 24, color), 2: { class_type: 'SaveImageWebsocket', inputs: { images: ['1', 0] } } });
    await page.waitForFunction((prev) => document.querySelector('#run-id').textContent !== prev
      && /Finished/.test(document.querySelector('#run-state').textContent), before, { timeout: 30000 });
    await waitImagesLoaded(page, '#preview');
    assert.deepEqual(await page.$eval('#preview', (img) => [img.naturalWidth, img.naturalHeight]), [32 + i, 24]);
    assert.ok((await page.textContent('#run-log')).includes('Preview received'));
  }
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('a UI-format workflow from a .json file is converted by the server, runs, and keeps the original', T, async () => {
  const ui = {
    last_node_id: 2, last_link_id: 1, version: 0.4,
    nodes: [
      { id: 1, type: 'EmptyImage', mode: 0, inputs: [], outputs: [{ name: 'IMAGE', type: 'IMAGE', links: [1] }],
        widgets_values: [40, 24, 1, 0xff0000] },
      { id: 2, type: 'SaveImage', mode: 0, inputs: [{ name: 'images', type: 'IMAGE', link: 1 }], outputs: [],
        widgets_values: ['web_serve_ui'] },
    ],
    links: [[1, 1, 0, 2, 0, 'IMAGE']],
  };
  const page = await openPage(`${origin()}/`);
  await page.setInputFiles('#workflow-file', { name: 'workflow.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(ui)) });
  await waitText(page, '#workflow-format', /UI format · 2 nodes/);
  await page.click('#submit');
  await waitText(page, '#run-state', /Finished/);
  await waitImagesLoaded(page, '#run-outputs img');
  assert.deepEqual(await page.$eval('#run-outputs img', (i) => [i.naturalWidth, i.naturalHeight]), [40, 24]);

  const id = await page.textContent('#run-id');
  const entry = (await apiGet(`history/${id}`))[id];
  assert.equal(entry.prompt[2]['1'].inputs.width, 40, 'the server converted the widgets into inputs');
  assert.deepEqual(entry.prompt[3].extra_pnginfo.workflow.nodes.map((n) => n.type), ['EmptyImage', 'SaveImage']);

  // a node type the server does not know: the converter's reason is shown
  const unknown = { ...ui, nodes: [{ ...ui.nodes[0], type: 'NoSuchNode' }, ui.nodes[1]] };
  await submitWorkflow(page, unknown);
  await waitText(page, '#run-errors', /The server could not convert this UI-format workflow: node 1: node type "NoSuchNode" is not known to this server/);
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('validation errors and malformed input are shown in words', T, async () => {
  const page = await openPage(`${origin()}/`);
  await submitWorkflow(page, '{"1": {"class_type": ');
  await waitText(page, '#workflow-format', /Not valid JSON/);
  await waitText(page, '#run-errors', /Not valid JSON/);
  // from the keyboard this time: Ctrl+Enter in the editor queues
  await page.fill('#workflow-text', JSON.stringify({ 1: emptyImage(0, 8, 0), 2: { class_type: 'SaveImage', inputs: { filename_prefix: 'x' } }, 3: save('1', 'y') }));
  await page.focus('#workflow-text');
  await page.keyboard.press('Control+Enter');
  await waitText(page, '#run-errors', /not valid/);
  const text = await page.textContent('#run-errors');
  assert.match(text, /Node 2 · Save Image: Required input is missing — input “images”/);
  assert.match(text, /Node 1 · EmptyImage: Value 0 smaller than min of 1 — input “width”/);
  assert.match(text, /Prompt outputs failed validation/);
  assert.equal(await page.isVisible('#run-live'), false, 'nothing was queued');
  await shot(page, 'serve-run-errors');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('a failure while running is shown with its node and message, in the run and in the history', T, async () => {
  const page = await openPage(`${origin()}/`);
  await submitWorkflow(page, {
    1: { class_type: 'PrimitiveInt', inputs: { value: 7 } },
    2: { class_type: 'TestSyncError', inputs: { value: ['1', 0] } },
    3: { class_type: 'PreviewAny', inputs: { source: ['2', 0] } },
  });
  await waitText(page, '#run-state', /^Failed$/);
  const failure = /#2 Test Sync Error failed: RuntimeError: Intentional sync execution error for testing/;
  await waitText(page, '#run-node', failure);
  await waitText(page, '#run-log', failure);
  const id = await page.textContent('#run-id');
  await page.click('#tab-queue');
  const row = page.locator(`#history li[data-prompt-id="${id}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), /Error.*#2 Test Sync Error: RuntimeError: Intentional sync execution error/s);
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('the queue shows running and pending prompts; one is cancelled, the running one interrupted', T, async () => {
  const page = await openPage(`${origin()}/#queue`);
  const ids = [];
  for (const s of [30, 31, 32]) ids.push((await apiPost('prompt', { prompt: sleeper(s), client_id: 'someone-else' })).prompt_id);
  const [running, cancelled, next] = ids;
  await page.locator(`#queue-running li[data-prompt-id="${running}"]`).waitFor();
  await page.locator(`#queue-pending li[data-prompt-id="${next}"]`).waitFor();
  assert.match(await page.textContent(`#queue-running li[data-prompt-id="${running}"]`), /#\d+3 nodes · [0-9a-f]{8}Stop/);
  await shot(page, 'serve-queue');

  await page.click(`button[aria-label="Cancel prompt ${cancelled}"]`);
  await page.locator(`#queue-pending li[data-prompt-id="${cancelled}"]`).waitFor({ state: 'detached' });
  const q = await apiGet('queue');
  assert.deepEqual(q.queue_pending.map((e) => e[1]), [next], 'the server no longer holds the cancelled prompt');

  await page.click(`button[aria-label="Stop prompt ${running}"]`);
  await page.locator(`#history li[data-prompt-id="${running}"]`).waitFor();
  assert.match(await page.textContent(`#history li[data-prompt-id="${running}"]`), /Interrupted/);
  await page.locator(`#queue-running li[data-prompt-id="${next}"]`).waitFor();
  await page.click('#interrupt'); // the global button stops whatever runs
  await page.locator(`#history li[data-prompt-id="${next}"]`).waitFor();
  await waitText(page, '#queue-running', /Nothing is running/);
  await waitText(page, '#queue-pending', /No prompt is waiting/);

  await page.click(`button[aria-label="Delete prompt ${next} from the history"]`);
  await page.locator(`#history li[data-prompt-id="${next}"]`).waitFor({ state: 'detached' });
  assert.deepEqual(await apiGet(`history/${next}`), {}, 'the server forgot it too');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('the language switch turns the page into Chinese and remembers it; a zh browser starts in Chinese', T, async () => {
  const page = await openPage(`${origin()}/`);
  assert.equal(await page.textContent('#tab-run'), 'Run');
  await page.selectOption('#lang', 'zh');
  assert.equal(await page.textContent('#tab-run'), '运行');
  assert.equal(await page.textContent('#submit span'), '加入队列');
  assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
  assert.equal(await page.getAttribute('#node-search', 'placeholder'), '按名称、显示名称或分类搜索');
  await submitWorkflow(page, { 1: emptyImage(0, 8, 0), 2: save('1', 'y') });
  await waitText(page, '#run-errors', /工作流校验未通过/);
  assert.match(await page.textContent('#run-errors'), /节点 1 · EmptyImage：值 0 小于最小值 1 — 输入 “width”/);

  await page.reload();
  await waitText(page, '#node-count', /共 \d+ 个节点/);
  assert.equal(await page.textContent('#tab-queue span'), '队列与历史');
  assert.equal(await page.inputValue('#lang'), 'zh');
  await page.click('#tab-queue');
  await waitText(page, '#history', /成功|已中断/);
  await shot(page, 'serve-zh');
  // no English left in the visible static strings of the queue view
  assert.doesNotMatch(await page.textContent('#view-queue'), /Queue|History|Running|Pending|Refresh|Interrupt/);
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();

  // a fresh browser profile (nothing remembered) whose language is Chinese
  const zh = await browser.newPage({ locale: 'zh-CN' });
  await zh.goto(`${origin()}/`);
  await waitText(zh, '#node-count', /共 \d+ 个节点/);
  assert.equal(await zh.textContent('#tab-nodes'), '节点');
  await zh.context().close();
});

test('under a hub-like prefix every request stays under /comfyui/u/p/, WebSocket included', T, async () => {
  const proxy = await startPrefixProxy('/comfyui/u/p', srv.port);
  try {
    const page = await browser.newPage({ locale: 'en-US' });
    const requests = [];
    const sockets = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('websocket', (ws) => sockets.push(ws.url()));
    const prefix = `http://${HOST}:${proxy.port}/comfyui/u/p/`;
    await page.goto(prefix);
    await waitText(page, '#node-count', /\d+ nodes/);
    await waitText(page, '#conn-text', /^Connected$/);
    await page.click('#example');
    await page.click('#submit');
    await waitText(page, '#run-state', /Finished/);
    await waitImagesLoaded(page, '#run-outputs img');
    await page.click('#tab-queue');
    await waitImagesLoaded(page, '#history li:first-child img');

    assert.ok(requests.length >= 8, `the page made its requests: ${requests}`);
    for (const url of requests) assert.ok(url.startsWith(prefix), `${url} stays under the prefix`);
    assert.ok(requests.some((u) => u.startsWith(`${prefix}api/view?`)));
    assert.deepEqual(sockets.map((u) => u.replace(/clientId=[0-9a-f]+$/, 'clientId=ID')),
      [`ws://${HOST}:${proxy.port}/comfyui/u/p/ws?clientId=ID`]);
    assert.deepEqual(proxy.outside, [], 'nothing was asked outside the prefix');
    assert.deepEqual(page.pageErrors, []);
    await page.context().close();
  } finally {
    await proxy.close();
  }
});

test('through the real hub, under /comfyui/{user}/{project}/, the page runs a workflow', T, async () => {
  const hub = await startHub();
  let context;
  try {
    const admin = await hub.login('admin', hub.adminPassword);
    const project = (await admin.post('/api/projects', { name: 'web' })).body;
    const opened = await admin.post(`/api/projects/${project.id}/open_comfy`);
    assert.equal(opened.status, 200, opened.text);
    trackInstancePid(opened.body.instance.pid);
    const page = await browser.newPage({ locale: 'en-US' });
    context = page.context();
    const [name, value] = admin.cookie.split(';')[0].split('=');
    await context.addCookies([{ name, value, url: hub.base }]);
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    const prefix = `${hub.base}/comfyui/admin/${project.id}/`;
    await page.goto(prefix);
    await waitText(page, '#node-count', /\d+ nodes/);
    await waitText(page, '#conn-text', /^Connected$/);
    await page.click('#example');
    await page.click('#submit');
    await waitText(page, '#run-state', /Finished/);
    await waitImagesLoaded(page, '#run-outputs img');
    // everything under the prefix, but the queue badge's script, which the hub adds from its own /static
    const badge = `${hub.base}/static/queue-badge.js`;
    assert.ok(requests.includes(badge), 'the hub added its queue badge to the page');
    for (const url of requests.filter((u) => u !== badge)) assert.ok(url.startsWith(prefix), `${url} stays under the prefix`);
    assert.deepEqual(page.pageErrors, []);
  } finally {
    await context?.close();
    await hub.stop();
  }
});

test('when the API fails the page says so instead of staying blank', T, async () => {
  const page = await browser.newPage({ locale: 'en-US' });
  await page.route('**/api/object_info', (route) => route.fulfill({ status: 500, body: 'database on fire' }));
  await page.goto(`${origin()}/`);
  await waitText(page, '#banner', /Cannot load data from the comfyd server at \/: The server answered 500: database on fire/);
  await page.click('#tab-nodes');
  await waitText(page, '#nodes-error', /500/);
  // the rest still works
  await page.click('#tab-queue');
  await waitText(page, '#history', /Success|Interrupted/);
  await page.unroute('**/api/object_info');
  await page.click('#banner-retry');
  await page.waitForSelector('#banner', { state: 'hidden' });
  await waitText(page, '#node-count', /\d+ nodes/);
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('on a phone-sized screen the page fits its width', T, async () => {
  const page = await openPage(`${origin()}/`, { viewport: { width: 390, height: 844 } });
  await page.click('#example');
  await page.click('#submit');
  await waitText(page, '#run-state', /Finished/);
  await waitImagesLoaded(page, '#run-outputs img');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling (${overflow}px too wide)`);
  await shot(page, 'serve-phone');
  await page.click('#tab-queue');
  await waitImagesLoaded(page, '#history li:first-child img');
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
  await shot(page, 'serve-phone-queue');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

// ---- a stand-in for the hub's proxy ----

/** Forwards prefix/* to the server (the prefix removed), WebSocket upgrades included, Host kept
 *  as the browser sent it (the hub does the same); anything else gets 404 and is recorded. */
function startPrefixProxy(prefix, targetPort) {
  const outside = [];
  const strip = (url) => (url.startsWith(prefix + '/') ? url.slice(prefix.length) : null);
  const server = http.createServer((req, res) => {
    const target = strip(req.url);
    if (!target) {
      outside.push(req.url);
      res.writeHead(404).end();
      return;
    }
    const up = http.request({ host: HOST, port: targetPort, method: req.method, path: target, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('upgrade', (req, socket, head) => {
    const target = strip(req.url);
    if (!target) {
      outside.push(req.url);
      socket.destroy();
      return;
    }
    const up = net.connect(targetPort, HOST, () => {
      const lines = [`${req.method} ${target} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(lines.join('\r\n') + '\r\n\r\n');
      up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  return new Promise((resolve) => {
    server.listen(0, HOST, () => resolve({
      port: server.address().port,
      outside,
      close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
    }));
  });
}
