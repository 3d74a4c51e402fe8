// comfyd hub, part 1: users, sessions and tokens, projects, and the instances it supervises,
// with real `comfyd hub` and real `comfyd serve` instances.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { HOST, sleep, probeStatus } from './lib/server.mjs';
import { startHub, waitFor, pidAlive, trackInstancePid, freePortRange } from './lib/hub.mjs';

const inRange = (port, [a, b]) => port >= a && port <= b;
const errorShape = (body) => {
  assert.equal(typeof body?.error?.type, 'string');
  assert.equal(typeof body?.error?.message, 'string');
  assert.ok('details' in body.error && 'extra_info' in body.error);
};

describe('hub: users, sessions and tokens', () => {
  let hub, admin;
  before(async () => {
    hub = await startHub();
    admin = await hub.login('admin', hub.adminPassword);
  });
  after(async () => { await hub?.stop(); });

  test('API calls without a login get 401 in ComfyUI-style JSON', async () => {
    const anon = hub.client();
    for (const [m, p] of [['GET', '/api/me'], ['GET', '/api/projects'], ['POST', '/api/projects'], ['GET', '/api/users']]) {
      const r = await anon.request(m, p, m === 'POST' ? {} : undefined);
      assert.equal(r.status, 401, `${m} ${p}`);
      errorShape(r.body);
    }
  });

  test('login sets an HttpOnly SameSite=Lax session cookie and returns the user', async () => {
    const c = hub.client();
    const r = await c.post('/api/login', { username: 'admin', password: hub.adminPassword });
    assert.equal(r.status, 200);
    assert.equal(r.body.user.name, 'admin');
    assert.equal(r.body.user.role, 'admin');
    assert.ok(!('password_hash' in r.body.user));
    const cookie = r.headers.get('set-cookie');
    assert.match(cookie, /^comfyd_session=[A-Za-z0-9_-]{43};/);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Lax/);
    assert.equal((await c.get('/api/me')).body.user.name, 'admin');
    const out = await c.post('/api/logout');
    assert.equal(out.status, 200);
    assert.equal((await hub.client({ cookie: r.headers.get('set-cookie').split(';')[0] }).get('/api/me')).status, 401,
      'the session must be gone after logout');
  });

  test('wrong credentials: 401, audited, and a growing delay', async () => {
    const c = hub.client();
    const bad = await c.post('/api/login', { username: 'admin', password: 'not-the-password' });
    assert.equal(bad.status, 401);
    errorShape(bad.body);
    assert.equal(bad.body.error.type, 'invalid_credentials');
    const ghost = await c.post('/api/login', { username: 'nobody', password: 'whatever-pw' });
    assert.equal(ghost.status, 401);
    assert.equal(ghost.body.error.message, bad.body.error.message, 'an unknown name must look like a wrong password');
    // two more failures for "nobody": the fourth attempt waits at least a second
    await c.post('/api/login', { username: 'nobody', password: 'whatever-pw' });
    await c.post('/api/login', { username: 'nobody', password: 'whatever-pw' });
    const t0 = Date.now();
    const slow = await c.post('/api/login', { username: 'nobody', password: 'whatever-pw' });
    assert.equal(slow.status, 401);
    assert.ok(Date.now() - t0 >= 950, `the 4th failed login answered after ${Date.now() - t0} ms`);
    const audit = await admin.get('/api/audit?limit=50');
    assert.equal(audit.status, 200);
    assert.ok(audit.body.some((a) => a.action === 'login_failed' && a.target === 'admin'));
    assert.ok(audit.body.some((a) => a.action === 'login_failed' && a.target === 'nobody'));
  });

  test('bad bodies get clear 400s and the hub stays healthy', async () => {
    const cases = [
      ['{"username": "admin", ', 'invalid_json'],
      ['[1,2]', 'invalid_json'],
      [JSON.stringify({ username: 'admin', password: 'x', extra: 1 }), 'unknown_field'],
      [JSON.stringify({ username: 5, password: 'x' }), 'invalid_request'],
      ['', 'invalid_json'],
    ];
    for (const [body, type] of cases) {
      const r = await hub.client().request('POST', '/api/login', body);
      assert.equal(r.status, 400, body);
      assert.equal(r.body.error.type, type, body);
    }
    const huge = await admin.request('POST', '/api/projects', JSON.stringify({ name: 'x'.repeat(2 << 20) }));
    assert.equal(huge.status, 413);
    assert.equal((await admin.get('/api/me')).status, 200);
    assert.equal((await admin.get('/api/projects/999999')).status, 404);
    assert.equal((await admin.get('/api/projects/abc')).status, 404);
    assert.equal((await admin.get('/api/nope')).status, 404);
    assert.equal((await admin.request('PUT', '/api/projects')).status, 405);
  });

  test('admins create, update, disable and delete users; others get 403', async () => {
    const { user: alice, client: aliceC } = await hub.addUser(admin, 'alice');
    assert.equal(alice.role, 'student');
    assert.equal((await aliceC.get('/api/users')).status, 403);
    assert.equal((await aliceC.post('/api/users', { name: 'eve', password: 'eve-password' })).status, 403);
    assert.equal((await admin.post('/api/users', { name: 'alice', password: 'another-pw' })).status, 409);
    assert.equal((await admin.post('/api/users', { name: '../x', password: 'another-pw' })).status, 400);
    assert.equal((await admin.post('/api/users', { name: 'shorty', password: 'short' })).status, 400);
    assert.equal((await admin.post('/api/users', { name: 'r', password: 'long-enough', role: 'root' })).status, 400);
    const list = await admin.get('/api/users');
    assert.deepEqual(list.body.map((u) => u.name).sort(), ['admin', 'alice']);

    const promoted = await admin.patch(`/api/users/${alice.id}`, { role: 'teacher' });
    assert.equal(promoted.status, 200);
    assert.equal(promoted.body.role, 'teacher');
    // a new password ends her sessions
    assert.equal((await admin.patch(`/api/users/${alice.id}`, { password: 'alice-new-password' })).status, 200);
    assert.equal((await aliceC.get('/api/me')).status, 401);
    await hub.login('alice', 'alice-new-password');
    // disabled: no login, and the error says so
    assert.equal((await admin.patch(`/api/users/${alice.id}`, { disabled: true })).status, 200);
    const refused = await hub.client().post('/api/login', { username: 'alice', password: 'alice-new-password' });
    assert.equal(refused.status, 401);
    assert.match(refused.body.error.message, /disabled/);
    // the last admin stays
    const me = (await admin.get('/api/me')).body.user;
    assert.equal((await admin.patch(`/api/users/${me.id}`, { role: 'student' })).status, 409);
    assert.equal((await admin.del(`/api/users/${me.id}`)).status, 409);
    assert.equal((await admin.del(`/api/users/${alice.id}`)).status, 200);
    assert.equal((await admin.del(`/api/users/${alice.id}`)).status, 404);
    const audit = (await admin.get('/api/audit')).body.map((a) => a.action);
    for (const a of ['user_create', 'user_update', 'user_delete', 'login']) assert.ok(audit.includes(a), a);
  });

  test('an API token works as the cookie does, until it is revoked', async () => {
    const r = await admin.post('/api/tokens', { name: 'sdk' });
    assert.equal(r.status, 201);
    assert.match(r.body.token, /^cdt_/);
    const sdk = hub.client({ token: r.body.token });
    assert.equal((await sdk.get('/api/me')).body.user.name, 'admin');
    assert.equal((await sdk.post('/api/projects', { name: 'from a token' })).status, 201);
    assert.equal((await hub.client({ token: 'cdt_nonsense' }).get('/api/me')).status, 401);
    assert.equal((await admin.post('/api/tokens', { expires_days: 0 })).status, 400);
    assert.equal((await sdk.post('/api/logout')).status, 200);
    assert.equal((await sdk.get('/api/me')).status, 401);
  });

  test('a cookie used from another origin is refused for writes', async () => {
    const r = await admin.post('/api/projects', { name: 'x' }, { origin: 'http://evil.example' });
    assert.equal(r.status, 403);
    const same = await admin.post('/api/projects', { name: 'same origin' }, { origin: hub.base });
    assert.equal(same.status, 201);
  });
});

