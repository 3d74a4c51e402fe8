// comfyd hub, part 4: several hubs on one PostgreSQL. Both hubs take prompts for both users'
// projects; the store's dispatch keeps COMFY_MAX_CONCURRENT across them (checked from the
// instances' own events); a hub killed with kill -9 mid-queue goes silent, and the other takes
// over its prompts and its instance: every prompt completes exactly once.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, waitFor, trackInstancePid, sleeper, installTestingPack } from './lib/hub.mjs';
import { listenDirect, runs, maxOverlap } from './lib/queue-events.mjs';
import { startPostgres } from './lib/pg.mjs';

const T = { timeout: 150000 };

describe('several hubs on one PostgreSQL', () => {
  let pg;
  before(async () => { pg = await startPostgres(); });
  after(async () => { await pg?.stop(); });

  test('two hubs: at most N at once across both; kill -9 of one, the other finishes its work exactly once', T, async () => {
    const env = { COMFYD_HUB_STORE: pg.uri, COMFY_MAX_CONCURRENT: '2', COMFYD_HUB_SILENT_AFTER_SECONDS: '3' };
    const a = await startHub({ env });
    const b = await startHub({ env });
    const listeners = [];
    try {
      installTestingPack(a.dataDir);
      installTestingPack(b.dataDir);
      const hubIds = pg.query('SELECT string_agg(id, \' \' ORDER BY started_at) FROM hubs').split(' ');
      assert.equal(hubIds.length, 2, 'each hub beats under its own id');
      const [idA, idB] = hubIds;

      const adminA = await a.login('admin', a.adminPassword);
      const eve = await a.addUser(adminA, 'eve');
      const fay = await a.addUser(adminA, 'fay');
      // a session made on one hub is good on the other: one store
      const users = [
        { name: 'eve', onA: eve.client, onB: b.client({ cookie: eve.client.cookie }), openOn: 'A' },
        { name: 'fay', onA: fay.client, onB: b.client({ cookie: fay.client.cookie }), openOn: 'B' },
      ];
      for (const u of users) {
        const opener = u.openOn === 'A' ? u.onA : u.onB;
        u.project = (await opener.post('/api/projects', { name: 'shared' })).body;
        const opened = await opener.post(`/api/projects/${u.project.id}/open_comfy`);
        assert.equal(opened.status, 200, opened.text);
        u.inst = opened.body.instance;
        trackInstancePid(u.inst.pid);
        // the other hub uses that instance where it runs: no second one
        const other = u.openOn === 'A' ? u.onB : u.onA;
        const again = await other.post(`/api/projects/${u.project.id}/open_comfy`);
        assert.equal(again.status, 200, again.text);
        assert.equal(again.body.instance.port, u.inst.port, 'the other hub reuses the running instance');
        u.base = `/comfyui/${u.name}/${u.project.id}`;
        u.listener = await listenDirect(u.inst.port, `m-${u.name}`);
        listeners.push(u.listener);
      }
      assert.equal(pg.query('SELECT count(*) FROM instances WHERE pid > 0'), '2');
      assert.equal(pg.query(`SELECT hub FROM instances WHERE project_id = ${users[0].project.id}`), idA);
      assert.equal(pg.query(`SELECT hub FROM instances WHERE project_id = ${users[1].project.id}`), idB);

      // each user sends through both hubs, in turn
      const submitted = [];
      let seed = 31000;
      for (let i = 0; i < 6; i++)
        for (const u of users)
          for (const via of ['onA', 'onB']) {
            const r = await u[via].post(`${u.base}/prompt`, { prompt: sleeper(0.3, seed++), client_id: `m-${u.name}` });
            assert.equal(r.status, 200, `${u.name} via ${via}: ${r.text}`);
            submitted.push({ user: u.name, via, id: r.body.prompt_id });
          }
      assert.equal(pg.query('SELECT count(*) FROM prompts'), String(submitted.length));
      // one queue: the last prompt sent through A waits, and B knows its place in the queue too
      const adminB = b.client({ cookie: adminA.cookie });
      const lastViaA = submitted.filter((p) => p.via === 'onA').at(-1);
      const seenOnB = await waitFor(async () => {
        const t = (await adminB.get(`/api/queue/tasks/${lastViaA.id}`)).body;
        return t.state === 'queued' && t.position > 0 ? t : null;
      }, 5000, 'hub B to show the place of a prompt sent through hub A');
      const onA = (await adminA.get(`/api/queue/tasks/${lastViaA.id}`)).body;
      assert.ok(Math.abs(onA.position - seenOnB.position) <= 2, `A says ${onA.position}, B ${seenOnB.position}`);

      // some run, then hub A dies with prompts running and waiting
      await waitFor(() => users.some((u) => u.listener.events.some((e) => e.type === 'execution_success')), 30000, 'one done');
      const outOfA = () => Number(pg.query(`SELECT count(*) FROM prompts WHERE hub = '${idA}' AND state IN ('dispatching', 'running')`));
      await waitFor(() => outOfA() > 0, 30000, 'hub A to have a prompt out');
      await a.kill9();
      const queuedAtKill = Number(pg.query(`SELECT count(*) FROM prompts WHERE state = 'queued'`));
      assert.ok(queuedAtKill > 0, 'prompts were still waiting when hub A died');

      await waitFor(async () => {
        const states = await Promise.all(submitted.map(async (p) => (await adminB.get(`/api/queue/tasks/${p.id}`)).body.state));
        return states.every((st) => st === 'done');
      }, 120000, `all ${submitted.length} done through hub B`);
      await new Promise((r) => setTimeout(r, 300));

      const all = new Map();
      for (const u of users) for (const [id, r] of runs(u.listener.events)) all.set(id, r);
      for (const p of submitted) {
        const r = all.get(p.id);
        assert.ok(r?.start && r?.end, `${p.id} of ${p.user} (via ${p.via}) ran`);
        assert.equal(r.starts, 1, `${p.id} ran exactly once`);
      }
      const overlap = maxOverlap([...all.values()]);
      assert.ok(overlap <= 2, `at most 2 at once across both hubs (from the instances' events), saw ${overlap}`);
      // B took over A's instance (eve's) and whatever A had out
      assert.equal(pg.query(`SELECT hub FROM instances WHERE project_id = ${users[0].project.id}`), idB);
      assert.equal(pg.query(`SELECT count(*) FROM prompts WHERE hub = '${idA}' AND state IN ('dispatching', 'running')`), '0');
      assert.match(b.output(), new RegExp(`hub ${idA.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} has been silent`));
      assert.match(b.output(), /took over \d+ prompt\(s\) of hub/);
      // and B still serves eve's project, whose instance A had started
      const q = await users[0].onB.get(`${users[0].base}/queue`);
      assert.equal(q.status, 200, q.text);
    } finally {
      for (const l of listeners) l.ws.close();
      await a.stop().catch(() => {});
      await b.stop();
    }
  });
});
