// The hub's dashboard (web/hub/, served at / by `comfyd hub`), driven through a real browser
// against a real hub with real `comfyd serve` instances: logging in, the workbench's projects
// and their live status, the proxied ComfyUI in a new tab, the queues, the admin pages, the
// language switch and logging out. Screenshots of every page land in build/artifacts/screenshots/.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { COMFYD_BIN } from './lib/server.mjs';
import { startHub, waitFor, trackInstancePid, sleeper, installTestingPack } from './lib/hub.mjs';
import { launchBrowser, screenshot, logIn } from './lib/browser.mjs';

const T = { timeout: 120000 };
const STUDENT = { name: 'mia', password: 'mia-password-1' };

const card = (page, name) => page.locator('article.project', { has: page.getByRole('heading', { name, exact: true }) });

describe('the hub dashboard in a browser', () => {
  let hub, browser, admin, student, studentPage, adminPage;
  const projects = {};

  before(async () => {
    hub = await startHub({ env: { COMFY_MAX_CONCURRENT: '1' } });
    installTestingPack(hub.dataDir);
    admin = await hub.login('admin', hub.adminPassword);
    student = (await hub.addUser(admin, STUDENT.name, 'student', STUDENT.password)).client;
    browser = await launchBrowser();
  });
  after(async () => {
    for (const p of [studentPage, adminPage]) if (p) assert.deepEqual(p.pageErrors, [], 'no script errors in the pages');
    await browser?.close();
    await hub?.stop();
  });

  test('a visitor is sent to the login page; a wrong password is explained; logging in leads to the workbench', T, async () => {
    const anon = await hub.client().get('/', { accept: 'text/html' });
    assert.equal(anon.status, 302);
    assert.equal(anon.headers.get('location'), '/login');
    studentPage = await browser.newPage({ locale: 'en-US' });
    const page = studentPage;
    await page.goto(`${hub.base}/`);
    await page.waitForURL(`${hub.base}/login`);
    await page.getByLabel('User name').fill(STUDENT.name);
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Wrong user name or password.' }).waitFor();
    await screenshot(page, 'hub-login');
    await page.getByLabel('Password').fill(STUDENT.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(`${hub.base}/`);
    await page.getByRole('heading', { name: 'Workbench', level: 1 }).waitFor();
    // a student's menu: their projects and their queue, nothing of the admins'
    const menu = await page.getByRole('navigation').getByRole('link').allTextContents();
    assert.deepEqual(menu, ['Workbench', 'My queue']);
    await page.getByText('You have no projects yet').waitFor();
  });

  test("after logging in, ?next= leads only to this hub's own pages", T, async () => {
    for (const [next, expected] of [['/#/users', `${hub.base}/#/users`], ['/\\evil.example/x', `${hub.base}/`],
      ['/\t/evil.example', `${hub.base}/`], ['https://evil.example/', `${hub.base}/`]]) {
      const page = await browser.newPage({ locale: 'en-US' });
      await page.goto(`${hub.base}/login?next=${encodeURIComponent(next)}`);
      await page.getByLabel('User name').fill('admin');
      await page.getByLabel('Password').fill(hub.adminPassword);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.waitForURL((u) => !u.pathname.startsWith('/login'), { timeout: 10000 });
      await page.waitForLoadState();
      assert.equal(page.url(), expected, `next=${next}`);
      await page.context().close();
    }
  });

  test('create a project; Open starts its ComfyUI, the card turns online and the proxied page opens in a new tab', T, async () => {
    const page = studentPage;
    await page.getByLabel('New project name').fill('Cats');
    await page.getByRole('button', { name: 'Create project' }).click();
    const cats = card(page, 'Cats');
    await cats.getByText('Not running').waitFor();
    projects.cats = (await student.get('/api/projects')).body.find((p) => p.name === 'Cats');
    const [tab] = await Promise.all([
      page.waitForEvent('popup'),
      cats.getByRole('button', { name: 'Open' }).click(),
    ]);
    await cats.getByText('Online').waitFor({ timeout: 60000 });
    // the instance's own page may add a #view to its address as soon as it runs
    const proxied = `${hub.base}/comfyui/${STUDENT.name}/${projects.cats.id}/`;
    await tab.waitForURL((u) => u.href === proxied || u.href.startsWith(`${proxied}#`), { timeout: 60000 });
    await tab.waitForLoadState();
    assert.match(await tab.title(), /comfyd/);
    // the tab's page is the instance's, through the proxy: its API answers relative to it
    const stats = await tab.evaluate(async () => (await fetch('system_stats')).json());
    assert.ok(stats.system?.comfyui_version, JSON.stringify(stats));
    const inst = (await student.get(`/api/projects/${projects.cats.id}`)).body.instance;
    trackInstancePid(inst.pid);
    assert.equal(inst.status, 'online');
    await tab.close();
    await screenshot(page, 'hub-workbench');
  });

  test("a card follows the hub's events: an open and a stop made elsewhere show without a reload", T, async () => {
    const page = studentPage;
    const dogs = (await student.post('/api/projects', { name: 'Dogs' })).body;
    await page.reload();
    const c = card(page, 'Dogs');
    await c.getByText('Not running').waitFor();
    const r = await student.post(`/api/projects/${dogs.id}/open_comfy`);
    assert.equal(r.status, 200, r.text);
    trackInstancePid(r.body.instance.pid);
    await c.getByText('Online').waitFor();
    assert.equal((await student.post(`/api/projects/${dogs.id}/stop_comfy`)).status, 200);
    await c.getByText('Not running').waitFor();
  });

  test('rename and delete a project, the delete only after confirming', T, async () => {
    const page = studentPage;
    const c = card(page, 'Dogs');
    await c.getByRole('button', { name: 'Rename' }).click();
    const rename = page.getByRole('dialog', { name: 'Rename project' });
    await rename.getByLabel('Project name').fill('Puppies');
    await rename.getByRole('button', { name: 'Save' }).click();
    const puppies = card(page, 'Puppies');
    await puppies.waitFor();
    // the keyboard alone: Escape closes a dialog without a change
    await puppies.getByRole('button', { name: 'Rename' }).focus();
    await page.keyboard.press('Enter');
    await rename.getByLabel('Project name').fill('Not this');
    await page.keyboard.press('Escape');
    await rename.waitFor({ state: 'detached' });
    assert.ok((await student.get('/api/projects')).body.some((p) => p.name === 'Puppies'), 'Escape: no rename');
    await puppies.getByRole('button', { name: 'Delete' }).click();
    const confirm = page.getByRole('dialog', { name: 'Delete project?' });
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    assert.ok((await student.get('/api/projects')).body.some((p) => p.name === 'Puppies'), 'cancelled: still there');
    await puppies.getByRole('button', { name: 'Delete' }).click();
    await confirm.getByRole('button', { name: 'Delete' }).click();
    await puppies.waitFor({ state: 'detached' });
    assert.ok(!(await student.get('/api/projects')).body.some((p) => p.name === 'Puppies'));
    // a name the hub refuses is explained in words, not as the API's JSON
    await page.getByLabel('New project name').fill(' ');
    await page.locator('#new-project').evaluate((el) => { el.required = false; });
    await page.getByRole('button', { name: 'Create project' }).click();
    const alert = page.getByRole('alert');
    await alert.getByText('A name needs 1 to 128 characters').waitFor();
    assert.doesNotMatch(await alert.innerText(), /[{}]/);
  });

  test('when the API cannot be reached the page says so and offers to try again', T, async () => {
    const page = await browser.newPage({ locale: 'en-US', storageState: await studentPage.context().storageState() });
    await page.route('**/api/projects', (route) => route.abort('connectionrefused'));
    await page.goto(`${hub.base}/`);
    await page.getByText('Cannot reach the hub').waitFor();
    await page.unroute('**/api/projects');
    await page.getByRole('button', { name: 'Try again' }).click();
    await card(page, 'Cats').waitFor();
    await page.context().close();
  });
  test('My queue: a running prompt and a waiting one with its position', T, async () => {
    const page = studentPage;
    const url = `${hub.base}/comfyui/${STUDENT.name}/${projects.cats.id}/prompt`;
    // COMFY_MAX_CONCURRENT=1: the slow prompt takes the only slot, the next one waits
    const post = async (seconds, seed) => {
      const r = await page.request.post(url, { data: { prompt: sleeper(seconds, seed), client_id: 'web-hub' } });
      assert.equal(r.status(), 200, await r.text());
      return (await r.json()).prompt_id;
    };
    projects.slow = await post(20, 1);
    await waitFor(async () => (await student.get(`/api/queue/tasks/${projects.slow}`)).body.state === 'running', 20000, 'the slow prompt running');
    projects.waiting = await post(1, 2);
    await page.getByRole('navigation').getByRole('link', { name: 'My queue' }).click();
    await page.getByRole('heading', { name: 'My queue', level: 1 }).waitFor();
    const rows = page.locator('#my-tasks tbody tr');
    const waitingRow = page.locator(`#my-tasks tr[data-key="${projects.waiting}"]`);
    const runningRow = page.locator(`#my-tasks tr[data-key="${projects.slow}"]`);
    await waitingRow.getByText('1 (next)').waitFor();
    await waitingRow.getByText('Waiting', { exact: true }).waitFor();
    await runningRow.getByText('Running', { exact: true }).waitFor();
    assert.equal(await rows.count(), 2);
    assert.match(await waitingRow.innerText(), /Cats/);
    await screenshot(page, 'hub-my-queue');
    projects.queueShown = true;
  });

  test('the proxied ComfyUI page shows where the waiting prompt stands; × hides it for good', T, async () => {
    assert.ok(projects.queueShown, 'the previous test left a running and a waiting prompt');
    const tab = await studentPage.context().newPage();
    const errors = [];
    tab.on('pageerror', (e) => errors.push(String(e)));
    await tab.goto(`${hub.base}/comfyui/${STUDENT.name}/${projects.cats.id}/`);
    // the hub added its script to the instance's page; it hears the position on its own socket
    const badge = tab.locator('#comfyd-queue-badge');
    await badge.getByText('Your prompt is next').waitFor({ timeout: 15000 });
    assert.equal(await badge.getAttribute('role'), 'status');
    await screenshot(tab, 'hub-queue-badge');
    await badge.getByRole('button', { name: 'Stop showing the queue position' }).click();
    await badge.waitFor({ state: 'detached' });
    await tab.reload({ waitUntil: 'load' });
    await tab.waitForFunction(() => window.__comfydQueueBadge === true);
    assert.equal(await tab.locator('#comfyd-queue-badge').count(), 0, 'hidden after a reload too');
    await tab.evaluate(() => localStorage.removeItem('comfyd.queueBadge'));
    await tab.close();
    assert.deepEqual(errors, []);
  });

  test("the admin's Queue page: every prompt with its user, the figures and the last hour's chart", T, async () => {
    assert.ok(projects.queueShown, 'the previous test left a running and a waiting prompt');
    adminPage = await browser.newPage({ locale: 'en-US' });
    const page = adminPage;
    await logIn(page, hub.base, { name: 'admin', password: hub.adminPassword });
    const menu = await page.getByRole('navigation').getByRole('link').allTextContents();
    assert.deepEqual(menu, ['Workbench', 'My queue', 'Queue', 'Instances', 'Users', 'Node packs']);
    await page.getByRole('navigation').getByRole('link', { name: 'Queue', exact: true }).click();
    const waitingRow = page.locator(`#all-tasks tr[data-key="${projects.waiting}"]`);
    await waitingRow.waitFor();
    assert.match(await waitingRow.innerText(), /mia/);
    assert.match(await waitingRow.innerText(), /Cats/);
    assert.equal(await page.locator('#fig-running .tile-value').innerText(), '1');
    assert.equal(await page.locator('#fig-waiting .tile-value').innerText(), '1');
    assert.equal(await page.locator('#fig-max .tile-value').innerText(), '1');
    // the hub samples every 10 s; the chart draws its two lines once there is a sample
    await page.locator('#queue-chart svg polyline.line-running').waitFor({ timeout: 30000 });
    await screenshot(page, 'hub-queue');
  });

  test('the student cancels the waiting prompt from My queue', T, async () => {
    const page = studentPage;
    const waitingRow = page.locator(`#my-tasks tr[data-key="${projects.waiting}"]`);
    await waitingRow.getByRole('button', { name: /Cancel/ }).click();
    await waitingRow.waitFor({ state: 'detached' });
    await page.getByText('Prompt cancelled.').waitFor();
    assert.equal((await student.get(`/api/queue/tasks/${projects.waiting}`)).body.state, 'cancelled');
    // the running one cannot be cancelled here: it has no button, and ends by itself
    const runningRow = page.locator(`#my-tasks tr[data-key="${projects.slow}"]`);
    assert.equal(await runningRow.getByRole('button').count(), 0);
    await page.getByText('Nothing of yours is waiting or running.').waitFor({ timeout: 45000 });
  });

  test("the admin's Instances page: port, pid, uptime, memory, the log, a restart", T, async () => {
    const page = adminPage;
    await page.getByRole('navigation').getByRole('link', { name: 'Instances' }).click();
    const before = (await admin.get(`/api/projects/${projects.cats.id}`)).body.instance;
    const listed = (await admin.get('/api/instances')).body.find((i) => i.id === before.id);
    assert.equal(listed.user, STUDENT.name);
    assert.equal(listed.project, 'Cats');
    assert.ok(listed.memory_bytes > 1024 * 1024, `memory of a running instance: ${listed.memory_bytes}`);
    const row = page.locator(`#instances tr[data-key="${before.id}"]`);
    await row.getByText('Online').waitFor();
    const text = await row.innerText();
    for (const part of [STUDENT.name, 'Cats', String(before.port), String(before.pid)]) assert.ok(text.includes(part), `${part} in ${text}`);
    assert.match(text, /\d+ MB/);
    assert.match(text, /\d+ (s|min)/);
    await row.getByRole('button', { name: `Log ${STUDENT.name}/Cats` }).click();
    await waitFor(async () => (await page.locator('#instance-log').innerText()).length > 40 && !/Loading/.test(await page.locator('#instance-log').innerText()), 10000, 'the log');
    await screenshot(page, 'hub-instances');
    await row.getByRole('button', { name: `Restart ${STUDENT.name}/Cats` }).click();
    const after = await waitFor(async () => {
      const i = (await admin.get(`/api/projects/${projects.cats.id}`)).body.instance;
      return i.status === 'online' && i.pid !== before.pid ? i : null;
    }, 60000, 'a restarted instance');
    trackInstancePid(after.pid);
    await page.getByText('“Cats” restarted.').waitFor({ timeout: 30000 });
    await page.locator(`#instances tr[data-key="${after.id}"]`).getByText(String(after.pid)).waitFor();
  });

  test("the admin's Users page: create a user, disable them, and the audit log", T, async () => {
    const page = adminPage;
    await page.getByRole('navigation').getByRole('link', { name: 'Users' }).click();
    const form = page.locator('#create-user');
    await form.getByLabel('User name').fill('noah');
    await form.getByLabel('Password').fill('noah-password-1');
    await form.getByLabel('Role').selectOption('teacher');
    await form.getByRole('button', { name: 'Create user' }).click();
    await page.getByText('User “noah” created.').waitFor();
    const noah = (await admin.get('/api/users')).body.find((u) => u.name === 'noah');
    assert.equal(noah.role, 'teacher');
    const row = page.locator(`#users tr[data-key="${noah.id}"]`);
    await row.getByText('Active').waitFor();
    await row.getByRole('button', { name: 'Disable noah' }).click();
    await row.getByText('Disabled', { exact: true }).waitFor();
    assert.equal((await admin.get('/api/users')).body.find((u) => u.name === 'noah').disabled, true);
    await page.locator('#audit').getByText('user_create').first().waitFor();
    await screenshot(page, 'hub-users');
  });

  test("the admin's Node packs page: install from the catalog for every instance, restart them, disable, uninstall", T, async () => {
    const page = adminPage;
    assert.equal((await student.get('/api/packs')).status, 403, 'admins only');
    assert.equal((await admin.post('/api/packs/tasks', { action: 'install', id: '../x' })).status, 400);
    await page.getByRole('navigation').getByRole('link', { name: 'Node packs' }).click();
    await page.getByLabel('Search packs').fill('reverse text');
    const row = page.locator('#packs tr[data-key="comfyd-example-text"]');
    await row.getByText('Not installed').waitFor();
    assert.equal(await page.locator('#packs tbody tr').count(), 1, 'the search narrows the list');
    await row.getByRole('button', { name: 'Install comfyd example: text nodes' }).click();
    await row.getByText('Enabled', { exact: true }).waitFor({ timeout: 60000 });
    await page.getByText('“comfyd example: text nodes” installed.').waitFor();
    const dir = path.join(hub.dataDir, 'shared', 'custom_nodes', 'comfyd-example-text');
    assert.ok(fs.existsSync(dir), 'installed into the shared custom_nodes');
    await screenshot(page, 'hub-packs');
    // the running instance loads the pack when it starts again
    const cats = `/comfyui/${STUDENT.name}/${projects.cats.id}`;
    assert.equal((await admin.get(`${cats}/object_info/ExampleReverseText`)).body?.ExampleReverseText, undefined);
    const before = (await admin.get(`/api/projects/${projects.cats.id}`)).body.instance;
    await page.getByRole('button', { name: 'Restart instances' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Restart instances' }).click();
    await page.getByText('1 instance(s) restarted.').waitFor({ timeout: 60000 });
    const after = (await admin.get(`/api/projects/${projects.cats.id}`)).body.instance;
    trackInstancePid(after.pid);
    assert.notEqual(after.pid, before.pid);
    assert.ok((await admin.get(`${cats}/object_info/ExampleReverseText`)).body?.ExampleReverseText, 'the new node is there');
    await row.getByRole('button', { name: 'Disable comfyd example: text nodes' }).click();
    await row.getByText('Disabled', { exact: true }).waitFor({ timeout: 30000 });
    await row.getByRole('button', { name: 'Uninstall comfyd example: text nodes' }).click();
    await page.getByRole('dialog', { name: 'Uninstall pack?' }).getByRole('button', { name: 'Uninstall' }).click();
    await row.getByText('Not installed').waitFor({ timeout: 30000 });
    assert.ok(!fs.existsSync(dir), 'removed from the shared custom_nodes');
  });

  test("a teacher sees the Queue but not the admin's pages, and may stop but not rename a student's project", T, async () => {
    await hub.addUser(admin, 'tia', 'teacher', 'tia-password-1');
    const page = await browser.newPage({ locale: 'en-US' });
    await logIn(page, hub.base, { name: 'tia', password: 'tia-password-1' });
    assert.deepEqual(await page.getByRole('navigation').getByRole('link').allTextContents(), ['Workbench', 'My queue', 'Queue']);
    const cats = card(page, 'Cats');
    await cats.getByText(`Owner: ${STUDENT.name}`).waitFor();
    await cats.getByRole('button', { name: 'Stop' }).waitFor();
    assert.equal(await cats.getByRole('button', { name: 'Rename' }).count(), 0);
    assert.equal(await cats.getByRole('button', { name: 'Delete' }).count(), 0);
    // an admin's page asked for by address falls back to the workbench
    await page.goto(`${hub.base}/#/users`);
    await page.getByRole('heading', { name: 'Workbench', level: 1 }).waitFor();
    assert.deepEqual(page.pageErrors, []);
    await page.context().close();
  });

  test('a phone shows the pages without sideways scrolling', T, async () => {
    const page = await browser.newPage({ locale: 'en-US', viewport: { width: 390, height: 844 }, storageState: await adminPage.context().storageState() });
    for (const [route, name] of [['workbench', 'hub-phone'], ['queue', 'hub-phone-queue'], ['users', 'hub-phone-users']]) {
      await page.goto(`${hub.base}/#/${route}`);
      await page.locator('main h1').waitFor();
      await page.locator('main .muted', { hasText: 'Loading' }).first().waitFor({ state: 'detached' }).catch(() => {});
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 390, `${route}: the page is ${width}px wide`);
      await screenshot(page, name);
    }
    assert.deepEqual(page.pageErrors, []);
    await page.context().close();
  });

  test('every text exists in both languages; 中文 is remembered across a reload and on the login page; log out', T, async () => {
    const page = studentPage;
    const keys = await page.evaluate(async () => {
      const { testing } = await import('/static/i18n.js');
      return { en: Object.keys(testing.texts.en).sort(), zh: Object.keys(testing.texts.zh).sort() };
    });
    assert.deepEqual(keys.zh, keys.en);
    await page.getByRole('navigation').getByRole('link', { name: 'Workbench' }).click();
    await page.getByRole('button', { name: '中文' }).click();
    await page.getByRole('heading', { name: '工作台', level: 1 }).waitFor();
    await page.reload();
    await page.getByRole('heading', { name: '工作台', level: 1 }).waitFor();
    const cats = card(page, 'Cats');
    await cats.getByText('已连接').waitFor();
    await cats.getByRole('button', { name: '数据生成' }).waitFor();
    assert.deepEqual(await page.getByRole('navigation').getByRole('link').allTextContents(), ['工作台', '我的队列']);
    await screenshot(page, 'hub-zh');
    await page.getByRole('button', { name: '退出登录' }).click();
    await page.waitForURL(`${hub.base}/login`);
    await page.getByRole('heading', { name: '登录 comfyd' }).waitFor();
    await page.goto(`${hub.base}/`);
    await page.waitForURL(`${hub.base}/login`);
    await screenshot(page, 'hub-login-zh');
  });
});
