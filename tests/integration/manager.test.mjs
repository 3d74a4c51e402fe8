// The node-pack manager (ComfyUI-Manager's API, issue #6): catalog routes, the queue and its
// cm-queue-status events, installs from local bare git repositories (file://) and from
// archives served over HTTP, builds of C packs, update / disable / enable / uninstall / fix,
// checksum and archive-entry refusals, model downloads with resume, the security levels,
// reboot (in place, and comfy-cli's marker protocol), the command line, and the manager calls
// of @saintno/comfyui-sdk.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ComfyApi } from '@saintno/comfyui-sdk';
import { startServer, sleep, COMFYD_BIN } from './lib/server.mjs';
import { packFiles, makeRepo, tarGz, sha256, startFileServer, collectWs } from './lib/manager-fixtures.mjs';

const T = { timeout: 120000 };
let root, fsrv, repos, big;

function config(extra = '') {
  return { 'user/__manager/config.ini': `[default]\nchannel_url = ${fsrv.base}/channel\n${extra}\n` };
}

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-mgr-'));
  fsrv = await startFileServer();
  repos = {};
  repos.alpha = makeRepo(root, 'alpha', packFiles({ id: 'alpha', nodes: ['AlphaNode'] }));
  repos.alpha.tag('v1');
  repos.alpha.commit(packFiles({ id: 'alpha', version: '2.0.0', nodes: ['AlphaNode', 'AlphaNodeTwo'] }));
  repos.beta = makeRepo(root, 'beta', packFiles({ id: 'beta', nodes: ['BetaNode'] }));
  repos.broken = makeRepo(root, 'broken', packFiles({ id: 'broken', nodes: ['BrokenNode'], broken: true }));
  repos.unlisted = makeRepo(root, 'unlisted', packFiles({ id: 'unlisted', nodes: ['UnlistedNode'] }));
  // the other ways a pack can be built: CMakeLists.txt, bare C sources; and a build that hangs
  const cm = packFiles({ id: 'cmk', nodes: ['CmakeNode'] });
  delete cm.Makefile;
  cm['CMakeLists.txt'] = 'cmake_minimum_required(VERSION 3.13)\nproject(cmk C)\nadd_library(cmk MODULE pack.c)\nset_target_properties(cmk PROPERTIES PREFIX "")\n';
  repos.cmk = makeRepo(root, 'cmk', cm);
  const plain = packFiles({ id: 'plain', nodes: ['PlainNode'] });
  delete plain.Makefile;
  repos.plain = makeRepo(root, 'plain', plain);
  repos.slow = makeRepo(root, 'slow', { ...packFiles({ id: 'slow', nodes: ['SlowNode'] }), Makefile: 'all:\n\tsleep 60\n' });
  const gamma = tarGz(Object.entries(packFiles({ id: 'gamma', nodes: ['GammaNode'] })).map(([n, c]) => [`gamma-1.0/${n}`, c]));
  const evil = tarGz([['evil/comfyd-pack.json', '{"id":"evil"}'], ['evil/../../evil.txt', 'owned']]);
  big = Buffer.alloc(300 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) & 255;
  fsrv.files.set('/gamma.tar.gz', gamma);
  fsrv.files.set('/badsum.tar.gz', gamma);
  fsrv.files.set('/evil.tar.gz', evil);
  fsrv.files.set('/models/good.safetensors', 'safe weights');
  fsrv.files.set('/models/weights.bin', 'pickle weights');
  fsrv.files.set('/models/big.safetensors', big);
  const entry = (id, files, extra = {}) => ({ author: 't', title: `pack ${id}`, id, reference: files[0], files, install_type: 'git-clone', description: id, ...extra });
  fsrv.files.set('/channel/custom-node-list.json', JSON.stringify({ custom_nodes: [
    entry('alpha', [repos.alpha.url], { ref: 'v1' }),
    entry('beta', [repos.beta.url]),
    entry('broken', [repos.broken.url]),
    entry('cmk', [repos.cmk.url]),
    entry('plain', [repos.plain.url]),
    entry('slow', [repos.slow.url]),
    entry('gamma', [`${fsrv.base}/gamma.tar.gz`], { install_type: 'unzip', sha256: sha256(gamma), version: '1.0' }),
    entry('badsum', [`${fsrv.base}/badsum.tar.gz`], { install_type: 'unzip', sha256: '0'.repeat(64) }),
    entry('evil', [`${fsrv.base}/evil.tar.gz`], { install_type: 'unzip' }),
  ] }));
  fsrv.files.set('/channel/extension-node-map.json', JSON.stringify({ [repos.alpha.url]: [['AlphaNode'], { title_aux: 'alpha' }] }));
  const model = (name, filename, save_path, extra = {}) => ({ name, type: 'lora', base: 'SD1.5', save_path, description: '', reference: '', filename, url: `${fsrv.base}/models/${filename}`, size: '1KB', ...extra });
  fsrv.files.set('/channel/model-list.json', JSON.stringify({ models: [
    model('good', 'good.safetensors', 'loras', { sha256: sha256(Buffer.from('safe weights')) }),
    model('pickle', 'weights.bin', 'loras'),
    model('big', 'big.safetensors', 'default', { sha256: sha256(big) }),
    model('badsum', 'good.safetensors', 'checkpoints', { sha256: 'f'.repeat(64) }),
    model('escape', 'good.safetensors', '../../outside'),
    { ...model('slash', 'x.safetensors', 'loras'), filename: '../x.safetensors' },
  ] }));
});

