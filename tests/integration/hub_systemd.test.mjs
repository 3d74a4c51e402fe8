// comfyd hub with COMFYUI_LAUNCHER=systemd: every instance a transient unit of a real
// `systemd --user` manager, which this test starts for itself (its own XDG_RUNTIME_DIR, so a
// developer's own manager is never touched). In a container booted without systemd the manager
// refuses to start unless /run/systemd/system exists; as root the test gives it one in a private
// mount namespace (unshare -m), so the machine's /run is not changed. Where neither works the
// suite is skipped and says why.
//
// Through the hub, end to end: the unit's name, its MemoryMax and CPUQuota, its working
// directory (COMFYUI_REPO_PATH) and environment, a stop (systemctl kill), a kill behind the hub's
// back seen as a crash with its signal, the adoption of a unit by a hub killed with kill -9, and
// a hub that stops its units and exits clean.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { COMFYD_BIN, sleep } from './lib/server.mjs';
import { startHub, waitFor, pidAlive, trackInstancePid } from './lib/hub.mjs';

const T = { timeout: 60000 };
const SYSTEMD = '/lib/systemd/systemd';

/** A `systemd --user` of our own, or { reason } when it cannot run here. */
async function startUserManager() {
  if (!fs.existsSync(SYSTEMD)) return { reason: `no ${SYSTEMD}` };
  if (spawnSync('systemd-run', ['--version']).status !== 0) return { reason: 'no systemd-run' };
  const runtime = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-systemd-'));
  fs.chmodSync(runtime, 0o700);
  const env = { ...process.env, XDG_RUNTIME_DIR: runtime };
  delete env.DBUS_SESSION_BUS_ADDRESS;
  let argv;
  if (fs.existsSync('/run/systemd/system')) argv = [SYSTEMD, '--user'];
  else if (process.getuid() === 0 && spawnSync('unshare', ['--help']).status === 0) {
    argv = ['unshare', '-m', 'sh', '-c',
      'mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && exec "$0" --user', SYSTEMD];
  } else {
    return { reason: 'booted without systemd, and not root to give a manager its own /run/systemd' };
  }
  const child = spawn(argv[0], argv.slice(1), { env, stdio: 'ignore', detached: true });
  child.unref();
  const ctl = (...args) => spawnSync('systemctl', ['--user', ...args], { env, encoding: 'utf8' });
  const deadline = Date.now() + 15000;
  while (ctl('show', '-p', 'Version', '--value').status !== 0) {
    if (Date.now() > deadline || child.exitCode !== null) {
      try { child.kill('SIGKILL'); } catch { /* gone */ }
      return { reason: `systemd --user did not start: ${ctl('show').stderr.trim()}` };
    }
    await sleep(100);
  }
  return {
    runtime, child, ctl,
    show: (unit, prop) => ctl('show', '-p', prop, '--value', unit).stdout.trim(),
    async stop() {
      try { child.kill('SIGTERM'); } catch { /* gone */ }
      // it stops its units first (none should be left); polled, since the child is unref'd
      await waitFor(() => child.exitCode !== null || child.signalCode !== null, 20000, 'systemd --user to exit');
      fs.rmSync(runtime, { recursive: true, force: true });
    },
  };
}

const manager = await startUserManager();

