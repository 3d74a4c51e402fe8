// A real browser for the page tests: playwright-core driving Debian's chromium, headless, with
// the network limited to loopback (any request to another host fails, so a page that reaches
// for a CDN is caught). Screenshots go to build/artifacts/screenshots/ (COMFYD_ARTIFACTS to
// change it) so a CI run keeps them.
//
//   const browser = await launchBrowser();
//   const page = await browser.newPage({ locale: 'zh-CN' });
//   await page.goto(hub.base + '/');
//   await screenshot(page, 'hub-workbench');
//   await browser.close();
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = process.env.COMFYD_ARTIFACTS
  ?? path.resolve(here, '../../../build/artifacts');

export const CHROMIUM = process.env.CHROMIUM_BIN
  ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

export async function launchBrowser() {
  if (!CHROMIUM) throw new Error('no chromium: scripts/setup-debian.sh installs Debian\'s chromium');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const newContext = browser.newContext.bind(browser);
  // Every context (and newPage's implicit one) gets the loopback-only network and collects the
  // page's errors so a test can assert there were none.
  browser.newContext = async (options = {}) => {
    const context = await newContext({ viewport: { width: 1280, height: 800 }, ...options });
    await context.route('**/*', (route) => {
      const host = new URL(route.request().url()).hostname;
      if (LOOPBACK.test(host) || route.request().url().startsWith('data:')) return route.continue();
      return route.abort('blockedbyclient');
    });
    return context;
  };
  browser.newPage = async (options = {}) => {
    const context = await browser.newContext(options);
    const page = await context.newPage();
    page.pageErrors = [];
    page.on('pageerror', (e) => page.pageErrors.push(String(e)));
    return page;
  };
  return browser;
}

/** Saves a full-page PNG as ARTIFACTS/screenshots/NAME.png and returns its path. */
export async function screenshot(page, name) {
  const dir = path.join(ARTIFACTS, 'screenshots');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Logs in to a hub's dashboard through its login form and waits for the dashboard. */
export async function logIn(page, base, { name, password }) {
  await page.goto(`${base}/`);
  await page.waitForURL(/\/login/);
  await page.getByLabel(/User name|用户名/).fill(name);
  await page.getByLabel(/^(Password|密码)$/).fill(password);
  await page.getByRole('button', { name: /Log in|登录/ }).click();
  await page.waitForURL(`${base}/`);
  await page.locator('#logout').waitFor();
}
