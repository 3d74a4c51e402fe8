// Starts `comfyd hub` for the integration tests, and a small API client with a cookie jar.
//
//   const hub = await startHub({ env: { COMFYUI_MAX_INSTANCES: '1' } });
//   const admin = await hub.login('admin', hub.adminPassword);
//   const r = await admin.post('/api/projects', { name: 'p1' });   // { status, body, headers }
//   await hub.stop();       // SIGTERM, exit 0, no sanitizer report (in the hub or its instances' logs)
//   await hub.kill9();      // for crash tests; startHub({ dataDir: hub.dataDir }) starts it again
//
// COMFYD_TEST_HUB_STORE=postgres runs every hub of a suite on PostgreSQL: one throw-away server
// per test process (lib/pg.mjs), a new database per data directory (the same one when a hub is
// started again on its data dir). A test that sets COMFYD_HUB_STORE itself keeps its own.
//
// Instances run in their own session, so they outlive a killed hub: every pid a test learns is
// also SIGKILLed at exit, whatever happened.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { COMFYD_BIN, HOST, freePort, probeStatus, sanitizerReports, sleep, waitForBinary } from './server.mjs';
import { startPostgres } from './pg.mjs';

let suitePostgres = null;
const storeOfDataDir = new Map();

/** The store of a data dir under COMFYD_TEST_HUB_STORE=postgres: a database of its own. */
async function postgresStoreFor(dataDir) {
  if (!storeOfDataDir.has(dataDir)) {
    suitePostgres ??= await startPostgres();
    const db = `hub_${storeOfDataDir.size + 1}`;
    suitePostgres.query(`CREATE DATABASE ${db}`);
    storeOfDataDir.set(dataDir, `${suitePostgres.uri}&dbname=${db}`);
  }
  return storeOfDataDir.get(dataDir);
}

const instancePids = new Set();
export function trackInstancePid(pid) { if (pid) instancePids.add(pid); }
process.on('exit', () => {
  for (const pid of instancePids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
});

export function pidAlive(pid) {
  try { process.kill(pid, 0); } catch { return false; }
  // a zombie is not alive
  try { return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8')); } catch { return false; }
}

/** A port range of `n` ports that were free a moment ago (consecutive, above 20000). */
export async function freePortRange(n) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = 20000 + Math.floor(Math.random() * 40000);
    let ok = true;
    for (let p = first; p < first + n && ok; p++) ok = (await probeStatus(p, '/', 200)) === 0;
    if (ok) return [first, first + n - 1];
  }
  throw new Error('no free port range');
}

