// The hub's dashboard (web/hub/, served at / by `comfyd hub`), driven through a real browser
// against a real hub with real `comfyd serve` instances: logging in, the workbench's projects
// and their live status, the proxied ComfyUI in a new tab, the queues, the admin pages, the
// language switch and logging out. Screenshots of every page land in build/artifacts/screenshots/.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { COMFYD_BIN } from './lib/server.mjs';
import { startHub, waitFor, trackInstancePid } from './lib/hub.mjs';
import { launchBrowser, screenshot } from './lib/browser.mjs';

const T = { timeout: 120000 };
const STUDENT = { name: 'mia', password: 'mia-password-1' };

/** The testing pack (its TestSleep node), in the shared custom_nodes every instance links to. */
function installTestingPack(dataDir) {
  const pack = path.join(path.dirname(COMFYD_BIN), 'tests', 'conformance', 'testing_pack', 'testing_pack.so');
  const dir = path.join(dataDir, 'shared', 'custom_nodes', 'testing-pack');
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(pack, path.join(dir, 'testing_pack.so'));
}

/** A prompt that takes `seconds`, different per seed so no cache can skip it. */
function sleeper(seconds, seed) {
  return {
    1: { class_type: 'PrimitiveInt', inputs: { value: seed } },
    2: { class_type: 'TestSleep', inputs: { value: ['1', 0], seconds } },
    3: { class_type: 'PreviewAny', inputs: { source: ['2', 0] } },
  };
}

/** Logs in through the login form and waits for the dashboard. */
async function logIn(page, base, { name, password }) {
  await page.goto(`${base}/`);
  await page.waitForURL(/\/login/);
  await page.getByLabel(/User name|用户名/).fill(name);
  await page.getByLabel(/^(Password|密码)$/).fill(password);
  await page.getByRole('button', { name: /Log in|登录/ }).click();
  await page.waitForURL(`${base}/`);
  await page.locator('#logout').waitFor();
}

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
    await tab.waitForURL(`${hub.base}/comfyui/${STUDENT.name}/${projects.cats.id}/`, { timeout: 60000 });
    await tab.getByText('comfyd', { exact: false }).first().waitFor();
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
});