/** The unit a pid runs in, from its cgroup path. */
function unitOf(pid) {
  const m = /\/(comfyd-\d+-[0-9a-f]{16}\.service)$/m.exec(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
  return m && m[1];
}

describe('hub: instances as systemd units (COMFYUI_LAUNCHER=systemd)', { skip: manager.reason }, () => {
  let hub, admin, stu, project, inst, unit;
  const repo = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd repo '));
  const env = () => ({
    XDG_RUNTIME_DIR: manager.runtime,
    COMFYUI_LAUNCHER: 'systemd', COMFYUI_MEMORY_MAX: '768M', COMFYUI_CPU_QUOTA: '150%',
    // the working directory a Python ComfyUI checkout needs; the command stays comfyd's
    COMFYUI_REPO_PATH: repo,
    COMFYUI_COMMAND: `${COMFYD_BIN} serve --listen {listen} --port {port} --base-directory {base_dir}`,
    COMFYD_TEST_MARK: 'passed-through',
    COMFYUI_HEARTBEAT_INTERVAL_SECONDS: '1', COMFYUI_STOP_GRACE_SECONDS: '10',
  });
  const restart = async () => {
    hub = await startHub({ dataDir: hub.dataDir, portRange: hub.portRange, env: env() });
    admin = await hub.login('admin', hub.adminPassword);
    stu.client = hub.client({ cookie: stu.client.cookie });
  };
  const instanceOf = async (id) => (await stu.client.get(`/api/projects/${id}`)).body.instance;

  after(async () => {
    await hub?.stop();
    await manager.stop();
    fs.rmSync(repo, { recursive: true, force: true });
  });

  test('the local host runs its instances through systemd', T, async () => {
    hub = await startHub({ env: env() });
    admin = await hub.login('admin', hub.adminPassword);
    stu = await hub.addUser(admin, 'stu');
    const hosts = (await admin.get('/api/hosts')).body;
    assert.equal(hosts.length, 1);
    assert.equal(hosts[0].name, 'local');
    assert.equal(hosts[0].launcher, 'systemd');
  });

  test('an open starts a unit with the limits, in COMFYUI_REPO_PATH, with the hub\'s environment', T, async () => {
    project = (await stu.client.post('/api/projects', { name: 'boxed' })).body;
    const o = await stu.client.post(`/api/projects/${project.id}/open_comfy`);
    assert.equal(o.status, 200, o.text);
    inst = o.body.instance;
    trackInstancePid(inst.pid);
    assert.equal(inst.host, 'local');
    assert.equal(inst.status, 'online');
    unit = unitOf(inst.pid);
    assert.ok(unit, `pid ${inst.pid} is in a unit of ours: ${fs.readFileSync(`/proc/${inst.pid}/cgroup`, 'utf8')}`);
    assert.ok(unit.startsWith(`comfyd-${inst.port}-`));
    // the unit's main process is the instance itself, comfyd serve on its port
    assert.equal(Number(manager.show(unit, 'MainPID')), inst.pid);
    const cmdline = fs.readFileSync(`/proc/${inst.pid}/cmdline`, 'utf8').split('\0');
    assert.equal(cmdline[0], COMFYD_BIN);
    assert.equal(cmdline[cmdline.indexOf('--port') + 1], String(inst.port));
    assert.equal(manager.show(unit, 'MemoryMax'), String(768 * 1024 * 1024));
    assert.equal(manager.show(unit, 'CPUQuotaPerSecUSec'), '1.500000s');
    assert.equal(manager.show(unit, 'WorkingDirectory'), repo);
    assert.equal(fs.readlinkSync(`/proc/${inst.pid}/cwd`), repo);
    assert.match(fs.readFileSync(`/proc/${inst.pid}/environ`, 'utf8'), /(^|\0)COMFYD_TEST_MARK=passed-through\0/);
    // not a child of the hub: the manager started it
    const ppid = Number(/^PPid:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${inst.pid}/status`, 'utf8'))[1]);
    assert.notEqual(ppid, hub.pid);
    assert.equal(ppid, manager.child.pid);

    const stats = await stu.client.get(`/comfyui/stu/${project.id}/system_stats`);
    assert.equal(stats.status, 200);
    // the unit's output and systemd-run's own lines are in the instance's log
    const log = await stu.client.get(`/api/instances/${inst.id}/log?tail=1000`);
    assert.match(log.text, new RegExp(`Running as unit: ${unit.replace('.', '\\.')}`));
  });

  test('stop_comfy stops the unit, and it is collected', T, async () => {
    const r = await stu.client.post(`/api/projects/${project.id}/stop_comfy`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.instance.status, 'stopped');
    assert.ok(!pidAlive(inst.pid), 'gone before the answer');
    await waitFor(() => manager.show(unit, 'LoadState') === 'not-found', 5000, 'the unit collected');
  });

  test('killed behind the hub\'s back: a crash with its signal, and a new unit', T, async () => {
    const o = await stu.client.post(`/api/projects/${project.id}/open_comfy`);
    assert.equal(o.status, 200, o.text);
    const first = o.body.instance;
    trackInstancePid(first.pid);
    const firstUnit = unitOf(first.pid);
    assert.notEqual(firstUnit, unit, 'a new nonce for every start');
    assert.equal(manager.ctl('kill', '--signal=KILL', firstUnit).status, 0);
    const again = await waitFor(async () => {
      const i = await instanceOf(project.id);
      return i.status === 'online' && i.pid !== first.pid ? i : null;
    }, 20000, 'restarted after the crash');
    trackInstancePid(again.pid);
    assert.notEqual(unitOf(again.pid), firstUnit);
    const audit = (await admin.get('/api/audit?limit=50')).body;
    const exit = audit.find((a) => a.action === 'instance_exit' && a.detail.includes(`pid ${first.pid}`));
    assert.ok(exit, 'the exit is audited');
    assert.match(exit.detail, /killed by signal 9/, 'the signal, from systemd-run\'s last words');
    inst = again;
    unit = unitOf(again.pid);
  });

  test('a hub killed with kill -9 adopts its unit; a stop still goes to the unit', T, async () => {
    await hub.kill9();
    assert.ok(pidAlive(inst.pid), 'the unit outlives the hub');
    await restart();
    assert.match(hub.output(), new RegExp(`adopting the instance of project ${project.id} \\(port ${inst.port}, pid ${inst.pid}\\)`));
    const online = await waitFor(async () => {
      const i = await instanceOf(project.id);
      return i.status === 'online' ? i : null;
    }, 10000, 'online again');
    assert.equal(online.pid, inst.pid, 'the same process');
    const r = await stu.client.post(`/api/projects/${project.id}/stop_comfy`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.instance.status, 'stopped');
    assert.ok(!pidAlive(inst.pid));
    await waitFor(() => manager.show(unit, 'LoadState') === 'not-found', 5000, 'the unit collected');
  });

  test('a hub that stops stops its units, and exits clean', T, async () => {
    const o = await stu.client.post(`/api/projects/${project.id}/open_comfy`);
    assert.equal(o.status, 200, o.text);
    trackInstancePid(o.body.instance.pid);
    const u = unitOf(o.body.instance.pid);
    await hub.stop({ keep: true }); // exit 0, no sanitizer or leak report, in the hub or the logs
    assert.ok(!pidAlive(o.body.instance.pid));
    assert.equal(manager.show(u, 'LoadState'), 'not-found');
    await restart();
    const i = await instanceOf(project.id);
    assert.equal(i.status, 'stopped');
    assert.equal(i.reason, 'the hub stopped');
  });

  test('a unit that cannot start says why', T, async () => {
    // the working directory is gone: systemd fails the unit before the command runs
    fs.rmSync(repo, { recursive: true, force: true });
    const o = await stu.client.post(`/api/projects/${project.id}/open_comfy`);
    assert.equal(o.status, 500, o.text);
    assert.match(o.body.error.message, /exited with code 200 during start-up: .*CHDIR/);
    fs.mkdirSync(repo);
  });
});