describe('hub: projects and their instances', () => {
  let hub, admin, alice, bob, teacher;
  before(async () => {
    hub = await startHub({ env: { COMFYUI_HEARTBEAT_INTERVAL_SECONDS: '1' } });
    admin = await hub.login('admin', hub.adminPassword);
    alice = (await hub.addUser(admin, 'alice')).client;
    bob = (await hub.addUser(admin, 'bob')).client;
    teacher = (await hub.addUser(admin, 'tina', 'teacher')).client;
  });
  after(async () => { await hub?.stop(); });

  test('project CRUD, owners and 403 for others', async () => {
    const p = await alice.post('/api/projects', { name: '  Data set A  ' });
    assert.equal(p.status, 201);
    assert.equal(p.body.name, 'Data set A');
    assert.equal(p.body.owner, 'alice');
    assert.equal(p.body.url, `/comfyui/alice/${p.body.id}/`);
    assert.equal(p.body.status, 'stopped');
    assert.equal((await alice.post('/api/projects', { name: '' })).status, 400);
    assert.equal((await alice.post('/api/projects', { name: 'a\u0001b' })).status, 400);
    assert.equal((await alice.post('/api/projects', { name: 'x', owner_id: 1 })).status, 400);
    const id = p.body.id;
    assert.equal((await bob.get(`/api/projects/${id}`)).status, 403);
    assert.equal((await bob.patch(`/api/projects/${id}`, { name: 'mine' })).status, 403);
    assert.equal((await bob.del(`/api/projects/${id}`)).status, 403);
    assert.equal((await bob.post(`/api/projects/${id}/open_comfy`)).status, 403);
    assert.equal((await bob.post(`/api/projects/${id}/stop_comfy`)).status, 403);
    assert.deepEqual((await bob.get('/api/projects')).body, []);
    assert.ok((await teacher.get('/api/projects')).body.some((x) => x.id === id), 'teachers see every project');
    const renamed = await alice.patch(`/api/projects/${id}`, { name: 'Renamed' });
    assert.equal(renamed.body.name, 'Renamed');
    const gone = await alice.post('/api/projects', { name: 'to delete' });
    assert.equal((await alice.del(`/api/projects/${gone.body.id}`)).status, 200);
    assert.equal((await alice.get(`/api/projects/${gone.body.id}`)).status, 404);
  });

  test('ten opens at once start one instance on a port of the range', async () => {
    const p = (await alice.post('/api/projects', { name: 'p1' })).body;
    const results = await Promise.all(Array.from({ length: 10 }, () => alice.post(`/api/projects/${p.id}/open_comfy`)));
    for (const r of results) assert.equal(r.status, 200, r.text);
    const pids = new Set(results.map((r) => r.body.instance.pid));
    const ports = new Set(results.map((r) => r.body.instance.port));
    assert.equal(pids.size, 1, `one process, got ${[...pids]}`);
    assert.equal(ports.size, 1);
    const inst = results[0].body.instance;
    trackInstancePid(inst.pid);
    assert.equal(results[0].body.status, 'online');
    assert.equal(results.filter((r) => r.body.reused === false).length, 10, 'all waited for the same start');
    assert.ok(inRange(inst.port, hub.portRange));
    assert.equal(inst.address, '127.0.0.1');
    assert.equal(inst.host, 'local');
    // the instance itself answers on loopback, in its own directory with the shared links
    const stats = await (await fetch(`http://${HOST}:${inst.port}/system_stats`)).json();
    assert.ok(stats.system);
    const dir = path.join(hub.dataDir, 'instances', `u${inst.user_id}`, `p${p.id}`);
    assert.equal(fs.readlinkSync(path.join(dir, 'custom_nodes')), path.join(hub.dataDir, 'shared', 'custom_nodes'));
    assert.equal(fs.readlinkSync(path.join(dir, 'models')), path.join(hub.dataDir, 'shared', 'models'));
    assert.ok(fs.existsSync(path.join(hub.dataDir, 'logs', `comfy_u${inst.user_id}_p${p.id}_${inst.port}.log`)));
    // a second open reuses it
    const again = await alice.post(`/api/projects/${p.id}/open_comfy`);
    assert.equal(again.body.reused, true);
    assert.equal(again.body.instance.pid, inst.pid);
    // its log, for the owner and admins only
    const log = await alice.get(`/api/instances/${inst.id}/log?tail=2`);
    assert.equal(log.status, 200);
    assert.equal(log.text.trimEnd().split('\n').length, 2, log.text);
    assert.equal((await admin.get(`/api/instances/${inst.id}/log`)).status, 200);
    assert.equal((await bob.get(`/api/instances/${inst.id}/log`)).status, 403);
    assert.equal((await alice.get(`/api/instances/${inst.id}/log?tail=0`)).status, 400);
    // the listing carries the status
    const listed = (await alice.get('/api/projects')).body.find((x) => x.id === p.id);
    assert.equal(listed.status, 'online');
    assert.equal((await bob.get('/api/instances')).body.length, 0);
    assert.ok((await alice.get('/api/instances')).body.some((i) => i.pid === inst.pid));
  });

  test('a killed instance is offline at once and a reopen starts it again', async () => {
    const p = (await alice.post('/api/projects', { name: 'crashy' })).body;
    const first = (await alice.post(`/api/projects/${p.id}/open_comfy`)).body.instance;
    trackInstancePid(first.pid);
    const foreign = new WebSocket(`ws://${HOST}:${hub.port}/api/events`, { headers: { cookie: alice.cookie, origin: 'http://evil.example' } });
    const refused = await new Promise((r) => { foreign.once('unexpected-response', (req, res) => r(res.statusCode)); foreign.once('open', () => r('open')); });
    assert.equal(refused, 403, 'another origin cannot listen with the session');
    const events = new WebSocket(`ws://${HOST}:${hub.port}/api/events`, { headers: { cookie: alice.cookie } });
    const seen = [];
    events.on('message', (m) => seen.push(JSON.parse(m.toString())));
    await new Promise((r) => events.once('open', r));
    await waitFor(() => seen.find((m) => m.type === 'hello'), 5000, 'hello');
    process.kill(first.pid, 'SIGKILL');
    const offline = await waitFor(async () => {
      const r = await alice.get(`/api/projects/${p.id}`);
      return r.body.status === 'offline' ? r.body : null;
    }, 1500, 'offline');
    assert.match(offline.instance.reason, /signal 9/);
    await waitFor(() => seen.find((m) => m.type === 'instance' && m.data.project_id === p.id && m.data.status === 'offline'),
      2000, 'an instance event');
    const again = await alice.post(`/api/projects/${p.id}/open_comfy`);
    assert.equal(again.status, 200, again.text);
    trackInstancePid(again.body.instance.pid);
    assert.notEqual(again.body.instance.pid, first.pid);
    assert.ok(inRange(again.body.instance.port, hub.portRange));
    assert.equal(again.body.status, 'online');
    events.close();
    const audit = (await admin.get('/api/audit?limit=200')).body;
    assert.ok(audit.some((a) => a.action === 'instance_exit' && a.target === `project ${p.id}`));
  });

  test('a crashed instance of a project in use restarts by itself', async () => {
    const p = (await alice.post('/api/projects', { name: 'self-healing' })).body;
    const first = (await alice.post(`/api/projects/${p.id}/open_comfy`)).body.instance;
    process.kill(first.pid, 'SIGKILL');
    const back = await waitFor(async () => {
      const r = (await alice.get(`/api/projects/${p.id}`)).body;
      return r.status === 'online' && r.instance.pid !== first.pid ? r : null;
    }, 10000, 'the restart');
    trackInstancePid(back.instance.pid);
    assert.equal(back.instance.crash_count, 1);
  });

  test('stop_comfy stops the process; teachers may stop a student\'s instance', async () => {
    const p = (await alice.post('/api/projects', { name: 'to stop' })).body;
    const inst = (await alice.post(`/api/projects/${p.id}/open_comfy`)).body.instance;
    trackInstancePid(inst.pid);
    const r = await teacher.post(`/api/projects/${p.id}/stop_comfy`);
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'stopped');
    assert.equal(pidAlive(inst.pid), false);
    assert.equal((await probeStatus(inst.port)), 0);
    // stopping a stopped project is fine
    assert.equal((await alice.post(`/api/projects/${p.id}/stop_comfy`)).status, 200);
  });

  test('heartbeat: an instance that stops answering goes offline, and online again', async () => {
    const p = (await alice.post('/api/projects', { name: 'frozen' })).body;
    const inst = (await alice.post(`/api/projects/${p.id}/open_comfy`)).body.instance;
    trackInstancePid(inst.pid);
    process.kill(inst.pid, 'SIGSTOP');
    try {
      const off = await waitFor(async () => {
        const r = (await alice.get(`/api/projects/${p.id}`)).body;
        return r.status === 'offline' ? r : null;
      }, 8000, 'offline');
      assert.match(off.instance.reason, /no answer/);
    } finally {
      process.kill(inst.pid, 'SIGCONT');
    }
    await waitFor(async () => (await alice.get(`/api/projects/${p.id}`)).body.status === 'online', 8000, 'online');
  });
});

