// comfyd hub: stopping the hub while a node-pack task runs. The manager's worker thread is
// cancelled; what can stop at once (a build) does, and what cannot (a clone from a server that
// accepts and then says nothing) is left behind after a few seconds, so that SIGTERM ends the hub
// quickly, and in neither case is the pack left installed.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startHub, waitFor } from './lib/hub.mjs';
import { packFiles, makeRepo, startFileServer } from './lib/manager-fixtures.mjs';

const T = { timeout: 90000 };

describe('hub: a node-pack task when the hub stops', () => {
  let root, fsrv, silent, silentHits = 0;
  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-hub-packs-'));
    fsrv = await startFileServer();
    const slow = makeRepo(root, 'slow', { ...packFiles({ id: 'slow', nodes: ['SlowNode'] }), Makefile: 'all:\n\tsleep 60\n' });
    // a git server that takes the request and never answers: libgit2 waits in recv, no callback runs
    silent = http.createServer(() => { silentHits++; });
    await new Promise((r) => silent.listen(0, '127.0.0.1', r));
    const entry = (id, url) => ({ author: 't', title: id, id, reference: url, files: [url], install_type: 'git-clone', description: id });
    fsrv.files.set('/channel/custom-node-list.json', JSON.stringify({ custom_nodes: [
      entry('slow', slow.url), entry('stalled', `http://127.0.0.1:${silent.address().port}/stalled.git`)] }));
  });
  after(async () => {
    silent?.closeAllConnections();
    silent?.close();
    await fsrv?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  /** A hub whose node-pack manager reads the test channel. */
  async function hubWithChannel(dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-hub-'))) {
    fs.mkdirSync(path.join(dataDir, 'manager', '__manager'), { recursive: true });
    fs.writeFileSync(path.join(dataDir, 'manager', '__manager', 'config.ini'), `[default]\nchannel_url = ${fsrv.base}/channel\n`);
    const hub = await startHub({ dataDir });
    return { hub, admin: await hub.login('admin', hub.adminPassword) };
  }
  const customNodes = (hub) => path.join(hub.dataDir, 'shared', 'custom_nodes');

  test('SIGTERM during a clone from a silent server ends the hub within seconds; the pack is not installed', T, async () => {
    const { hub, admin } = await hubWithChannel();
    const r = await admin.post('/api/packs/tasks', { action: 'install', id: 'stalled' });
    assert.equal(r.status, 202, r.text);
    await waitFor(() => silentHits > 0, 10000, 'the clone reached the server');
    const t0 = Date.now();
    await hub.stop({ keep: true, timeoutMs: 15000 }); // exit 0, no sanitizer or leak report
    assert.ok(Date.now() - t0 < 8000, `stopped in ${Date.now() - t0} ms`);
    assert.match(hub.output(), /did not stop within 3 s of its cancel: leaving it behind/);
    assert.ok(!fs.existsSync(path.join(customNodes(hub), 'stalled')));
    const again = await hubWithChannel(hub.dataDir);
    try {
      const list = await again.admin.get('/api/packs?q=stalled');
      assert.equal(list.status, 200, list.text);
      assert.equal(list.body.packs.find((x) => x.id === 'stalled').state, 'not-installed');
    } finally {
      await again.hub.stop();
    }
  });

  test('SIGTERM during a build stops it at once; the pack is not installed', T, async () => {
    const { hub, admin } = await hubWithChannel();
    const r = await admin.post('/api/packs/tasks', { action: 'install', id: 'slow' });
    assert.equal(r.status, 202, r.text);
    // the clone is done and make is sleeping in the staging folder
    await waitFor(() => fs.readdirSync(customNodes(hub)).some((d) => d.startsWith('.staging-slow-') &&
      fs.existsSync(path.join(customNodes(hub), d, 'Makefile'))), 10000, 'the build');
    await new Promise((res) => setTimeout(res, 500));
    const t0 = Date.now();
    await hub.stop({ keep: true, timeoutMs: 15000 });
    assert.ok(Date.now() - t0 < 3000, `stopped in ${Date.now() - t0} ms`);
    assert.match(hub.output(), /slow failed: build cancelled/);
    assert.ok(!fs.readdirSync(customNodes(hub)).some((d) => /slow/.test(d)), 'neither installed nor left in staging');
    fs.rmSync(hub.dataDir, { recursive: true, force: true });
  });
});
