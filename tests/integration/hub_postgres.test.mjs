// comfyd hub on PostgreSQL (COMFYD_HUB_STORE=postgres://…): accounts, projects, instances and
// the admission queue live in a PostgreSQL database, so a hub killed with kill -9 and started
// again on the same database finds everything, and a prompt it had accepted runs exactly once.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { HOST, sleep, COMFYD_BIN } from './lib/server.mjs';
import { startHub, waitFor, trackInstancePid, sleeper, installTestingPack } from './lib/hub.mjs';
import { startPostgres } from './lib/pg.mjs';

const T = { timeout: 90000 };

/** Every message an instance sends to clientId. */
function listenDirect(port, clientId) {
  const ws = new WebSocket(`ws://${HOST}:${port}/ws?clientId=${clientId}`);
  const events = [];
  ws.on('message', (d, bin) => { if (!bin) events.push(JSON.parse(d.toString())); });
  return new Promise((r) => ws.once('open', () => r({ ws, events })));
}

function starts(events, id) {
  return events.filter((e) => e.type === 'execution_start' && e.data?.prompt_id === id).length;
}

describe('the hub on PostgreSQL', () => {
  let pg;
  before(async () => { pg = await startPostgres(); });
  after(async () => { await pg?.stop(); });

  test('everything survives kill -9 of the hub; an accepted prompt completes exactly once', T, async () => {
    const env = { COMFYD_HUB_STORE: pg.uri, COMFY_MAX_CONCURRENT: '1' };
    const first = await startHub({ env });
    let second = null, listener = null;
    try {
      assert.match(first.output(), /hub: store postgres postgresql:\/\/\/postgres\?host=/);
      installTestingPack(first.dataDir);
      const admin = await first.login('admin', first.adminPassword);
      const { user: ann, client } = await first.addUser(admin, 'ann');
      const { user: tom } = await first.addUser(admin, 'tom', 'teacher');
      const project = (await client.post('/api/projects', { name: 'on postgres' })).body;
      const other = (await client.post('/api/projects', { name: 'second' })).body;
      assert.ok(project.id > 0 && other.id > project.id);
      const opened = await client.post(`/api/projects/${project.id}/open_comfy`);
      assert.equal(opened.status, 200, opened.text);
      const inst = opened.body.instance;
      trackInstancePid(inst.pid);

      listener = await listenDirect(inst.port, 'pg');
      const base = `/comfyui/ann/${project.id}`;
      const ids = [];
      for (let i = 0; i < 4; i++) {
        const r = await client.post(`${base}/prompt`, { prompt: sleeper(0.4, 9100 + i), client_id: 'pg' });
        assert.equal(r.status, 200, r.text);
        ids.push(r.body.prompt_id);
      }
      // answered 200 only once stored: the rows are in PostgreSQL, not in a file of the data dir
      assert.equal(pg.query(`SELECT count(*) FROM prompts`), String(ids.length));
      assert.ok(!fs.existsSync(path.join(first.dataDir, 'hub.sqlite3')));
      await waitFor(() => listener.events.some((e) => e.type === 'execution_success'), 30000, 'one done');
      await first.kill9();

      second = await startHub({ dataDir: first.dataDir, portRange: first.portRange, env });
      // the session cookie, the accounts, the projects, the instance and the audit log are there
      const again = second.client({ cookie: client.cookie });
      const me = await again.get('/api/me');
      assert.equal(me.status, 200, me.text);
      assert.equal(me.body.user.id, ann.id);
      const admin2 = await second.login('admin', second.adminPassword);
      const users = (await admin2.get('/api/users')).body;
      assert.deepEqual(users.map((u) => u.name).sort(), ['admin', 'ann', 'tom']);
      assert.ok(users.some((u) => u.id === tom.id && u.role === 'teacher'));
      const projects = (await again.get('/api/projects')).body;
      assert.deepEqual(projects.map((p) => p.id), [project.id, other.id]);
      const audit = await admin2.get('/api/audit?limit=50');
      assert.equal(audit.status, 200, audit.text);
      const actions = audit.body.map((a) => a.action);
      assert.ok(actions.includes('user_create') && actions.includes('open'), actions.join(' '));

      await waitFor(async () => {
        const states = await Promise.all(ids.map(async (id) => (await again.get(`/api/queue/tasks/${id}`)).body.state));
        return states.every((s) => s === 'done');
      }, 60000, 'all done after the restart');
      await sleep(300);
      for (const id of ids) assert.equal(starts(listener.events, id), 1, `prompt ${id} ran exactly once`);
      assert.equal(pg.query(`SELECT count(*) FROM prompts WHERE state = 'done'`), String(ids.length));
      await second.stop();
    } finally {
      listener?.ws.close();
      if (first.child.exitCode === null) first.child.kill('SIGKILL');
      if (second && second.child.exitCode === null) second.child.kill('SIGKILL');
    }
  });

  test('a store the hub cannot reach or name stops it at start with the reason', T, async () => {
    await assert.rejects(startHub({ env: { COMFYD_HUB_STORE: 'mysql://db/hub' } }),
      /neither sqlite:PATH nor a postgres:\/\/ URI/);
    await assert.rejects(startHub({ args: ['--store', 'postgresql:///hub?host=/nonexistent-dir-cd'] }),
      /connecting to PostgreSQL.*nonexistent-dir-cd/s);
  });
});