describe('hub: limits and faults', () => {
  test('the instance cap and a port range with no free port give clear 503s', async () => {
    const range = await freePortRange(2);
    // something else holds the first port of the range: it is skipped
    const squatter = net.createServer().listen(range[0], HOST);
    await new Promise((r) => squatter.once('listening', r));
    const hub = await startHub({ portRange: range, env: { COMFYUI_MAX_INSTANCES: '2' } });
    try {
      const admin = await hub.login('admin', hub.adminPassword);
      const ids = [];
      for (const name of ['a', 'b', 'c']) ids.push((await admin.post('/api/projects', { name })).body.id);
      const a = await admin.post(`/api/projects/${ids[0]}/open_comfy`);
      assert.equal(a.status, 200, a.text);
      trackInstancePid(a.body.instance.pid);
      assert.equal(a.body.instance.port, range[1], 'the held port is skipped');
      const b = await admin.post(`/api/projects/${ids[1]}/open_comfy`);
      assert.equal(b.status, 503);
      assert.match(b.body.error.message, /no free port/);
      squatter.close();
      await sleep(100);
      const b2 = await admin.post(`/api/projects/${ids[1]}/open_comfy`);
      assert.equal(b2.status, 200, b2.text);
      trackInstancePid(b2.body.instance.pid);
      const c = await admin.post(`/api/projects/${ids[2]}/open_comfy`);
      assert.equal(c.status, 503);
      assert.match(c.body.error.message, /maximum of 2 instances/);
      assert.equal((await admin.get('/api/me')).status, 200);
    } finally {
      squatter.close();
      await hub.stop();
    }
  });

  test('an instance command that does not exist, exits at once, or never answers', async () => {
    for (const [command, pattern, env] of [
      ['/nonexistent/comfyui --port {port}', /cannot start '\/nonexistent\/comfyui'/, {}],
      ['/bin/false --port {port}', /exited with code 1 during start-up/, {}],
      ['sleep 600', /did not answer GET \/system_stats within 2 s/, { COMFYUI_STARTUP_TIMEOUT_SECONDS: '2' }],
    ]) {
      const hub = await startHub({ env: { COMFYUI_COMMAND: command, ...env } });
      try {
        const admin = await hub.login('admin', hub.adminPassword);
        const id = (await admin.post('/api/projects', { name: 'broken' })).body.id;
        const r = await admin.post(`/api/projects/${id}/open_comfy`);
        assert.equal(r.status, 500, `${command}: ${r.text}`);
        assert.match(r.body.error.message, pattern);
        const rec = (await admin.get(`/api/projects/${id}`)).body;
        assert.equal(rec.status, 'failed');
        assert.ok((await admin.get('/api/audit')).body.some((a) => a.action === 'instance_failed'));
        if (rec.instance.pid) assert.equal(pidAlive(rec.instance.pid), false);
      } finally {
        await hub.stop();
      }
    }
  });

  test('a port that answers as another instance is not taken for the one started', async () => {
    // The instance command is a stand-in that hands the port the hub gave it to a real comfyd
    // serve of another project's directory (a stale instance of another project on that port):
    // /system_stats answers 200, but not as this project's instance.
    const { COMFYD_BIN } = await import('./lib/server.mjs');
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-impostor-'));
    const otherDir = path.join(scratch, 'u9', 'p99');
    fs.mkdirSync(otherDir, { recursive: true });
    const script = path.join(scratch, 'impostor.sh');
    fs.writeFileSync(script, `#!/bin/sh\n# $1 --listen $2 $3 --port $4 ...\nexec ${COMFYD_BIN} serve --listen "$2" --port "$4" --base-directory ${otherDir}\n`, { mode: 0o755 });
    const hub = await startHub({ env: {
      COMFYUI_COMMAND: `${script} --listen {listen} --port {port} --base-directory {base_dir}`,
      COMFYUI_STARTUP_TIMEOUT_SECONDS: '2' } });
    try {
      const admin = await hub.login('admin', hub.adminPassword);
      const id = (await admin.post('/api/projects', { name: 'impersonated' })).body.id;
      const r = await admin.post(`/api/projects/${id}/open_comfy`);
      assert.equal(r.status, 500, r.text);
      const port = (await admin.get(`/api/projects/${id}`)).body.instance.port;
      assert.match(r.body.error.message,
        new RegExp(`port ${port} answers as another instance \\(its --base-directory is ${otherDir}\\)`));
      const rec = (await admin.get(`/api/projects/${id}`)).body;
      assert.equal(rec.status, 'failed');
      assert.doesNotMatch(hub.output(), /online on port/, 'never reported online');
      assert.equal(await probeStatus(port, '/system_stats', 1000), 0, 'the stand-in was stopped');
    } finally {
      await hub.stop();
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  });

  test('a port taken between the hub\'s check and the instance\'s bind: the start goes on on the next port', async () => {
    // The instance command is a stand-in that, the first time, has another process take the
    // port the hub gave it (as another hub on this machine, or an outgoing connection, could in
    // that moment), then starts comfyd serve there, which cannot bind it and exits.
    const { COMFYD_BIN } = await import('./lib/server.mjs');
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-thief-'));
    const holder = path.join(scratch, 'holder.pid'), held = path.join(scratch, 'held.port');
    const script = path.join(scratch, 'thief.sh');
    fs.writeFileSync(script, `#!/bin/sh
# $1 --listen $2 $3 --port $4 $5 --base-directory $6
if [ ! -e ${held} ]; then
  ${process.execPath} -e 'require("net").createServer().listen(Number(process.argv[1]), process.argv[2], () => require("fs").writeFileSync(process.argv[3], process.argv[1]))' "$4" "$2" ${held} > /dev/null 2>&1 &
  echo $! > ${holder}
  i=0; while [ ! -s ${held} ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
fi
exec ${COMFYD_BIN} serve --listen "$2" --port "$4" --base-directory "$6"
`, { mode: 0o755 });
    const hub = await startHub({ env: { COMFYUI_COMMAND: `${script} --listen {listen} --port {port} --base-directory {base_dir}` } });
    try {
      const admin = await hub.login('admin', hub.adminPassword);
      const id = (await admin.post('/api/projects', { name: 'contested' })).body.id;
      const r = await admin.post(`/api/projects/${id}/open_comfy`);
      assert.equal(r.status, 200, r.text);
      trackInstancePid(r.body.instance.pid);
      const taken = Number(fs.readFileSync(held, 'utf8'));
      assert.notEqual(r.body.instance.port, taken);
      assert.equal(r.body.instance.status, 'online');
      assert.match(hub.output(), new RegExp(`exited with code 1 during start-up on \\S+ port ${taken}; trying the next port`));
      assert.equal((await admin.get(`/comfyui/admin/${id}/system_stats`)).status, 200);
    } finally {
      await hub.stop();
      try { process.kill(Number(fs.readFileSync(holder, 'utf8')), 'SIGKILL'); } catch { /* gone */ }
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  });

  test('an unknown setting or a bad value stops the hub with a message', async () => {
    const { spawnSync } = await import('node:child_process');
    const { COMFYD_BIN } = await import('./lib/server.mjs');
    const bad = spawnSync(COMFYD_BIN, ['hub', '--comfyui-port-range', '9000-8000'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /COMFYUI_PORT_RANGE/);
    const help = spawnSync(COMFYD_BIN, ['hub', '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    for (const name of ['COMFYUI_PORT_RANGE', 'COMFYUI_STARTUP_TIMEOUT_SECONDS', 'COMFYUI_IDLE_STOP_SECONDS',
      'COMFYUI_MAX_INSTANCES', 'COMFYUI_HEARTBEAT_INTERVAL_SECONDS', 'COMFYD_ADMIN_PASSWORD', '--data-dir'])
      assert.ok(help.stdout.includes(name), name);
  });

  test('idle instances stop by themselves', async () => {
    const hub = await startHub({ env: { COMFYUI_IDLE_STOP_SECONDS: '2' } });
    try {
      const admin = await hub.login('admin', hub.adminPassword);
      const id = (await admin.post('/api/projects', { name: 'idle' })).body.id;
      const inst = (await admin.post(`/api/projects/${id}/open_comfy`)).body.instance;
      trackInstancePid(inst.pid);
      const stopped = await waitFor(async () => {
        const r = (await admin.get(`/api/projects/${id}`)).body;
        return r.status === 'stopped' ? r : null;
      }, 10000, 'the idle stop');
      assert.match(stopped.instance.reason, /without use/);
      assert.equal(pidAlive(inst.pid), false);
      assert.ok((await admin.get('/api/audit')).body.some((a) => a.action === 'idle_stop'));
    } finally {
      await hub.stop();
    }
  });
});

describe('hub: restarts', () => {
  test('kill -9 of the hub loses nothing and the new hub adopts the running instance', async () => {
    const first = await startHub();
    const admin = await first.login('admin', first.adminPassword);
    const { client: alice } = await first.addUser(admin, 'alice');
    const token = (await alice.post('/api/tokens', { name: 'script' })).body.token;
    const id = (await alice.post('/api/projects', { name: 'survivor' })).body.id;
    const inst = (await alice.post(`/api/projects/${id}/open_comfy`)).body.instance;
    trackInstancePid(inst.pid);
    await first.kill9();
    assert.equal(pidAlive(inst.pid), true, 'the instance outlives a killed hub');

    const second = await startHub({ dataDir: first.dataDir, portRange: first.portRange });
    try {
      // the session, the token, the user and the project all survived
      const sdk = second.client({ token });
      assert.equal((await sdk.get('/api/me')).body.user.name, 'alice');
      assert.equal((await second.client({ cookie: alice.cookie }).get('/api/me')).status, 200);
      const rec = await waitFor(async () => {
        const r = (await sdk.get(`/api/projects/${id}`)).body;
        return r.status === 'online' ? r : null;
      }, 5000, 'adoption');
      assert.equal(rec.instance.pid, inst.pid, 'the same process, not a new one');
      const reopened = await sdk.post(`/api/projects/${id}/open_comfy`);
      assert.equal(reopened.body.reused, true);
      assert.equal(reopened.body.instance.pid, inst.pid);
      const audit = (await (await second.login('admin', second.adminPassword)).get('/api/audit')).body;
      assert.ok(audit.some((a) => a.action === 'instance_adopt'));
      // an adopted instance's death is seen at once too
      process.kill(inst.pid, 'SIGKILL');
      await waitFor(async () => (await sdk.get(`/api/projects/${id}`)).body.status !== 'online', 2000, 'exit seen');
      const back = await waitFor(async () => {
        const r = (await sdk.get(`/api/projects/${id}`)).body;
        return r.status === 'online' && r.instance.pid !== inst.pid ? r : null;
      }, 10000, 'restart');
      trackInstancePid(back.instance.pid);
      // a clean stop of the hub stops its instances
      await second.stop({ keep: true });
      assert.equal(pidAlive(back.instance.pid), false);
      const third = await startHub({ dataDir: first.dataDir, portRange: first.portRange });
      const after = (await third.client({ token }).get(`/api/projects/${id}`)).body;
      assert.equal(after.status, 'stopped');
      await third.stop();
    } finally {
      if (second.child.exitCode === null) await second.stop({ keep: true });
    }
  });
});
