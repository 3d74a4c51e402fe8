// comfyd hub, part 4: several hubs on one PostgreSQL. Both hubs take prompts for both users'
// projects; the store's dispatch keeps COMFY_MAX_CONCURRENT across them (checked from the
// instances' own events); a hub killed with kill -9 mid-queue goes silent, and the other takes
// over its prompts and its instance: every prompt completes exactly once.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, waitFor, trackInstancePid, sleeper, installTestingPack } from './lib/hub.mjs';
import { listenDirect, runs, maxOverlap } from './lib/queue-events.mjs';
import { startPostgres } from './lib/pg.mjs';
import { launchBrowser, screenshot, logIn } from './lib/browser.mjs';

const T = { timeout: 150000 };

/** A user of hub a with a project whose instance a runs, and its instance's events. */
async function projectOnA(a, name, projectName) {
  const adminA = await a.login('admin', a.adminPassword);
  const { client } = await a.addUser(adminA, name);
  const project = (await client.post('/api/projects', { name: projectName })).body;
  const inst = (await client.post(`/api/projects/${project.id}/open_comfy`)).body.instance;
  trackInstancePid(inst.pid);
  return { adminA, client, project, inst, base: `/comfyui/${name}/${project.id}` };
}

/** n slow prompts through a client; returns their ids once one runs. */
async function sendSleepers(client, base, listener, n, seconds, seed, clientId) {
  const ids = [];
  for (let i = 0; i < n; i++) {
    const r = await client.post(`${base}/prompt`, { prompt: sleeper(seconds, seed + i), client_id: clientId });
    assert.equal(r.status, 200, r.text);
    ids.push(r.body.prompt_id);
  }
  await waitFor(() => listener.events.some((e) => e.type === 'execution_start'), 20000, 'one running');
  return ids;
}

/** Waits until every prompt is done as admin (a client of some hub) sees it, then checks from
 *  the instance's events that each ran exactly once. */
async function allDoneOnce(admin, ids, listener, what) {
  await waitFor(async () => {
    const states = await Promise.all(ids.map(async (id) => (await admin.get(`/api/queue/tasks/${id}`)).body.state));
    return states.every((st) => st === 'done');
  }, 60000, what);
  await new Promise((r) => setTimeout(r, 300));
  const seen = runs(listener.events);
  for (const id of ids) assert.equal(seen.get(id)?.starts, 1, `${id} ran exactly once`);
  return seen;
}

/** Forgets the prompts and hubs a test before left in the database (if it made the tables). */
function emptyQueue(pg) {
  pg.query("DO $$ BEGIN IF to_regclass('prompts') IS NOT NULL THEN DELETE FROM prompts; DELETE FROM hubs; END IF; END $$; SELECT 1");
}

/** Two hubs on the test's database with these settings, after what a test before left is gone. */
async function twoHubs(pg, settings) {
  const env = { COMFYD_HUB_STORE: pg.uri, ...settings };
  emptyQueue(pg);
  const a = await startHub({ env });
  const b = await startHub({ env });
  return [a, b];
}