export class ApiClient {
  constructor(base, { token = null, cookie = null } = {}) {
    this.base = base;
    this.token = token;
    this.cookie = cookie;
  }
  headers(extra = {}) {
    const h = {};
    if (this.token) h.authorization = `Bearer ${this.token}`;
    if (this.cookie) h.cookie = this.cookie;
    return { ...h, ...extra }; // a test's own headers win
  }
  async request(method, urlPath, body, extraHeaders = {}) {
    const init = { method, headers: this.headers(extraHeaders), redirect: 'manual' };
    if (body !== undefined) {
      init.body = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
      init.headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(this.base + urlPath, init);
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    const setCookie = res.headers.get('set-cookie');
    if (setCookie) {
      const m = /comfyd_session=([^;]*)/.exec(setCookie);
      if (m) this.cookie = m[1] ? `comfyd_session=${m[1]}` : null;
    }
    return { status: res.status, body: json, text, headers: res.headers };
  }
  get(p, h) { return this.request('GET', p, undefined, h); }
  post(p, b = {}, h) { return this.request('POST', p, b, h); }
  patch(p, b, h) { return this.request('PATCH', p, b, h); }
  del(p, h) { return this.request('DELETE', p, undefined, h); }
}

/**
 * options: env (extra environment), dataDir (reuse), portRange ([first, last]; default 10 free
 *          ports), adminPassword (default 'admin-password-1'), args (extra flags)
 */
export async function startHub(options = {}) {
  await waitForBinary(Number(process.env.COMFYD_WAIT_BINARY_MS ?? 120000));
  const dataDir = options.dataDir || (await fsp.mkdtemp(path.join(os.tmpdir(), 'comfyd-hub-')));
  const portRange = options.portRange || (await freePortRange(10));
  const adminPassword = options.adminPassword ?? 'admin-password-1';
  const port = await freePort();
  const env = {
    ...process.env,
    ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1:abort_on_error=0',
    UBSAN_OPTIONS: process.env.UBSAN_OPTIONS || 'print_stacktrace=1:halt_on_error=1',
    COMFYD_ADMIN_PASSWORD: adminPassword,
    COMFYUI_PORT_RANGE: `${portRange[0]}-${portRange[1]}`,
    ...(process.env.COMFYD_TEST_HUB_STORE === 'postgres' ? { COMFYD_HUB_STORE: await postgresStoreFor(dataDir) } : {}),
    ...(options.env || {}),
  };
  const argv = ['hub', '--listen', HOST, '--port', String(port), '--data-dir', dataDir, ...(options.args || [])];
  const child = spawn(COMFYD_BIN, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.unref();
  let output = '';
  for (const s of [child.stdout, child.stderr]) {
    s.setEncoding('utf8');
    s.unref?.();
    s.on('data', (d) => { output += d; if (process.env.COMFYD_TEST_VERBOSE) process.stderr.write(d); });
  }
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.on('close', (code, signal) => { exitInfo = { code, signal }; resolve(exitInfo); });
  });
  const deadline = Date.now() + 20000;
  for (;;) {
    if (exitInfo) throw new Error(`comfyd hub exited during start-up (${JSON.stringify(exitInfo)}):\n${output}`);
    if ((await probeStatus(port, '/api/me', 1000)) === 401) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`comfyd hub did not start:\n${output}`);
    }
    await sleep(50);
  }
  const base = `http://${HOST}:${port}`;
  const hub = {
    port, base, dataDir, portRange, adminPassword, child, exited,
    get pid() { return child.pid; },
    output: () => output,
    client: (opts) => new ApiClient(base, opts),
    async login(username, password) {
      const c = new ApiClient(base);
      const r = await c.post('/api/login', { username, password });
      assert.equal(r.status, 200, `login of ${username}: ${r.text}`);
      return c;
    },
    /** Creates a user through an admin client; returns { user, client } (logged in). */
    async addUser(admin, name, role = 'student', password = `${name}-password`) {
      const r = await admin.post('/api/users', { name, password, role });
      assert.equal(r.status, 201, r.text);
      return { user: r.body, client: await hub.login(name, password) };
    },
    async waitExit(ms) {
      let t;
      const r = await Promise.race([exited, new Promise((res) => { t = setTimeout(() => res(null), ms); })]);
      clearTimeout(t);
      return r;
    },
    async kill9() {
      if (!exitInfo) child.kill('SIGKILL');
      await hub.waitExit(10000);
    },
    /** Sanitizer reports in the hub's output and in every instance log under the data dir. */
    assertClean() {
      assert.deepEqual(sanitizerReports(output), [], `sanitizer report in the hub:\n${output}`);
      const logDir = path.join(dataDir, 'logs');
      for (const f of fs.existsSync(logDir) ? fs.readdirSync(logDir) : []) {
        const text = fs.readFileSync(path.join(logDir, f), 'utf8');
        assert.deepEqual(sanitizerReports(text), [], `sanitizer report in instance log ${f}:\n${text}`);
      }
    },
    /** SIGTERM, exit 0 within timeoutMs, nothing reported; removes the data dir unless keep. */
    async stop({ keep = false, timeoutMs = 30000 } = {}) {
      if (!exitInfo) child.kill('SIGTERM');
      const info = await hub.waitExit(timeoutMs);
      if (!info) child.kill('SIGKILL');
      assert.ok(info, `the hub did not stop within ${timeoutMs} ms:\n${output}`);
      assert.equal(info.signal, null, output);
      assert.equal(info.code, 0, output);
      hub.assertClean();
      if (!keep && !process.env.COMFYD_TEST_KEEP) await fsp.rm(dataDir, { recursive: true, force: true });
    },
  };
  return hub;
}

/** Polls fn() until it returns a truthy value (returned) or timeoutMs passes (throws). */
export async function waitFor(fn, timeoutMs = 10000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A prompt that takes `seconds` (the testing pack's TestSleep), different per seed so that no
 * cache can skip it. */
export function sleeper(seconds, seed) {
  return {
    1: { class_type: 'PrimitiveInt', inputs: { value: seed } },
    2: { class_type: 'TestSleep', inputs: { value: ['1', 0], seconds } },
    3: { class_type: 'PreviewAny', inputs: { source: ['2', 0] } },
  };
}

/** The testing pack (TestSleep and the rest), in the shared custom_nodes every instance of the
 * hub in dataDir links to. */
export function installTestingPack(dataDir) {
  const pack = path.join(path.dirname(COMFYD_BIN), 'tests', 'conformance', 'testing_pack', 'testing_pack.so');
  const dir = path.join(dataDir, 'shared', 'custom_nodes', 'testing-pack');
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(pack, path.join(dir, 'testing_pack.so'));
}
