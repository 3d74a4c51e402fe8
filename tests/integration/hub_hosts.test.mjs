// comfyd hub, issue #16: instances on other hosts. The "remote" host is an OpenSSH server this
// test starts on a loopback port, as the test's user, with a throw-away key; the hub reaches it
// with the real `ssh`, which starts a real `comfyd serve` there. Everything between hub and
// instance goes the way it would to another machine: start and stop over ssh, health, proxy and
// prompts through the host's address, reachability by `ssh HOST true`.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { COMFYD_BIN, freePort, probeStatus, sleep } from './lib/server.mjs';
import { startHub, waitFor, pidAlive, trackInstancePid, sleeper, freePortRange } from './lib/hub.mjs';

const T = { timeout: 60000 };
const SSHD = '/usr/sbin/sshd';

/** n consecutive ports that can be listened on, below Linux's ephemeral range (32768 up), so that
 * no outgoing connection of this busy machine takes one between now and the instance's bind. */
async function freeLowPorts(n) {
  const canListen = (port) => new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = 21000 + Math.floor(Math.random() * 11000);
    let ok = true;
    for (let p = first; p < first + n && ok; p++) ok = await canListen(p);
    if (ok) return [first, first + n - 1];
  }
  throw new Error('no free port range below 32768');
}

/** An sshd of our own: its host key, the client key it accepts, a config in a temp dir. Every
 * session first prints what a chatty login would (a banner, an rc file's output, even a line that
 * looks like the old untagged "PID n"), then runs the command it was given, as `eval` in the same
 * shell so that $$ and exec behave as without it. */
async function startSshd() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-sshd-'));
  for (const k of ['host_key', 'client_key']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, k)]);
  fs.copyFileSync(path.join(dir, 'client_key.pub'), path.join(dir, 'authorized_keys'));
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'sshd_config'), [
    `HostKey ${dir}/host_key`, `AuthorizedKeysFile ${dir}/authorized_keys`, 'ListenAddress 127.0.0.1',
    `Port ${port}`, 'UsePAM no', 'StrictModes no', `PidFile ${dir}/sshd.pid`, 'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'ForceCommand echo "Welcome to gpu1 (motd)"; echo "PID 1"; eval "$SSH_ORIGINAL_COMMAND"', '',
  ].join('\n'));
  // sshd run as root wants its privilege separation directory, which a container may lack
  if (process.getuid() === 0) fs.mkdirSync('/run/sshd', { recursive: true });
  const run = async () => {
    const child = spawn(SSHD, ['-D', '-f', path.join(dir, 'sshd_config'), '-E', path.join(dir, 'sshd.log')], { stdio: 'ignore' });
    child.unref();
    await waitFor(async () => (await probeStatus(port, '/', 300)) !== 0 || fs.existsSync(path.join(dir, 'sshd.pid')), 10000, 'sshd');
    return child;
  };
  const sshd = { dir, port, child: await run(), key: path.join(dir, 'client_key'),
    log: () => fs.readFileSync(path.join(dir, 'sshd.log'), 'utf8'),
    /** Starts it again (same port, keys and config) after its listener was stopped. */
    async restart() { fs.rmSync(path.join(dir, 'sshd.pid'), { force: true }); sshd.child = await run(); } };
  return sshd;
}