after(async () => {
  await fsrv?.close();
  if (root && !process.env.COMFYD_TEST_KEEP) fs.rmSync(root, { recursive: true, force: true });
});

/** A server with the test channel, a WebSocket collector and request helpers. */
async function manager(opts = {}) {
  const srv = await startServer({ ...opts, files: { ...config(opts.config || ''), ...(opts.files || {}) } });
  const base = `http://127.0.0.1:${srv.port}`;
  const ws = await collectWs(srv.port, ['cm-queue-status', 'cm-download-progress']);
  const post = (p, body) => fetch(base + p, { method: 'POST', headers: body === undefined ? {} : { 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const get = (p) => fetch(base + p);
  /** Queues [route, body] pairs, starts the worker and resolves with the done event. */
  async function run(...items) {
    const ws = o.ws;
    ws.msgs.length = 0;
    for (const [route, body] of items) {
      const r = await post(route, body);
      assert.equal(r.status, 200, `${route}: ${r.status} ${await r.text()}`);
    }
    const s = await post('/manager/queue/start');
    assert.ok([200, 201].includes(s.status));
    return ws.waitFor((m) => m.data.status === 'done');
  }
  const installed = async () => (await get('/customnode/installed')).json();
  const o = { srv, base, ws, post, get, run, installed, cn: path.join(srv.baseDir, 'custom_nodes'),
    async stop() { o.ws.close(); await srv.stop(); } };
  return o;
}

async function waitBack(base) {
  for (let i = 0; i < 300; i++) {
    try { if ((await fetch(`${base}/system_stats`)).status === 200) return; } catch { /* restarting */ }
    await sleep(100);
  }
  throw new Error('the server did not come back');
}

describe('node-pack manager', () => {
  test('catalog routes: getlist, getmappings, externalmodel, installed, version', T, async () => {
    const m = await manager();
    try {
      const list = await (await m.get('/customnode/getlist?mode=cache&skip_update=true')).json();
      assert.equal(list.channel, 'custom');
      assert.deepEqual(Object.keys(list.node_packs).sort(), ['alpha', 'badsum', 'beta', 'broken', 'cmk', 'evil', 'gamma', 'plain', 'slow']);
      assert.equal(list.node_packs.alpha.state, 'not-installed');
      assert.equal(list.node_packs.alpha.repository, repos.alpha.url);
      const local = await (await m.get('/api/customnode/getlist?mode=local')).json();
      assert.equal(local.channel, 'default');
      assert.ok(local.node_packs['comfyd-example-text'], 'the bundled channel lists our example pack');
      const maps = await (await m.get('/customnode/getmappings?mode=cache')).json();
      assert.deepEqual(maps.alpha, [['AlphaNode'], { title_aux: 'alpha' }], 're-keyed by pack id');
      const models = await (await m.get('/externalmodel/getlist?mode=cache')).json();
      assert.equal(models.models.find((x) => x.name === 'good').installed, 'False');
      assert.deepEqual(await m.installed(), {});
      assert.equal(await (await m.get('/manager/version')).text(), 'V3.41');
      assert.deepEqual(await (await m.get('/manager/queue/status')).json(),
        { total_count: 0, done_count: 0, in_progress_count: 0, is_processing: false });
    } finally { await m.stop(); }
  });

  test('install from git (pinned tag), cm-queue-status sequence, reboot, new node in /object_info', T, async () => {
    const m = await manager();
    try {
      const done = await m.run(['/manager/queue/install', { id: 'alpha', version: '1.0.0', selected_version: 'latest', ui_id: 'ui-alpha', mode: 'cache', channel: 'custom' }]);
      const seq = m.ws.msgs.map((x) => x.data);
      assert.deepEqual(seq[0], { status: 'in_progress', target: 'ui-alpha', ui_target: 'nodepack_manager', total_count: 1, done_count: 0 });
      assert.deepEqual(done.data, { status: 'done', nodepack_result: { 'ui-alpha': 'success' }, model_result: {}, total_count: 1, done_count: 1 });
      assert.equal(seq.length, 2);
      const inst = await m.installed();
      assert.equal(inst.alpha.enabled, true);
      assert.equal(inst.alpha.ver, repos.alpha.url && (await import('./lib/manager-fixtures.mjs')).git(path.join(root, 'alpha.git'), 'rev-parse', 'v1^{commit}'), 'pinned to the tag');
      assert.ok(fs.existsSync(path.join(m.cn, 'alpha', 'pack.so')));
      assert.ok(fs.existsSync(path.join(m.cn, 'alpha', '.comfyd-build.log')), 'the build log is kept');
      assert.equal((await m.get('/object_info/AlphaNode')).status, 200);
      assert.deepEqual(await (await m.get('/object_info/AlphaNode')).json(), {}, 'not loaded before a restart');
      assert.deepEqual(await (await m.get('/customnode/installed?mode=imported')).json(), {}, 'the state at start');
      await assert.rejects(m.post('/manager/reboot'), 'the connection is cut, as ComfyUI-Manager execs at once');
      await sleep(300);
      await waitBack(m.base);
      const info = await (await m.get('/object_info')).json();
      assert.ok(info.AlphaNode, 'the new node after the reboot');
      assert.equal(info.AlphaNodeTwo, undefined, 'the commit after the tag is not installed');
      assert.equal((await (await m.get('/customnode/installed?mode=imported')).json()).alpha.enabled, true, 'loaded at this start');
      assert.equal(m.srv.exitInfo, null, 'restarted in place');
      // the same install again is a success (skip)
      m.ws.close();
      m.ws = await collectWs(m.srv.port, ['cm-queue-status']);
      const again = await m.run(['/manager/queue/install', { id: 'alpha', version: '1.0.0', ui_id: 'again' }]);
      assert.equal(again.data.nodepack_result.again, 'success');
    } finally { await m.stop(); }
  });

  test('update, disable, enable, fix, uninstall', T, async () => {
    const m = await manager();
    try {
      let d = await m.run(['/manager/queue/install', { id: 'beta', version: '1.0.0', ui_id: 'b' }]);
      assert.equal(d.data.nodepack_result.b, 'success');
      const v1 = (await m.installed()).beta.ver;
      assert.equal((await m.post('/customnode/fetch_updates', { mode: 'cache' })).status, 200, 'nothing new yet');
      const v2 = repos.beta.commit(packFiles({ id: 'beta', version: '1.1.0', nodes: ['BetaNode', 'BetaNodeNew'] }));
      assert.equal((await m.post('/customnode/fetch_updates', { mode: 'cache' })).status, 201, 'an update is there');
      assert.equal((await (await m.get('/customnode/getlist?mode=cache')).json()).node_packs.beta['update-state'], 'true');
      assert.equal((await (await m.get('/customnode/getlist?mode=cache&skip_update=true')).json()).node_packs.beta['update-state'], 'false');
      d = await m.run(['/manager/queue/update', { id: 'beta', version: v1, ui_id: 'b' }]);
      assert.equal(d.data.nodepack_result.b, 'success');
      assert.equal((await m.installed()).beta.ver, v2);
      assert.equal((await (await m.get('/customnode/getlist?mode=cache')).json()).node_packs.beta['update-state'], 'false');
      assert.match(fs.readFileSync(path.join(m.cn, 'beta', 'pack.c'), 'utf8'), /BetaNodeNew/);

      d = await m.run(['/manager/queue/disable', { id: 'beta', version: v2, ui_id: 'b' }]);
      assert.equal(d.data.nodepack_result.b, 'success');
      assert.ok(fs.existsSync(path.join(m.cn, '.disabled', 'beta', 'pack.so')));
      assert.ok(!fs.existsSync(path.join(m.cn, 'beta')));
      assert.equal((await m.installed()).beta.enabled, false);
      assert.equal((await (await m.get('/customnode/getlist?mode=cache')).json()).node_packs.beta.state, 'disabled');
      assert.deepEqual(await (await m.get('/customnode/disabled_versions/beta')).json(), [{ version: v2 }]);

      d = await m.run(['/manager/queue/enable', { id: 'beta', version: v2, ui_id: 'b' }]);
      assert.equal(d.data.nodepack_result.b, 'success');
      assert.equal((await m.installed()).beta.enabled, true);
      assert.equal((await m.get('/customnode/disabled_versions/beta')).status, 400);
      // installing a disabled pack enables it (ComfyUI-Manager's rule)
      await m.run(['/manager/queue/disable', { id: 'beta', ui_id: 'b' }]);
      d = await m.run(['/manager/queue/install', { id: 'beta', version: '1.0.0', ui_id: 'b' }]);
      assert.equal((await m.installed()).beta.enabled, true);

      fs.rmSync(path.join(m.cn, 'beta', 'pack.so'));
      d = await m.run(['/manager/queue/fix', { id: 'beta', version: v2, ui_id: 'b' }]);
      assert.equal(d.data.nodepack_result.b, 'success');
      assert.ok(fs.existsSync(path.join(m.cn, 'beta', 'pack.so')), 'fix rebuilt the library');

      d = await m.run(['/manager/queue/uninstall', { id: 'beta', version: v2, ui_id: 'b' }]);
      assert.equal(d.data.nodepack_result.b, 'success');
      assert.deepEqual(await m.installed(), {});
      assert.deepEqual(fs.readdirSync(m.cn).filter((n) => !['.disabled', '.logs'].includes(n)), [], 'no staging left');
    } finally { await m.stop(); }
  });

  test('archives: SHA-256 checked, ../ entries refuse the whole archive, good one unpacked', T, async () => {
    const m = await manager();
    try {
      const d = await m.run(
        ['/manager/queue/install', { id: 'badsum', version: '1.0', ui_id: 'bad' }],
        ['/manager/queue/install', { id: 'evil', version: '1.0', ui_id: 'evil' }],
        ['/manager/queue/install', { id: 'gamma', version: '1.0', ui_id: 'gamma' }]);
      assert.match(d.data.nodepack_result.bad, /checksum mismatch/);
      assert.match(d.data.nodepack_result.evil, /archive refused: entry 'evil\/..\/..\/evil.txt'/);
      assert.equal(d.data.nodepack_result.gamma, 'success');
      assert.equal(d.data.total_count, 3);
      assert.ok(!fs.existsSync(path.join(m.srv.baseDir, 'evil.txt')) && !fs.existsSync(path.join(m.cn, 'evil.txt')));
      assert.ok(!fs.existsSync(path.join(m.cn, 'evil')) && !fs.existsSync(path.join(m.cn, 'badsum')));
      assert.ok(fs.existsSync(path.join(m.cn, 'gamma', 'pack.so')), 'top folder stripped, then built');
      assert.match(fs.readFileSync(path.join(m.cn, 'gamma', '.tracking'), 'utf8'), /^comfyd-pack.json$/m);
      assert.equal((await m.installed()).gamma.ver, '1.0.0');
      assert.deepEqual(fs.readdirSync(m.cn).filter((n) => n.startsWith('.staging')), []);
    } finally { await m.stop(); }
  });

  test('a pack that does not compile: install fails with the log; a failed update keeps the old pack', T, async () => {
    const m = await manager();
    try {
      let d = await m.run(['/manager/queue/install', { id: 'broken', version: '1.0.0', ui_id: 'x' }]);
      assert.match(d.data.nodepack_result.x, /build failed \(exit \d+\):.*error/s);
      assert.ok(!fs.existsSync(path.join(m.cn, 'broken')));
      assert.match(fs.readFileSync(path.join(m.cn, '.logs', 'broken.build.log'), 'utf8'), /this is not C/);
      // a good first version, then a broken commit: the update fails and the old one stays
      const sub = fs.mkdtempSync(path.join(root, 'flaky-'));
      const repo = makeRepo(sub, 'flaky', packFiles({ id: 'flaky', nodes: ['FlakyNode'] }));
      const url = repo.url;
      fs.writeFileSync(path.join(m.srv.baseDir, 'user', '__manager', 'config.ini'), `[default]\nchannel_url = ${fsrv.base}/channel\nallow_git_url_install = True\n`);
      await m.stop();
      const m2 = await manager({ baseDir: m.srv.baseDir, config: 'allow_git_url_install = True' });
      try {
        d = await m2.run(['/manager/queue/install', { id: 'flaky', version: 'unknown', files: [url], ui_id: 'f' }]);
        assert.equal(d.data.nodepack_result.f, 'success');
        const good = (await m2.installed()).flaky.ver;
        repo.commit(packFiles({ id: 'flaky', nodes: ['FlakyNode'], broken: true }));
        d = await m2.run(['/manager/queue/update', { id: 'flaky', version: 'unknown', files: [url], ui_id: 'f' }]);
        assert.match(d.data.nodepack_result.f, /build failed/);
        assert.equal((await m2.installed()).flaky.ver, good, 'the previous commit is still installed');
        assert.ok(fs.existsSync(path.join(m2.cn, 'flaky', 'pack.so')));
      } finally { await m2.stop(); fs.rmSync(m.srv.baseDir, { recursive: true, force: true }); }
    } finally { await m.stop(); }
  });

  test('packs built with CMake or from bare C sources; a build past the time limit is stopped', T, async () => {
    const m = await manager({ config: 'build_timeout = 2' });
    try {
      const t0 = Date.now();
      const d = await m.run(
        ['/manager/queue/install', { id: 'cmk', version: '1.0.0', ui_id: 'cmk' }],
        ['/manager/queue/install', { id: 'plain', version: '1.0.0', ui_id: 'plain' }],
        ['/manager/queue/install', { id: 'slow', version: '1.0.0', ui_id: 'slow' }]);
      assert.equal(d.data.nodepack_result.cmk, 'success');
      assert.equal(d.data.nodepack_result.plain, 'success');
      assert.match(d.data.nodepack_result.slow, /build stopped after 2 s \(time limit\)/);
      assert.ok(Date.now() - t0 < 40000, 'the hanging build did not hold the queue');
      assert.ok(fs.existsSync(path.join(m.cn, 'cmk', 'cmk.so')));
      assert.ok(fs.existsSync(path.join(m.cn, 'plain', 'pack.so')));
      assert.ok(!fs.existsSync(path.join(m.cn, 'slow')));
      assert.match(fs.readFileSync(path.join(m.cn, '.logs', 'slow.build.log'), 'utf8'), /time limit reached/);
      await assert.rejects(m.post('/manager/reboot'));
      await sleep(300);
      await waitBack(m.base);
      const info = await (await m.get('/object_info')).json();
      assert.ok(info.CmakeNode && info.PlainNode);
    } finally { await m.stop(); }
  });

  test('stopping the server cancels a running build at once', T, async () => {
    const m = await manager();
    try {
      const pending = m.post('/customnode/install', { id: 'slow', version: '1.0.0' }).then((r) => r.status, () => 'cut');
      await sleep(1500); // the clone is done, make is sleeping
      const t0 = Date.now();
      m.srv.child.kill('SIGTERM');
      const info = await m.srv.waitExit(20000);
      assert.ok(Date.now() - t0 < 10000, `stopped in ${Date.now() - t0} ms`);
      assert.equal(info.code, 0);
      assert.ok([503, 'cut'].includes(await pending));
      assert.ok(!fs.existsSync(path.join(m.cn, 'slow')));
    } finally { m.ws.close(); await m.srv.stop({ signalled: true }); }
  });

  test('reset drops queued tasks, not the running one; a request waiting on a dropped task is answered', T, async () => {
    const m = await manager({ config: 'build_timeout = 3' });
    try {
      assert.equal((await m.post('/manager/queue/install', { id: 'slow', version: '1.0.0', ui_id: 'slow' })).status, 200);
      assert.equal((await m.post('/manager/queue/start')).status, 200);
      await sleep(500);
      const waiting = m.post('/customnode/install', { id: 'beta', version: '1.0.0' });
      await sleep(500);
      const st = await (await m.get('/manager/queue/status')).json();
      assert.deepEqual(st, { total_count: 2, done_count: 0, in_progress_count: 1, is_processing: true });
      assert.equal((await m.post('/manager/queue/reset')).status, 200);
      const r = await waiting;
      assert.equal(r.status, 400);
      assert.equal(await r.text(), 'removed from the queue (reset)');
      const d = await m.ws.waitFor((x) => x.data.status === 'done');
      assert.match(d.data.nodepack_result.slow, /time limit/);
      assert.deepEqual(Object.keys(d.data.nodepack_result), ['slow']);
      assert.equal((await m.installed()).beta, undefined);
    } finally { await m.stop(); }
  });

  test('two installs at once, and two synchronous installs at once', T, async () => {
    const m = await manager();
    try {
      m.ws.msgs.length = 0;
      const rs = await Promise.all([
        m.post('/manager/queue/install', { id: 'alpha', version: '1.0.0', ui_id: 'a' }),
        m.post('/manager/queue/install', { id: 'beta', version: '1.0.0', ui_id: 'b' })]);
      assert.deepEqual(rs.map((r) => r.status), [200, 200]);
      const starts = await Promise.all([m.post('/manager/queue/start'), m.post('/manager/queue/start')]);
      assert.deepEqual(starts.map((r) => r.status).sort(), [200, 201], 'the second start finds the worker alive');
      const d = await m.ws.waitFor((x) => x.data.status === 'done');
      assert.deepEqual(d.data.nodepack_result, { a: 'success', b: 'success' });
      assert.deepEqual(m.ws.msgs.filter((x) => x.data.status === 'in_progress').map((x) => x.data.done_count), [0, 1]);
      // the older synchronous route answers when its own install is done
      await m.run(['/manager/queue/uninstall', { id: 'alpha', ui_id: 'a' }], ['/manager/queue/uninstall', { id: 'beta', ui_id: 'b' }]);
      const sync = await Promise.all([
        m.post('/customnode/install', { id: 'alpha', version: '1.0.0' }),
        m.post('/customnode/install', { id: 'beta', version: '1.0.0' })]);
      assert.deepEqual(sync.map((r) => r.status), [200, 200]);
      const inst = await m.installed();
      assert.ok(inst.alpha.enabled && inst.beta.enabled);
    } finally { await m.stop(); }
  });

  test('models: download with progress, checksum, resume of an interrupted download, paths stay in models/', T, async () => {
    const m = await manager();
    try {
      const item = async (name) => ({ ...(await (await m.get('/externalmodel/getlist?mode=cache')).json()).models.find((x) => x.name === name), ui_id: name });
      let d = await m.run(['/manager/queue/install_model', await item('good')]);
      assert.deepEqual(d.data.model_result, { good: 'success' });
      assert.equal(d.data.nodepack_result && Object.keys(d.data.nodepack_result).length, 0);
      assert.equal(fs.readFileSync(path.join(m.srv.baseDir, 'models', 'loras', 'good.safetensors'), 'utf8'), 'safe weights');
      assert.equal(m.ws.msgs.find((x) => x.data.status === 'in_progress').data.ui_target, 'model_manager');
      assert.ok(m.ws.msgs.some((x) => x.type === 'cm-download-progress' && x.data.ui_id === 'good'), 'byte progress events');

      d = await m.run(['/manager/queue/install_model', await item('badsum')]);
      assert.match(d.data.model_result.badsum, /checksum mismatch/);
      assert.ok(!fs.existsSync(path.join(m.srv.baseDir, 'models', 'checkpoints', 'good.safetensors')));

      // interrupted after 100 KiB: the partial file stays, the next try asks for the rest
      fsrv.cutOnce.set('/models/big.safetensors', 100 * 1024);
      fsrv.log.length = 0;
      d = await m.run(['/manager/queue/install_model', await item('big')]);
      assert.notEqual(d.data.model_result.big, 'success');
      const partial = path.join(m.srv.baseDir, 'models', 'loras', 'big.safetensors.partial');
      const kept = fs.statSync(partial).size;
      assert.ok(kept >= 100 * 1024 && kept < big.length, `partial file of ${kept} bytes`);
      d = await m.run(['/manager/queue/install_model', await item('big')]);
      assert.equal(d.data.model_result.big, 'success');
      assert.deepEqual(fsrv.log.filter((x) => x.url === '/models/big.safetensors').map((x) => x.range), [null, `bytes=${kept}-`]);
      assert.ok(fs.readFileSync(path.join(m.srv.baseDir, 'models', 'loras', 'big.safetensors')).equals(big), 'save_path default + type lora = loras');
      assert.ok(!fs.existsSync(partial));

      d = await m.run(['/manager/queue/install_model', await item('escape')]);
      assert.equal(d.data.model_result.escape, 'success');
      assert.ok(fs.existsSync(path.join(m.srv.baseDir, 'models', 'etc', 'good.safetensors')), 'a save_path with .. goes to etc');
      const r = await m.post('/manager/queue/install_model', await item('slash'));
      assert.equal(r.status, 400);
      const r2 = await m.post('/manager/queue/install_model', { name: 'x', filename: 'x.safetensors', save_path: 'loras', url: 'http://elsewhere/x', base: 'SD1.5' });
      assert.equal(r2.status, 400, 'only models of the catalog');
      assert.equal(await r2.text(), 'Invalid model install request is detected');
    } finally { await m.stop(); }
  });

  test('security levels: strong, normal, normal-, weak; beyond loopback; flags', T, async () => {
    const pickle = async (m) => ({ ...(await (await m.get('/externalmodel/getlist?mode=cache')).json()).models.find((x) => x.name === 'pickle'), ui_id: 'p' });
    const unknownGit = { id: 'unlisted', version: 'unknown', files: [repos.unlisted.url], ui_id: 'u' };
    const cases = [
      // level, listen, install, disable, pickle model, unknown git (flag on), reboot
      ['strong', '127.0.0.1', 403, 200, 403, 403, 403],
      ['normal', '127.0.0.1', 200, 200, 403, 200, 200],
      ['normal-', '127.0.0.1', 200, 200, 200, 200, 200],
      ['weak', '127.0.0.1', 200, 200, 200, 200, 200],
      ['normal-', '0.0.0.0', 200, 200, 403, 404, 200],
      ['weak', '0.0.0.0', 200, 200, 200, 404, 200],
    ];
    for (const [level, listen, install, disable, model, git, reboot] of cases) {
      const m = await manager({ config: `security_level = ${level}\nallow_git_url_install = True`, args: ['--listen', listen] });
      try {
        const what = `${level} on ${listen}`;
        let r = await m.post('/manager/queue/install', { id: 'beta', version: '1.0.0', ui_id: 'b' });
        assert.equal(r.status, install, `install, ${what}`);
        if (install === 403) assert.equal(await r.text(), 'A security error has occurred. Please check the terminal logs');
        assert.equal((await m.post('/manager/queue/disable', { id: 'beta', ui_id: 'b' })).status, disable, `disable, ${what}`);
        assert.equal((await m.post('/manager/queue/install_model', await pickle(m))).status, model, `non-safetensors model, ${what}`);
        assert.equal((await m.post('/manager/queue/install', unknownGit)).status, git, `unknown git URL, ${what}`);
        await m.post('/manager/queue/reset');
        if (reboot === 403) {
          r = await m.post('/manager/reboot');
          assert.equal(r.status, 403);
          assert.deepEqual(await r.json(), { error: 'security_level' });
          assert.equal((await m.post('/snapshot/remove', { target: 'x' })).status, 403);
        }
      } finally { await m.stop(); }
    }
    // the git URL flag off: 404 whatever the level; pip is never installed; CSRF guard
    const m = await manager({ config: 'security_level = weak' });
    try {
      assert.equal((await m.post('/manager/queue/install', unknownGit)).status, 404);
      assert.equal((await m.post('/manager/queue/install', { id: 'beta', version: '1.0.0', pip: ['torch'] })).status, 404);
      const r = await m.post('/customnode/install/git_url', repos.unlisted.url);
      assert.equal(r.status, 403);
      assert.deepEqual(await r.json(), { error: 'allow_git_url_install' });
      const c = await fetch(`${m.base}/manager/queue/start`, { method: 'POST', headers: { 'Content-Type': 'text/plain' } });
      assert.equal(c.status, 400);
      assert.equal(await c.text(), 'Invalid Content-Type for this endpoint. Use application/json or omit body.');
      assert.equal((await m.post('/manager/queue/install', 'not an object')).status, 400);
    } finally { await m.stop(); }
  });

  test('settings and snapshots', T, async () => {
    const m = await manager();
    try {
      assert.equal(await (await m.get('/manager/db_mode')).text(), 'cache');
      assert.equal((await m.post('/manager/db_mode', { value: 'remote' })).status, 200);
      assert.equal(await (await m.get('/manager/db_mode')).text(), 'remote');
      assert.equal((await m.get('/manager/db_mode?value=local')).status, 200, 'the older GET setter');
      assert.equal(await (await m.get('/api/manager/db_mode')).text(), 'local');
      assert.match(fs.readFileSync(path.join(m.srv.baseDir, 'user', '__manager', 'config.ini'), 'utf8'), /db_mode = local/);
      assert.equal((await m.post('/manager/policy/update', { value: 'nightly-comfyui' })).status, 200);
      assert.equal(await (await m.get('/manager/policy/update')).text(), 'nightly-comfyui');
      assert.equal(await (await m.get('/manager/policy/component')).text(), 'workflow');
      assert.equal((await (await m.get('/manager/channel_url_list')).json()).selected, 'custom');

      await m.run(['/manager/queue/install', { id: 'beta', version: '1.0.0', ui_id: 'b' }]);
      assert.equal((await m.post('/snapshot/save')).status, 200);
      const { items } = await (await m.get('/snapshot/getlist')).json();
      assert.equal(items.length, 1);
      const cur = await (await m.get('/snapshot/get_current')).json();
      assert.equal(cur.git_custom_nodes[repos.beta.url].disabled, false);
      // uninstall, then restore the snapshot: the pack comes back at its commit
      const ver = (await m.installed()).beta.ver;
      await m.run(['/manager/queue/uninstall', { id: 'beta', ui_id: 'b' }]);
      m.ws.msgs.length = 0;
      assert.equal((await m.post('/snapshot/restore', { target: items[0] })).status, 200);
      await m.ws.waitFor((x) => x.data.status === 'done');
      assert.equal((await m.installed()).beta.ver, ver);
      assert.equal((await m.post('/snapshot/remove', { target: '../x' })).status, 400);
      assert.equal((await m.post('/snapshot/remove', { target: items[0] })).status, 200);
      assert.deepEqual((await (await m.get('/snapshot/getlist')).json()).items, []);
      // update_all: one update-main per active pack, results for ui_target "main", an autosave
      const d = await m.run(['/manager/queue/update_all', { mode: 'cache' }]);
      assert.deepEqual(d.data.nodepack_result, { beta: { url: repos.beta.url, title: 'beta', msg: 'skip' } });
      assert.equal(m.ws.msgs[0].data.ui_target, 'main');
      assert.equal((await (await m.get('/snapshot/getlist')).json()).items.length, 1);
    } finally { await m.stop(); }
  });

  test('v4 task and batch routes', T, async () => {
    const m = await manager();
    try {
      assert.equal((await m.post('/v2/manager/queue/task', { kind: 'nope', ui_id: 'x', params: {} })).status, 400);
      m.ws.msgs.length = 0;
      const r = await m.post('/v2/manager/queue/batch', { install: [{ id: 'beta', version: '1.0.0', ui_id: 'b' }], batch_id: 'one' });
      assert.deepEqual(await r.json(), { failed: [] });
      const d = await m.ws.waitFor((x) => x.data.status === 'done');
      assert.equal(d.data.nodepack_result.b, 'success');
      assert.equal((await m.post('/v2/manager/queue/task', { kind: 'disable', ui_id: 'd', client_id: 'c', params: { node_name: 'beta', is_unknown: false } })).status, 200);
      const d2 = await m.run();
      assert.equal(d2.data.nodepack_result.d, 'success');
      assert.equal((await m.installed()).beta.enabled, false);
    } finally { await m.stop(); }
  });

  test('comfy-cli launcher: reboot touches <session>.reboot and exits 0', T, async () => {
    const session = path.join(root, 'session-1');
    const m = await manager({ env: { __COMFY_CLI_SESSION__: session } });
    try {
      await assert.rejects(m.post('/manager/reboot'));
      const info = await m.srv.waitExit(20000);
      assert.equal(info.code, 0);
      assert.ok(fs.existsSync(`${session}.reboot`));
      m.srv.assertNoSanitizerReport();
    } finally { m.ws.close(); await m.srv.stop({ signalled: true }); }
  });

  test('@saintno/comfyui-sdk manager calls', T, async () => {
    const m = await manager({ config: 'security_level = normal' });
    const api = new ComfyApi(m.base, 'sdk-client');
    try {
      const mgr = api.ext.manager;
      assert.equal(await mgr.checkSupported(), true);
      const list = await mgr.getExtensionList('cache', true);
      assert.ok(list.node_packs.gamma);
      const maps = await mgr.getNodeMapList('cache');
      assert.deepEqual(maps.map((x) => x.url), ['alpha']);
      assert.equal(await mgr.installExtension({ id: 'gamma', version: '1.0' }), true);
      assert.equal((await m.installed()).gamma.enabled, true);
      assert.equal(await mgr.checkExtensionUpdate('cache'), 0);
      assert.equal(await mgr.setActiveExtension({ id: 'gamma' }), true);
      assert.equal((await m.installed()).gamma.enabled, false);
      assert.equal(await mgr.setActiveExtension({ id: 'gamma' }), true);
      assert.equal((await m.installed()).gamma.enabled, true);
      assert.equal(await mgr.fixInstallExtension({ id: 'gamma' }), true);
      assert.equal(await mgr.updateExtension({ id: 'gamma' }), true);
      assert.equal(await mgr.uninstallExtension({ id: 'gamma' }), true);
      assert.deepEqual(await m.installed(), {});
      const good = (await (await m.get('/externalmodel/getlist?mode=cache')).json()).models.find((x) => x.name === 'good');
      assert.equal(await mgr.installModel(good), true);
      await assert.rejects(mgr.installExtensionFromGit(repos.unlisted.url), /Failed to install extension from git/);
      await assert.rejects(mgr.installExtension({ id: 'broken', version: '1.0.0' }), /Failed to install extension/);
      assert.equal(await mgr.previewMethod(), 'none');
      assert.equal(await mgr.updateComfyUI(), 2, 'comfyd is not updated through the manager');
      assert.equal(await mgr.rebootInstance(), true);
      await sleep(300);
      await waitBack(m.base);
    } finally { api.destroy(); await m.stop(); }
  });

  test('command line: comfyd nodes and comfyd models', T, async () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-cli-'));
    try {
      // asynchronous: the test's own HTTP server must keep answering while the command runs
      const run = (...args) => new Promise((resolve) => {
        execFile(COMFYD_BIN, args, { encoding: 'utf8', env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' } },
          (err, stdout, stderr) => resolve({ status: err ? err.code : 0, stdout, stderr }));
      });
      const common = ['--base-directory', base, '--channel', `${fsrv.base}/channel`];
      let r = await run('nodes', ...common, 'list');
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^beta\s+not-installed/m);
      r = await run('nodes', ...common, 'install', 'beta', 'gamma');
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /install beta: done/);
      r = await run('nodes', ...common, 'install', 'broken');
      assert.equal(r.status, 1);
      assert.match(r.stderr, /install broken: failed: build failed/);
      r = await run('nodes', ...common, 'disable', 'beta');
      assert.equal(r.status, 0, r.stderr);
      r = await run('nodes', ...common, 'list', 'installed');
      assert.match(r.stdout, /^beta\s+disabled/m);
      assert.match(r.stdout, /^gamma\s+enabled/m);
      r = await run('nodes', ...common, 'show', 'gamma');
      assert.equal(JSON.parse(r.stdout).installed.enabled, true);
      assert.equal((await run('nodes', ...common, 'enable', 'beta')).status, 0);
      assert.equal((await run('nodes', ...common, 'fix', 'beta')).status, 0);
      assert.equal((await run('nodes', ...common, 'update', 'all')).status, 0);
      assert.match((await run('nodes', ...common, 'snapshot', 'save')).stdout, /saved snapshot/);
      assert.equal((await run('nodes', ...common, 'uninstall', 'beta', 'gamma')).status, 0);
      assert.deepEqual(fs.readdirSync(path.join(base, 'custom_nodes')).filter((n) => !n.startsWith('.')), []);
      r = await run('models', ...common, 'list');
      assert.match(r.stdout, /good\s+loras\s+False/);
      r = await run('models', ...common, 'download', 'good');
      assert.equal(r.status, 0, r.stderr);
      assert.ok(fs.existsSync(path.join(base, 'models', 'loras', 'good.safetensors')));
      r = await run('models', ...common, 'download', '--url', `${fsrv.base}/models/weights.bin`, '--folder', 'checkpoints', '--sha256', '0'.repeat(64));
      assert.equal(r.status, 1);
      assert.match(r.stderr, /checksum mismatch/);
      assert.doesNotMatch(r.stderr + r.stdout, /AddressSanitizer|LeakSanitizer|runtime error/);
    } finally { fs.rmSync(base, { recursive: true, force: true }); }
  });
});