describe('several hubs on one PostgreSQL', () => {
  let pg;
  before(async () => { pg = await startPostgres(); });
  after(async () => { await pg?.stop(); });

  test('two hubs: at most N at once across both; kill -9 of one, the other finishes its work exactly once', T, async () => {
    const [a, b] = await twoHubs(pg, { COMFY_MAX_CONCURRENT: '2', COMFYD_HUB_SILENT_AFTER_SECONDS: '3' });
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

      // hub A sends two long prompts of eve's (B is frozen for a moment, so that A is the one to
      // dispatch them): when A dies they are out, one running and one in the instance's queue
      const submitted = [];
      const outOfA = () => Number(pg.query(`SELECT count(*) FROM prompts WHERE hub = '${idA}' AND state IN ('dispatching', 'running')`));
      b.child.kill('SIGSTOP');
      try {
        for (let i = 0; i < 2; i++) {
          const r = await users[0].onA.post(`${users[0].base}/prompt`, { prompt: sleeper(2, 30900 + i), client_id: 'm-eve' });
          assert.equal(r.status, 200, r.text);
          submitted.push({ user: 'eve', via: 'onA', id: r.body.prompt_id });
        }
        await waitFor(() => outOfA() === 2, 5000, 'hub A to dispatch both');
      } finally {
        b.child.kill('SIGCONT');
      }
      // then each user sends through both hubs, in turn
      let seed = 31000;
      for (let i = 0; i < 6; i++)
        for (const u of users)
          for (const via of ['onA', 'onB']) {
            const r = await u[via].post(`${u.base}/prompt`, { prompt: sleeper(0.3, seed++), client_id: `m-${u.name}` });
            assert.equal(r.status, 200, `${u.name} via ${via}: ${r.text}`);
            submitted.push({ user: u.name, via, id: r.body.prompt_id });
          }
      assert.equal(pg.query('SELECT count(*) FROM prompts'), String(submitted.length));
      // each hub knows the other, and says which hub supervises which instance
      const hubsOnB = (await b.client({ cookie: adminA.cookie }).get('/api/hubs')).body;
      assert.equal(hubsOnB.self, idB);
      assert.deepEqual(hubsOnB.hubs.map((h) => [h.id, h.alive, h.self]).sort(), [[idA, true, false], [idB, true, true]].sort());
      const listedOnA = (await adminA.get('/api/instances')).body;
      assert.deepEqual(listedOnA.map((i) => i.hub).sort(), [idA, idB].sort());
      assert.equal(listedOnA.find((i) => i.hub === idB).memory_bytes, null, "another hub's process is not measured here");

      // one queue: the last prompt sent through A waits, and B knows its place in the queue too
      const adminB = b.client({ cookie: adminA.cookie });
      const lastViaA = submitted.filter((p) => p.via === 'onA').at(-1);
      const seenOnB = await waitFor(async () => {
        const t = (await adminB.get(`/api/queue/tasks/${lastViaA.id}`)).body;
        return t.state === 'queued' && t.position > 0 ? t : null;
      }, 5000, 'hub B to show the place of a prompt sent through hub A');
      // each hub reads the other's changes within a quarter of a second: while the queue moves,
      // two looks a moment apart may differ by a prompt or two, but they meet
      let last = '';
      await waitFor(async () => {
        const [onA, onB] = await Promise.all([adminA.get(`/api/queue/tasks/${lastViaA.id}`), adminB.get(`/api/queue/tasks/${lastViaA.id}`)]);
        last = `A says ${onA.body.position}, B ${onB.body.position}`;
        return onA.body.state !== 'queued' || Math.abs(onA.body.position - onB.body.position) <= 1;
      }, 5000, 'both hubs to agree on the place of a prompt').catch((e) => { throw new Error(`${e.message}: ${last}`); });
      assert.ok(seenOnB.position > 0);

      // hub A dies with prompts out and others waiting
      assert.ok(outOfA() > 0, 'hub A has prompts out');
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
      assert.equal((await adminB.get('/api/hubs')).body.hubs.find((h) => h.id === idA).alive, false);

      // the admin's Instances page on B: the hubs, A silent, and the hub of each instance
      const browser = await launchBrowser();
      try {
        const page = await browser.newPage({ locale: 'en-US' });
        await logIn(page, b.base, { name: 'admin', password: b.adminPassword });
        await page.getByRole('navigation').getByRole('link', { name: 'Instances' }).click();
        const hubRow = (id) => page.locator(`#hubs tr[data-key="${id}"]`);
        await hubRow(idA).getByText('Silent').waitFor();
        await hubRow(idB).getByText('Heard from').waitFor();
        assert.match(await hubRow(idB).innerText(), /\(this hub\)/);
        const eveRow = page.locator('#instances tr', { hasText: 'eve' });
        assert.match(await eveRow.innerText(), new RegExp(idB.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
        await screenshot(page, 'hub-instances-several-hubs');
      } finally {
        await browser.close();
      }
    } finally {
      for (const l of listeners) l.ws.close();
      await a.stop().catch(() => {}); // killed: its exit is not a clean one
      await b.stop();
    }
  });

  test('a hub stopped with SIGTERM leaves its instance running and its prompts to the other hub', T, async () => {
    const [a, b] = await twoHubs(pg, { COMFY_MAX_CONCURRENT: '1', COMFYD_HUB_SILENT_AFTER_SECONDS: '30' });
    let listener = null;
    try {
      installTestingPack(a.dataDir);
      installTestingPack(b.dataDir);
      const { adminA, client, project, inst, base } = await projectOnA(a, 'hal', 'rolling');
      listener = await listenDirect(inst.port, 'rolling');
      const ids = await sendSleepers(client, base, listener, 4, 0.6, 33000, 'rolling');
      const t0 = Date.now();
      await a.stop(); // a clean exit: nothing for the sanitizers, exit code 0
      // the other hub takes over at once, not after the 30 s of silence (whichever hub had sent
      // the prompts out, B now watches them)
      await waitFor(() => b.output().includes(`taking over the instance of project ${project.id} `), 10000, 'hub B to take over');
      assert.ok(Date.now() - t0 < 10000);
      const adminB = b.client({ cookie: adminA.cookie });
      await allDoneOnce(adminB, ids, listener, 'all done through hub B');
      // the very same process, not a restart
      const now = (await adminB.get(`/api/projects/${project.id}`)).body.instance;
      assert.equal(now.pid, inst.pid);
      assert.equal(now.status, 'online');
    } finally {
      listener?.ws.close();
      await a.stop().catch(() => {});
      await b.stop();
    }
  });

  test('an instance used only through another hub is not stopped as idle by the hub that runs it', T, async () => {
    const [a, b] = await twoHubs(pg, { COMFYUI_IDLE_STOP_SECONDS: '4', COMFYD_HUB_SILENT_AFTER_SECONDS: '30' });
    try {
      const { client, project, inst } = await projectOnA(a, 'ivy', 'idle');
      const viaB = b.client({ cookie: client.cookie });
      // eight seconds of use through B only: twice the idle time at A
      for (const until = Date.now() + 8000; Date.now() < until;) {
        const r = await viaB.get(`/comfyui/ivy/${project.id}/system_stats`);
        assert.equal(r.status, 200, r.text);
        await new Promise((res) => setTimeout(res, 500));
      }
      const still = (await client.get(`/api/projects/${project.id}`)).body.instance;
      assert.equal(still.status, 'online', `in use through hub B: ${still.reason}`);
      assert.equal(still.pid, inst.pid);
      // then nobody uses it: A stops it as idle
      const stopped = await waitFor(async () => {
        const i = (await client.get(`/api/projects/${project.id}`)).body.instance;
        return i.status === 'stopped' ? i : null;
      }, 20000, 'the idle stop');
      assert.match(stopped.reason, /without use/);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  test('a hub that stalls past the silence is taken over, and lets go of what it had when it wakes', T, async () => {
    const [a, b] = await twoHubs(pg, { COMFY_MAX_CONCURRENT: '1', COMFYD_HUB_SILENT_AFTER_SECONDS: '3' });
    let listener = null;
    try {
      installTestingPack(a.dataDir);
      installTestingPack(b.dataDir);
      const { adminA, client, inst, base } = await projectOnA(a, 'gus', 'stall');
      listener = await listenDirect(inst.port, 'stall');
      const ids = await sendSleepers(client, base, listener, 5, 0.5, 32000, 'stall');
      const idA = /this is hub (\S+);/.exec(a.output())[1];
      a.child.kill('SIGSTOP');
      await waitFor(() => b.output().includes(`hub ${idA} has been silent`), 20000, 'hub B to take over');
      await waitFor(() => /took over 1 prompt\(s\) of hub/.test(b.output()), 5000, 'hub B to take the running prompt');
      a.child.kill('SIGCONT');
      await waitFor(() => /took over the instance of project \d+: letting it go/.test(a.output()), 20000, 'hub A to let go');
      const seen = await allDoneOnce(b.client({ cookie: adminA.cookie }), ids, listener, 'all done');
      assert.ok(maxOverlap([...seen.values()]) <= 1);
    } finally {
      listener?.ws.close();
      a.child.kill('SIGCONT'); // if a failure left it stopped
      await a.stop(); // awake again: a clean stop, nothing for the sanitizers
      await b.stop();
    }
  });
});