/** The hub's ssh session that runs the instance on that port (its remote command names it). */
function sessionOf(hubPid, port) {
  for (const d of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const ppid = Number(/^PPid:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${d}/status`, 'utf8'))[1]);
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (ppid === hubPid && cmd.startsWith('ssh\0') && cmd.includes('COMFYD-PID-') && cmd.includes(`'--port' '${port}'`)) return Number(d);
    } catch { /* gone meanwhile */ }
  }
  return 0;
}

/** The chain of parent commands of a pid, e.g. ['comfyd', 'sshd', 'sshd', ...]. */
function ancestry(pid) {
  const names = [];
  for (let p = pid, i = 0; p > 1 && i < 10; i++) {
    const status = fs.readFileSync(`/proc/${p}/status`, 'utf8');
    names.push(/^Name:\s+(.*)$/m.exec(status)[1]);
    p = Number(/^PPid:\s+(\d+)$/m.exec(status)[1]);
  }
  return names;
}

describe('hub: instances on an ssh host', { skip: !fs.existsSync(SSHD) && 'no /usr/sbin/sshd (openssh-server)' }, () => {
  let sshd, hub, admin, stu, ports, remoteBase, host;
  const hostBody = () => ({
    name: 'gpu1', address: '127.0.0.1', launcher: 'ssh', ssh_target: `${os.userInfo().username}@127.0.0.1`,
    ssh_port: sshd.port, ssh_key: sshd.key,
    ssh_options: ['StrictHostKeyChecking=no', 'UserKnownHostsFile=/dev/null', 'LogLevel=ERROR'],
    command: `${COMFYD_BIN} serve --listen {listen} --port {port} --base-directory {base_dir}`,
    base_dir: remoteBase, ports: `${ports[0]}-${ports[1]}`, max_instances: 2, labels: ['gpu', 'a100'],
  });

  before(async () => {
    sshd = await startSshd();
    ports = await freeLowPorts(5);
    remoteBase = path.join(sshd.dir, 'remote-instances');
    // the "remote" host is this machine's loopback: its ports may not overlap the hub's own range
    let portRange;
    do portRange = await freePortRange(10); while (portRange[0] <= ports[1] && ports[0] <= portRange[1]);
    hub = await startHub({ portRange, env: { COMFYUI_HEARTBEAT_INTERVAL_SECONDS: '1', COMFYUI_STOP_GRACE_SECONDS: '10' } });
    admin = await hub.login('admin', hub.adminPassword);
    stu = await hub.addUser(admin, 'stu');
  });
  after(async () => {
    try { sshd?.child.kill('SIGKILL'); } catch { /* gone */ }
    await hub?.stop();
    fs.rmSync(sshd.dir, { recursive: true, force: true });
  });

  test('without hosts there is only "local", from the settings', T, async () => {
    const r = await admin.get('/api/hosts');
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 1);
    assert.equal(r.body[0].name, 'local');
    assert.equal(r.body[0].launcher, 'local');
    assert.equal(r.body[0].ports, `${hub.portRange[0]}-${hub.portRange[1]}`);
    assert.equal(r.body[0].status, 'reachable');
  });

  test('only admins manage hosts, and what they send is checked', T, async () => {
    assert.equal((await stu.client.get('/api/hosts')).status, 403);
    assert.equal((await stu.client.post('/api/hosts', hostBody())).status, 403);
    assert.equal((await hub.client().get('/api/hosts')).status, 401);
    const bad = [
      [{ name: 'local' }, /local/],
      [{ name: '-oProxyCommand=x' }, /host name/],
      [{ address: 'gpu1.example' }, /IP literal/],
      [{ ssh_target: '-oProxyCommand=touch /tmp/x' }, /ssh_target/],
      [{ ssh_target: 'a b' }, /ssh_target/],
      [{ ssh_options: ['ProxyCommand=touch /tmp/pwned'] }, /ssh options allowed/],
      [{ ssh_options: ['LocalCommand=id'] }, /ssh options allowed/],
      [{ ssh_key: 'relative/key' }, /absolute/],
      [{ ports: '9000-8000' }, /ports/],
      [{ ports: '99999999999-1' }, /ports/], [{ ports: '8200-' }, /ports/], [{ ports: '+8200-8300' }, /ports/],
      [{ ports: '8200-8300x' }, /ports/], [{ ports: '0-10' }, /ports/],
      [{ labels: ['a,b'] }, /labels/],
      // the remote kill's guard looks for " --port N " in the pid's command line
      [{ command: `${COMFYD_BIN} serve --listen {listen} --base-directory {base_dir}` }, /--port \{port\}/],
      [{ command: `${COMFYD_BIN} serve --port={port}` }, /--port \{port\}/],
      // loopback is this machine: the same ports as "local" would be handed out twice
      [{ ports: `${hub.portRange[0]}-${hub.portRange[1]}` }, /loopback.*COMFYUI_PORT_RANGE/],
      [{ address: '::1', ports: `${hub.portRange[1]}-${hub.portRange[1] + 5}` }, /loopback.*COMFYUI_PORT_RANGE/],
    ];
    for (const [change, why] of bad) {
      const r = await admin.post('/api/hosts', { ...hostBody(), ...change });
      assert.equal(r.status, 400, JSON.stringify(change));
      assert.match(r.body.error.message, why, JSON.stringify(change));
    }
    assert.equal((await admin.post('/api/hosts', { ...hostBody(), surprise: 1 })).status, 400);
    assert.equal((await admin.get('/api/hosts')).body.length, 1, 'nothing was stored');
  });

  test('an admin adds an ssh host; it is listed, reachable, audited', T, async () => {
    const r = await admin.post('/api/hosts', hostBody());
    assert.equal(r.status, 201, r.text);
    host = r.body;
    assert.equal(host.name, 'gpu1');
    assert.deepEqual(host.labels, ['gpu', 'a100']);
    assert.equal(host.capacity, 2);
    assert.equal((await admin.post('/api/hosts', hostBody())).status, 409);
    const list = (await admin.get('/api/hosts')).body;
    assert.deepEqual(list.map((h) => h.name), ['local', 'gpu1']);
    // the reachability check ran over ssh (sshd saw our key) and left it reachable
    await waitFor(() => /Accepted publickey/.test(sshd.log()), 10000, 'a check through sshd');
    await sleep(1500);
    assert.equal((await admin.get('/api/hosts')).body[1].status, 'reachable');
    const audit = (await admin.get('/api/audit?limit=20')).body;
    assert.ok(audit.some((a) => a.action === 'host_create' && a.target === 'host gpu1'));
  });

  test('placement: unpinned goes local, a pin to a label goes to the ssh host, an unknown pin is refused', T, async () => {
    const plain = (await stu.client.post('/api/projects', { name: 'plain' })).body;
    assert.equal(plain.pin, null);
    const o = await stu.client.post(`/api/projects/${plain.id}/open_comfy`);
    assert.equal(o.status, 200, o.text);
    trackInstancePid(o.body.instance.pid);
    assert.equal(o.body.instance.host, 'local');
    await stu.client.post(`/api/projects/${plain.id}/stop_comfy`);

    const nowhere = (await stu.client.post('/api/projects', { name: 'nowhere', pin: 'h100' })).body;
    assert.equal(nowhere.pin, 'h100');
    const n = await stu.client.post(`/api/projects/${nowhere.id}/open_comfy`);
    assert.equal(n.status, 503);
    assert.match(n.body.error.message, /no host is named or labelled 'h100'/);
    assert.equal((await stu.client.patch(`/api/projects/${nowhere.id}`, { pin: 'bad pin!' })).status, 400);
  });

  let project, inst;
  test('a project pinned to "a100" starts over ssh, listens on the host address, answers through the hub', T, async () => {
    project = (await stu.client.post('/api/projects', { name: 'remote' })).body;
    const p = await stu.client.patch(`/api/projects/${project.id}`, { pin: 'a100' });
    assert.equal(p.status, 200, p.text);
    assert.equal(p.body.pin, 'a100');
    // the testing pack in the instance's directory on the "remote" host (no shared folders there)
    const packDir = path.join(remoteBase, `u${stu.user.id}`, `p${project.id}`, 'custom_nodes', 'testing-pack');
    fs.mkdirSync(packDir, { recursive: true });
    fs.copyFileSync(path.join(path.dirname(COMFYD_BIN), 'tests', 'conformance', 'testing_pack', 'testing_pack.so'),
      path.join(packDir, 'testing_pack.so'));

    // the first port of the host's range is taken there: the hub cannot see it from here, the
    // instance fails to bind and exits, and the start goes on to the next port
    const squatter = net.createServer();
    await new Promise((r) => squatter.listen(ports[0], '127.0.0.1', r));
    const o = await stu.client.post(`/api/projects/${project.id}/open_comfy`);
    squatter.close();
    assert.equal(o.status, 200, o.text);
    inst = o.body.instance;
    trackInstancePid(inst.pid);
    assert.equal(inst.host, 'gpu1');
    assert.equal(inst.address, '127.0.0.1');
    assert.equal(inst.status, 'online');
    assert.equal(inst.port, ports[0] + 1, 'the next port after the taken one');
    assert.match(hub.output(), new RegExp(`project ${project.id} exited with code 1 during start-up on gpu1 port ${ports[0]}; trying the next port`));
    assert.ok(inst.pid > 1, 'the pid the remote shell printed (not the "PID 1" the login printed before it)');
    // what the login printed went to the instance's log
    const log = await stu.client.get(`/api/instances/${inst.id}/log?tail=1000`);
    assert.equal(log.status, 200, log.text);
    assert.match(log.text, /Welcome to gpu1 \(motd\)/);
    // it really is comfyd serve on that port, started by sshd (not by the hub)
    const cmdline = fs.readFileSync(`/proc/${inst.pid}/cmdline`, 'utf8').split('\0');
    assert.equal(cmdline[0], COMFYD_BIN);
    assert.equal(cmdline[cmdline.indexOf('--port') + 1], String(inst.port));
    assert.equal(cmdline[cmdline.indexOf('--listen') + 1], '127.0.0.1');
    assert.equal(cmdline[cmdline.indexOf('--base-directory') + 1], path.join(remoteBase, `u${stu.user.id}`, `p${project.id}`));
    const chain = ancestry(inst.pid);
    assert.ok(chain.slice(1).some((n) => /^sshd/.test(n)), `parents: ${chain.join(' < ')}`);
    assert.ok(!chain.includes('comfyd') || chain.indexOf('comfyd') === 0, 'not a child of the hub');

    const stats = await stu.client.get(`/comfyui/stu/${project.id}/system_stats`);
    assert.equal(stats.status, 200);
    assert.equal(typeof stats.body.system.comfyd_version, 'string');
    const hosts = (await admin.get('/api/hosts')).body;
    assert.equal(hosts.find((h) => h.name === 'gpu1').running, 1);
    // the host is busy: where it is may not change under its instance, but its cap may
    assert.equal((await admin.patch(`/api/hosts/${host.id}`, { address: '127.0.0.2' })).status, 409);
    assert.equal((await admin.del(`/api/hosts/${host.id}`)).status, 409);
    assert.equal((await admin.patch(`/api/hosts/${host.id}`, { max_instances: 3 })).status, 200);
  });

  test('a prompt goes through the hub to the remote instance and completes', T, async () => {
    const r = await stu.client.post(`/comfyui/stu/${project.id}/prompt`, { prompt: sleeper(0.1, 1601) });
    assert.equal(r.status, 200, r.text);
    const id = r.body.prompt_id;
    await waitFor(async () => (await stu.client.get(`/api/queue/tasks/${id}`)).body.state === 'done', 20000, 'done');
    const h = await stu.client.get(`/comfyui/stu/${project.id}/history/${id}`);
    assert.equal(h.status, 200);
    assert.deepEqual(h.body[id].outputs['3'], { text: ['1601'] });
  });

  test('stop_comfy kills the remote process over ssh by its pid', T, async () => {
    const before = (sshd.log().match(/Accepted publickey/g) || []).length;
    const r = await stu.client.post(`/api/projects/${project.id}/stop_comfy`);
    assert.equal(r.status, 200);
    assert.equal(r.body.instance.status, 'stopped');
    await waitFor(() => !pidAlive(inst.pid), 5000, 'the remote process gone');
    assert.ok((sshd.log().match(/Accepted publickey/g) || []).length > before, 'the kill came over ssh');
  });

  test('a hub killed with kill -9 adopts its remote instances; a stop still kills over ssh, an exit is still seen', T, async () => {
    const other = (await stu.client.post('/api/projects', { name: 'remote too', pin: 'gpu1' })).body;
    const first = {};
    await Promise.all([project, other].map(async (p) => {
      const o = await stu.client.post(`/api/projects/${p.id}/open_comfy`);
      assert.equal(o.status, 200, o.text);
      assert.equal(o.body.instance.host, 'gpu1');
      first[p.id] = o.body.instance;
      trackInstancePid(o.body.instance.pid);
    }));
    await hub.kill9();
    hub = await startHub({ dataDir: hub.dataDir, portRange: hub.portRange,
      env: { COMFYUI_HEARTBEAT_INTERVAL_SECONDS: '1', COMFYUI_STOP_GRACE_SECONDS: '10' } });
    admin = await hub.login('admin', hub.adminPassword);
    stu.client = hub.client({ cookie: stu.client.cookie });
    const online = (id) => waitFor(async () => {
      const b = (await stu.client.get(`/api/projects/${id}`)).body;
      return b.instance.status === 'online' ? b.instance : null;
    }, 10000, `project ${id} online`);
    for (const p of [project, other]) {
      const i = first[p.id];
      assert.match(hub.output(), new RegExp(`adopting the instance of project ${p.id} \\(port ${i.port}, pid ${i.pid}\\)`));
      assert.equal((await online(p.id)).pid, i.pid, 'the same process, not a new one');
    }
    assert.equal((await stu.client.get(`/comfyui/stu/${project.id}/system_stats`)).status, 200);
    assert.equal((await stu.client.post(`/api/projects/${project.id}/open_comfy`)).body.instance.pid, first[project.id].pid,
      'an open reuses it');

    // stopped through the hub: killed over ssh, and the answer comes once it is gone
    const r = await stu.client.post(`/api/projects/${project.id}/stop_comfy`);
    assert.equal(r.status, 200);
    assert.equal(r.body.instance.status, 'stopped');
    assert.ok(!pidAlive(first[project.id].pid), 'gone before the answer');

    // killed behind the hub's back: its watcher session ends, the hub sees an exit and restarts it
    // (a heartbeat alone would only have marked it offline)
    process.kill(first[other.id].pid, 'SIGKILL');
    const again = await waitFor(async () => {
      const b = (await stu.client.get(`/api/projects/${other.id}`)).body;
      return b.instance.status === 'online' && b.instance.pid !== first[other.id].pid ? b.instance : null;
    }, 15000, 'restarted after its exit');
    trackInstancePid(again.pid);
    assert.equal(again.host, 'gpu1');
    const audit = (await admin.get('/api/audit?limit=50')).body;
    assert.ok(audit.some((a) => a.action === 'instance_exit' && a.target === `project ${other.id}` &&
      a.detail.includes(`pid ${first[other.id].pid}`)), 'the exit is audited');
    assert.equal((await stu.client.post(`/api/projects/${other.id}/stop_comfy`)).status, 200);
    assert.ok(!pidAlive(again.pid));
  });

  test('a hub that stops stops its remote instances over ssh, and exits clean', T, async () => {
    const o = await stu.client.post(`/api/projects/${project.id}/open_comfy`);
    assert.equal(o.status, 200, o.text);
    trackInstancePid(o.body.instance.pid);
    await hub.stop({ keep: true }); // exit 0, no sanitizer or leak report
    assert.ok(!pidAlive(o.body.instance.pid), 'the remote instance is gone');
    assert.match(hub.output(), /instance of project \d+ online/);
    hub = await startHub({ dataDir: hub.dataDir, portRange: hub.portRange,
      env: { COMFYUI_HEARTBEAT_INTERVAL_SECONDS: '1', COMFYUI_STOP_GRACE_SECONDS: '10' } });
    admin = await hub.login('admin', hub.adminPassword);
    stu.client = hub.client({ cookie: stu.client.cookie });
    const p = (await stu.client.get(`/api/projects/${project.id}`)).body;
    assert.equal(p.instance.status, 'stopped');
    assert.equal(p.instance.reason, 'the hub stopped');
  });

  test('an ssh session that breaks under a running instance: the restart goes on, the old process is stopped', T, async () => {
    const o = await stu.client.post(`/api/projects/${project.id}/open_comfy`);
    assert.equal(o.status, 200, o.text);
    const old = o.body.instance;
    trackInstancePid(old.pid);
    assert.equal(old.host, 'gpu1');
    const session = sessionOf(hub.pid, old.port);
    assert.ok(session > 0, 'the hub\'s ssh session of the instance');
    process.kill(session, 'SIGKILL'); // the link breaks; the instance runs on, on its host
    const again = await waitFor(async () => {
      const b = (await stu.client.get(`/api/projects/${project.id}`)).body;
      return b.instance.status === 'online' && b.instance.pid !== old.pid ? b.instance : null;
    }, 15000, 'restarted');
    trackInstancePid(again.pid);
    assert.notEqual(again.port, old.port, 'the old process may still hold its port');
    await waitFor(() => !pidAlive(old.pid), 10000, 'the old process stopped over ssh');
    assert.match(hub.output(), new RegExp(`pid ${old.pid} on host gpu1 \\(port ${old.port}, project ${project.id}\\) may still run`));
  });

  test('sshd dies: the host goes unreachable, its instance offline with the reason, its running prompt fails', T, async () => {
    const o = await stu.client.post(`/api/projects/${project.id}/open_comfy`);
    assert.equal(o.status, 200, o.text);
    inst = o.body.instance;
    trackInstancePid(inst.pid);
    assert.equal(inst.host, 'gpu1');
    const r = await stu.client.post(`/comfyui/stu/${project.id}/prompt`, { prompt: sleeper(30, 1602) });
    const id = r.body.prompt_id;
    await waitFor(async () => (await stu.client.get(`/api/queue/tasks/${id}`)).body.state === 'running', 20000, 'running');

    sshd.child.kill('SIGTERM'); // the listener: new connections are refused from now on
    const offline = await waitFor(async () => {
      const p = (await stu.client.get(`/api/projects/${project.id}`)).body;
      return p.instance.status === 'offline' ? p.instance : null;
    }, 15000, 'the instance offline');
    assert.match(offline.reason, /host gpu1 unreachable: .*(refused|closed|reset)/i);
    const h = (await admin.get('/api/hosts')).body.find((x) => x.name === 'gpu1');
    assert.equal(h.status, 'unreachable');
    assert.match(h.reason, /refused|closed|reset/i);
    assert.equal(h.running, 0);
    const t = await waitFor(async () => {
      const b = (await stu.client.get(`/api/queue/tasks/${id}`)).body;
      return b.state === 'failed' ? b : null;
    }, 10000, 'the prompt failed');
    assert.match(t.reason, /host gpu1 unreachable/);
    // the proxy says so too, and a new open is refused with the reason rather than hanging
    const px = await stu.client.get(`/comfyui/stu/${project.id}/system_stats`);
    assert.equal(px.status, 502);
    assert.match(px.body.error.message, /is offline: host gpu1 unreachable/);
    const again = await stu.client.post(`/api/projects/${project.id}/open_comfy`);
    assert.equal(again.status, 503);
    assert.match(again.body.error.message, /host gpu1 is unreachable/);
    const audit = (await admin.get('/api/audit?limit=50')).body;
    assert.ok(audit.some((a) => a.action === 'host_down' && /gpu1 unreachable/.test(a.detail)));
    // the process on the lost host still runs, unseen; once the host is back the hub stops it
    assert.ok(pidAlive(inst.pid));
    await sshd.restart();
    await waitFor(async () => (await admin.get('/api/hosts')).body.find((x) => x.name === 'gpu1').status === 'reachable',
      15000, 'the host reachable again');
    await waitFor(() => !pidAlive(inst.pid), 10000, 'the process let go of stopped over ssh');
    assert.match(hub.output(), new RegExp(`sent SIGTERM to pid ${inst.pid} on host gpu1`));
  });

  test('a host without instances can be deleted', T, async () => {
    const r = await admin.del(`/api/hosts/${host.id}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual((await admin.get('/api/hosts')).body.map((h) => h.name), ['local']);
  });
});
