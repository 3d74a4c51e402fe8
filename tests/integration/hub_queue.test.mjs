// comfyd hub, part 3: the admission queue in front of POST /prompt, with real `comfyd serve`
// instances. Concurrency is checked from the instances' own WebSocket events, not the hub's
// counters.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import { Client } from '@stable-canvas/comfyui-client';
import { HOST, sleep, COMFYD_BIN } from './lib/server.mjs';
import { startHub, waitFor, trackInstancePid, sleeper, installTestingPack } from './lib/hub.mjs';
import { listenDirect, runs, maxOverlap } from './lib/queue-events.mjs';

const T = { timeout: 120000 };

/** A chain of n nodes: slow enough to overlap, different per seed (the cache cannot skip it). */
function chain(n, seed) {
  const p = { 0: { class_type: 'PrimitiveInt', inputs: { value: seed } } };
  for (let i = 1; i < n; i++) p[i] = { class_type: 'IntAdd', inputs: { a: [String(i - 1), 0], b: 1 } };
  p.out = { class_type: 'PreviewAny', inputs: { source: [String(n - 1), 0] } };
  return p;
}

describe('the admission queue', () => {
  let hub, admin;
  const users = [];
  before(async () => {
    hub = await startHub({ env: { COMFY_MAX_CONCURRENT: '2', COMFY_MAX_WAITING_PER_USER: '8' } });
    installTestingPack(hub.dataDir);
    admin = await hub.login('admin', hub.adminPassword);
    for (const name of ['ann', 'ben', 'cat', 'dan']) {
      const { user, client } = await hub.addUser(admin, name);
      const project = (await client.post('/api/projects', { name: `${name}'s` })).body;
      const inst = (await client.post(`/api/projects/${project.id}/open_comfy`)).body.instance;
      trackInstancePid(inst.pid);
      users.push({ name, user, client, project, inst, base: `/comfyui/${name}/${project.id}` });
    }
  });
  after(async () => { await hub?.stop(); });

  test('at most COMFY_MAX_CONCURRENT run across instances, served round-robin, all complete', T, async () => {
    const listeners = await Promise.all(users.map((u) => listenDirect(u.inst.port, `q-${u.name}`)));
    const submitted = [];
    let seed = 1000;
    const submit = async (u, seconds = 0.3) => {
      const r = await u.client.post(`${u.base}/prompt`, { prompt: sleeper(seconds, seed++), client_id: `q-${u.name}` });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body.node_errors, {});
      submitted.push({ user: u.name, id: r.body.prompt_id });
      return r.body.prompt_id;
    };
    // dan's two long prompts take both slots while the others line up: ann with five first,
    // then ben with two and cat with one. ann must not hold everyone up.
    const [ann, ben, cat, dan] = users;
    await submit(dan, 3);
    await submit(dan, 3);
    for (let i = 0; i < 5; i++) await submit(ann);
    const benFirst = await submit(ben);
    await submit(cat);
    await submit(ben);
    // while dan's run: the waiting ones stand in turn order, ben's and cat's first before ann's third
    const position = async (id) => (await admin.get(`/api/queue/tasks/${id}`)).body.position;
    const annIds = submitted.filter((s) => s.user === 'ann').map((s) => s.id);
    const catFirst = submitted.find((s) => s.user === 'cat').id;
    const [pb, pc, pa3] = [await position(benFirst), await position(catFirst), await position(annIds[2])];
    assert.ok(pb > 0 && pc > 0 && pa3 > 0, `all waiting: ${pb} ${pc} ${pa3}`);
    assert.ok(pb < pa3 && pc < pa3, `positions ben ${pb}, cat ${pc}, ann's third ${pa3}`);
    // a waiting prompt knows where it stands
    const task = await users[1].client.get(`/api/queue/tasks/${benFirst}`);
    assert.equal(task.status, 200);
    assert.ok(['queued', 'dispatching', 'running', 'done'].includes(task.body.state), task.text);
    assert.equal(task.body.prompt_id, benFirst);
    const status = await admin.get('/api/queue/status');
    assert.equal(status.body.max_concurrent, 2);
    assert.ok(status.body.processing_count <= 2);
    assert.ok(status.body.users, 'admins see per-user counts');
    assert.equal((await users[0].client.get('/api/queue/status')).body.users, undefined);
    // all complete
    await waitFor(async () => {
      const states = await Promise.all(submitted.map(async (s) => (await admin.get(`/api/queue/tasks/${s.id}`)).body.state));
      return states.every((s) => s === 'done');
    }, 90000, 'every prompt done');
    await sleep(200);
    const all = new Map();
    listeners.forEach((l, i) => { for (const [id, r] of runs(l.events)) all.set(id, { ...r, user: users[i].name }); l.ws.close(); });
    for (const s of submitted) {
      const r = all.get(s.id);
      assert.ok(r && r.start && r.end, `prompt ${s.id} of ${s.user} ran`);
      assert.equal(r.starts, 1, `prompt ${s.id} ran once`);
    }
    assert.ok(maxOverlap([...all.values()]) <= 2, `at most 2 at once, saw ${maxOverlap([...all.values()])}`);
    // the figures an operator scrapes
    const metrics = await admin.get('/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /^comfyd_queue_max_concurrent 2$/m);
    assert.match(metrics.text, /^comfyd_queue_running \d+$/m);
    const waits = Number(/^comfyd_dispatch_wait_seconds_count (\d+)$/m.exec(metrics.text)?.[1]);
    assert.ok(waits >= submitted.length, `dispatch waits counted: ${waits}`);
    assert.ok(Number(/^comfyd_prompt_duration_seconds_count (\d+)$/m.exec(metrics.text)?.[1]) >= submitted.length);
    assert.match(metrics.text, /^comfyd_instances\{status="online"\} 4$/m);
    assert.ok(Number(/^comfyd_proxy_responses_total\{code="2xx"\} (\d+)$/m.exec(metrics.text)?.[1]) > 0);
    assert.equal((await users[0].client.get('/metrics')).status, 403);
    // fairness: one prompt per user in turn, so ben's and cat's first ones started before ann's
    // third, though ann queued all five before them
    const startOf = (id) => all.get(id).start;
    const annStarts = submitted.filter((s) => s.user === 'ann').map((s) => startOf(s.id));
    for (const name of ['ben', 'cat']) {
      const first = submitted.find((s) => s.user === name);
      assert.ok(startOf(first.id) < annStarts[2], `${name}'s first prompt started before ann's third`);
    }
  });

  test('positions on the proxied WebSocket, cancel of a held prompt, the merged queue', T, async () => {
    const [ann, ben] = users;
    const ws = new WebSocket(`ws://${HOST}:${hub.port}${ann.base}/ws?clientId=pos`, { headers: { cookie: ann.client.cookie } });
    const messages = [];
    ws.on('message', (d, bin) => { if (!bin) messages.push(JSON.parse(d.toString())); });
    await new Promise((r) => ws.once('open', r));
    // ben fills both slots, ann's prompts wait
    let seed = 5000;
    for (let i = 0; i < 2; i++) await ben.client.post(`${ben.base}/prompt`, { prompt: sleeper(3, seed++) });
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await ann.client.post(`${ann.base}/prompt`, { prompt: sleeper(0.2, seed++), client_id: 'pos' })).body.prompt_id);
    const pos = await waitFor(() => messages.find((m) => m.type === 'comfyd.queue' && m.data.prompt_id === ids[2]), 10000, 'a position');
    // the stock frontend's number: status messages count what the hub holds too
    await waitFor(() => messages.some((m) => m.type === 'status' && m.data.status.exec_info.queue_remaining >= 3), 10000,
      'a status counting the held prompts');
    assert.ok(pos.data.position >= 1);
    assert.equal(pos.data.ahead, pos.data.position - 1);
    assert.equal(pos.data.max_concurrent, 2);
    // GET …/queue lists ann's held prompts after what the instance holds
    const q = await ann.client.get(`${ann.base}/queue`);
    assert.equal(q.status, 200);
    const pendingIds = q.body.queue_pending.map((item) => item[1]);
    assert.ok(pendingIds.includes(ids[2]), 'the held prompt is in queue_pending');
    // ben cannot cancel ann's prompt; ann can
    const refused = await ben.client.request('DELETE', `/api/queue/tasks/${ids[2]}`);
    assert.equal(refused.status, 403);
    const del = await ann.client.post(`${ann.base}/queue`, { delete: [ids[2]] });
    assert.equal(del.status, 200);
    assert.equal((await ann.client.get(`/api/queue/tasks/${ids[2]}`)).body.state, 'cancelled');
    await waitFor(async () => (await ann.client.get(`/api/queue/tasks/${ids[1]}`)).body.state === 'done', 60000, 'the others run');
    // a prompt that leaves the queue says so (position 0, its state), so a page can stop showing it
    const left = messages.find((m) => m.type === 'comfyd.queue' && m.data.prompt_id === ids[1] && m.data.position === 0);
    assert.ok(left, 'a position-0 message when it was sent');
    assert.ok(['dispatching', 'running'].includes(left.data.state), left.data.state);
    const gone = messages.find((m) => m.type === 'comfyd.queue' && m.data.prompt_id === ids[2] && m.data.position === 0);
    assert.equal(gone?.data.state, 'cancelled');
    assert.ok(messages.filter((m) => m.type === 'comfyd.queue' && m.data.position > 0).every((m) => m.data.state === 'queued'));
    // the instance's page through the proxy carries the queue badge's script, once
    const page = await ann.client.get(`${ann.base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type'), /text\/html/);
    assert.equal(page.text.split('/static/queue-badge.js').length, 2, 'one script tag');
    assert.doesNotMatch((await ann.client.get(`${ann.base}/system_stats`)).text, /queue-badge/);
    const h = await ann.client.get(`${ann.base}/history/${ids[2]}`);
    assert.deepEqual(h.body, {}, 'the cancelled prompt never ran');
    ws.close();
  });

  test('bad prompts: ComfyUI\'s 400 before queueing, 429 past the waiting limit', T, async () => {
    const [ann] = users;
    const bad = await ann.client.post(`${ann.base}/prompt`, { prompt: { 1: { class_type: 'NoSuchNode', inputs: {} } } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.type, 'invalid_prompt');
    assert.equal((await ann.client.request('POST', `${ann.base}/prompt`, '{"prompt": ')).status, 400);
    assert.equal((await ann.client.post(`${ann.base}/prompt`, { nothing: 1 })).body.error.type, 'no_prompt');
    // a prompt_id that could end a request line to the instance, or leave its path
    for (const id of ['x HTTP/1.1\r\nHost: y', '../queue', 'a'.repeat(129)]) {
      const r = await ann.client.post(`${ann.base}/prompt`, { prompt: chain(2, 1), prompt_id: id });
      assert.equal(r.status, 400, id);
      assert.match(r.body.error.message, /prompt_id/);
    }
    // fill the slots with ben's, then ann's waiting ones up to her limit of 8
    let seed = 9000;
    for (let i = 0; i < 2; i++) await users[1].client.post(`${users[1].base}/prompt`, { prompt: sleeper(2, seed++) });
    const codes = [];
    for (let i = 0; i < 10; i++) codes.push((await ann.client.post(`${ann.base}/prompt`, { prompt: chain(50, seed++) })).status);
    assert.ok(codes.includes(429), `statuses ${codes}`);
    const tooMany = await ann.client.post(`${ann.base}/prompt`, { prompt: chain(50, seed++) });
    assert.equal(tooMany.status, 429);
    assert.equal(tooMany.body.error.type, 'too_many_prompts');
    await ann.client.post(`${ann.base}/queue`, { clear: true });
  });

  test('@stable-canvas/comfyui-client sees its prompt complete through the queue', T, async () => {
    const [, , cat] = users;
    const token = (await cat.client.post('/api/tokens', {})).body.token;
    const auth = { authorization: `Bearer ${token}` };
    class HubWebSocket extends WebSocket {
      constructor(url) {
        const u = new URL(url);
        u.pathname = `${cat.base}${u.pathname}`;
        super(u.toString(), { headers: auth });
      }
    }
    const client = new Client({
      api_host: `${HOST}:${hub.port}`, api_base: cat.base, clientId: 'sc-queued', WebSocket: HubWebSocket,
      fetch: (url, init = {}) => fetch(url, { ...init, headers: { ...(init.headers || {}), ...auth } }),
    });
    client.connect();
    try {
      await waitFor(() => client.socket?.readyState === WebSocket.OPEN, 5000, 'the client WebSocket');
      const prompt = chain(20, 424242);
      const { prompt_id } = await client.enqueue(prompt, {});
      assert.ok(prompt_id);
      const outputs = await waitFor(() => client.getPromptOutputs(prompt_id).catch(() => null), 30000, 'history');
      assert.deepEqual(outputs.out, { text: [String(424242 + 19)] });
    } finally {
      client.close();
    }
  });

  test('clients that go away: before the answer nothing or all of it, after it the prompt still runs', T, async () => {
    const [, , cat] = users;
    // a client that hangs up right after sending: its prompt is either refused as a whole (never
    // stored) or stored and run; never half of it
    const ids = [];
    for (let i = 0; i < 5; i++) {
      const id = `gone-${i}-${Date.now()}`;
      ids.push(id);
      const body = JSON.stringify({ prompt: chain(3, 7000 + i), prompt_id: id });
      await new Promise((resolve) => {
        const sock = net.connect(hub.port, HOST, () => {
          sock.write(`POST ${cat.base}/prompt HTTP/1.1\r\nHost: x\r\nCookie: ${cat.client.cookie}\r\n` +
            `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
          setTimeout(() => { sock.destroy(); resolve(); }, i); // 0-4 ms: before or during the answer
        });
        sock.on('error', resolve);
      });
    }
    for (const id of ids) {
      const t = await cat.client.get(`/api/queue/tasks/${id}`);
      if (t.status === 404) continue; // never accepted: nothing was promised
      assert.equal(t.status, 200, t.text);
      await waitFor(async () => (await cat.client.get(`/api/queue/tasks/${id}`)).body.state === 'done', 30000, `${id} done`);
      const h = await cat.client.get(`${cat.base}/history/${id}`);
      assert.equal(h.body[id]?.status?.status_str, 'success', `${id} is in history`);
    }
    // a page that closes its socket while its prompt waits: the prompt runs all the same
    const ws = new WebSocket(`ws://${HOST}:${hub.port}${cat.base}/ws?clientId=gone`, { headers: { cookie: cat.client.cookie } });
    await new Promise((r) => ws.once('open', r));
    const r = await cat.client.post(`${cat.base}/prompt`, { prompt: chain(3, 7777), client_id: 'gone' });
    assert.equal(r.status, 200);
    ws.terminate();
    await waitFor(async () => (await cat.client.get(`/api/queue/tasks/${r.body.prompt_id}`)).body.state === 'done', 30000, 'done');
    assert.equal((await cat.client.get(`${cat.base}/history/${r.body.prompt_id}`)).body[r.body.prompt_id].status.status_str, 'success');
    assert.equal((await cat.client.get('/api/queue/status')).status, 200, 'the hub is healthy');
  });

  test('a killed instance fails its running prompt with a reason and frees the slot', T, async () => {
    const [, , , dan] = users;
    const r = await dan.client.post(`${dan.base}/prompt`, { prompt: sleeper(60, 31337) });
    const id = r.body.prompt_id;
    await waitFor(async () => (await dan.client.get(`/api/queue/tasks/${id}`)).body.state === 'running', 20000, 'running');
    process.kill(dan.inst.pid, 'SIGKILL');
    const t = await waitFor(async () => {
      const b = (await dan.client.get(`/api/queue/tasks/${id}`)).body;
      return b.state === 'failed' ? b : null;
    }, 10000, 'failed');
    assert.match(t.reason, /instance stopped/);
    await waitFor(async () => (await admin.get('/api/queue/status')).body.processing_count === 0, 20000, 'the slot freed');
  });
});

describe('the admission queue at the issue\'s scale', () => {
  test('40 prompts from 4 users, COMFY_MAX_CONCURRENT=2: never more than 2 at once, in turns, all once', T, async () => {
    const hub = await startHub({ env: { COMFY_MAX_CONCURRENT: '2' } });
    try {
      installTestingPack(hub.dataDir);
      const admin = await hub.login('admin', hub.adminPassword);
      const users = [];
      for (const name of ['eve', 'fay', 'gus', 'hal']) {
        const { client } = await hub.addUser(admin, name);
        const project = (await client.post('/api/projects', { name: 'p' })).body;
        const inst = (await client.post(`/api/projects/${project.id}/open_comfy`)).body.instance;
        trackInstancePid(inst.pid);
        users.push({ name, client, inst, base: `/comfyui/${name}/${project.id}`, listener: await listenDirect(inst.port, `s-${name}`) });
      }
      // each user's ten in a row, one user after the other: the queue must still serve them in turns
      const submitted = [];
      let seed = 20000;
      for (const u of users)
        for (let i = 0; i < 10; i++) {
          const r = await u.client.post(`${u.base}/prompt`, { prompt: sleeper(0.15, seed++), client_id: `s-${u.name}` });
          assert.equal(r.status, 200, r.text);
          submitted.push({ user: u.name, id: r.body.prompt_id, at: Date.now() });
        }
      const lastSubmitted = submitted[submitted.length - 1].at;
      await waitFor(async () => {
        const states = await Promise.all(submitted.map(async (p) => (await admin.get(`/api/queue/tasks/${p.id}`)).body.state));
        return states.every((st) => st === 'done');
      }, 90000, 'all 40 done');
      await sleep(200);
      const all = new Map();
      for (const u of users) {
        for (const [id, r] of runs(u.listener.events)) all.set(id, { ...r, user: u.name });
        u.listener.ws.close();
      }
      for (const p of submitted) {
        const r = all.get(p.id);
        assert.ok(r?.start && r?.end, `${p.id} of ${p.user} ran`);
        assert.equal(r.starts, 1, `${p.id} ran once`);
      }
      assert.ok(maxOverlap([...all.values()]) <= 2, `at most 2 at once (from the instances' events), saw ${maxOverlap([...all.values()])}`);
      // in turns: once all were queued, no user starts twice in a row while another still waits
      const order = [...all.values()].filter((r) => r.start > lastSubmitted).sort((a, b) => a.start - b.start);
      const left = new Map(users.map((u) => [u.name, order.filter((r) => r.user === u.name).length]));
      for (let i = 0; i + 1 < order.length; i++) {
        left.set(order[i].user, left.get(order[i].user) - 1);
        const othersWaiting = [...left].some(([name, n]) => name !== order[i].user && n > 0);
        if (othersWaiting) assert.notEqual(order[i + 1].user, order[i].user, `start ${i + 1}: ${order[i].user} twice in a row while others wait`);
      }
      assert.ok(order.length >= 20, `most started after the last submission: ${order.length}`);
    } finally {
      await hub.stop();
    }
  });
});

describe('the admission queue across a hub crash', () => {
  test('kill -9 of the hub mid-queue: every prompt completes exactly once', T, async () => {
    const first = await startHub({ env: { COMFY_MAX_CONCURRENT: '1' } });
    installTestingPack(first.dataDir);
    const admin = await first.login('admin', first.adminPassword);
    const { client } = await first.addUser(admin, 'eve');
    const project = (await client.post('/api/projects', { name: 'durable' })).body;
    const inst = (await client.post(`/api/projects/${project.id}/open_comfy`)).body.instance;
    trackInstancePid(inst.pid);
    const listener = await listenDirect(inst.port, 'crash');
    const base = `/comfyui/eve/${project.id}`;
    const ids = [];
    for (let i = 0; i < 6; i++) ids.push((await client.post(`${base}/prompt`, { prompt: sleeper(0.5, 7000 + i), client_id: 'crash' })).body.prompt_id);
    await waitFor(() => listener.events.some((e) => e.type === 'execution_success'), 30000, 'one done');
    await first.kill9();
    const second = await startHub({ dataDir: first.dataDir, portRange: first.portRange, env: { COMFY_MAX_CONCURRENT: '1' } });
    try {
      const again = second.client({ cookie: client.cookie });
      await waitFor(async () => {
        const states = await Promise.all(ids.map(async (id) => (await again.get(`/api/queue/tasks/${id}`)).body.state));
        return states.every((s) => s === 'done');
      }, 90000, 'all done after the restart');
      await sleep(300);
      const r = runs(listener.events);
      for (const id of ids) assert.equal(r.get(id)?.starts, 1, `prompt ${id} ran exactly once`);
      assert.ok(maxOverlap([...r.values()].filter((x) => x.end)) <= 1);
      listener.ws.close();
      await second.stop();
    } finally {
      if (second.child.exitCode === null) second.child.kill('SIGKILL');
    }
  });
});

describe('the admission queue: priorities and limits', () => {
  test("teachers' prompts go first; a prompt past COMFY_PROMPT_TIMEOUT_SECONDS is interrupted", T, async () => {
    const hub = await startHub({ env: { COMFY_MAX_CONCURRENT: '1', COMFY_PROMPT_TIMEOUT_SECONDS: '2' } });
    try {
      installTestingPack(hub.dataDir);
      const admin = await hub.login('admin', hub.adminPassword);
      const { client: sam } = await hub.addUser(admin, 'sam');
      const { client: tia } = await hub.addUser(admin, 'tia', 'teacher');
      const project = (await sam.post('/api/projects', { name: 'class' })).body;
      trackInstancePid((await sam.post(`/api/projects/${project.id}/open_comfy`)).body.instance.pid);
      const base = `/comfyui/sam/${project.id}`;
      const long = (await sam.post(`${base}/prompt`, { prompt: sleeper(30, 1) })).body.prompt_id;
      const s1 = (await sam.post(`${base}/prompt`, { prompt: sleeper(0.1, 2) })).body.prompt_id;
      const s2 = (await sam.post(`${base}/prompt`, { prompt: sleeper(0.1, 3) })).body.prompt_id;
      // a student's front: true is ignored; the teacher's prompt goes before sam's waiting ones
      const s3 = (await sam.post(`${base}/prompt`, { prompt: sleeper(0.1, 4), front: true })).body.prompt_id;
      const t1 = (await tia.post(`${base}/prompt`, { prompt: sleeper(0.1, 5) })).body.prompt_id;
      const pos = async (id) => (await admin.get(`/api/queue/tasks/${id}`)).body.position;
      assert.equal(await pos(t1), 1, "the teacher's prompt is next");
      assert.ok((await pos(s1)) < (await pos(s3)), "the student's front: true does not jump the queue");
      // the listing: admins see everyone's, with names and the same positions; sam only his own
      const all = (await admin.get('/api/queue/tasks')).body;
      assert.equal(all.total, 5);
      const byId = new Map(all.tasks.map((t) => [t.prompt_id, t]));
      assert.equal(byId.get(t1).user, 'tia');
      assert.equal(byId.get(t1).project, 'class');
      assert.equal(byId.get(t1).position, 1);
      assert.equal(byId.get(long).position, 0, 'the running one has no position');
      assert.ok(['dispatching', 'running'].includes(byId.get(long).state));
      for (const id of [s1, s2, s3]) assert.equal(byId.get(id).position, await pos(id));
      const own = (await sam.get('/api/queue/tasks')).body;
      assert.deepEqual(own.tasks.map((t) => t.user).filter((u) => u !== 'sam'), [], 'a student sees only his own');
      assert.equal(own.total, 4);
      assert.equal((await admin.get('/api/queue/tasks?mine=1')).body.total, 0);
      assert.equal((await admin.get('/api/queue/tasks?limit=2')).body.tasks.length, 2);
      assert.equal((await admin.get('/api/queue/tasks?limit=0')).status, 400);
      // the chart's series: a sample a tick after start, for teachers and admins only
      assert.equal((await sam.get('/api/queue/series')).status, 403);
      const series = (await tia.get('/api/queue/series')).body;
      assert.equal(series.interval_seconds, 10);
      assert.ok(series.points.length >= 1, JSON.stringify(series));
      assert.ok(series.points.every((p) => p.t > 0 && p.waiting >= 0 && p.running >= 0));
      // the long one is interrupted after 2 s, and the rest run
      const failed = await waitFor(async () => {
        const b = (await admin.get(`/api/queue/tasks/${long}`)).body;
        return b.state === 'failed' ? b : null;
      }, 20000, 'the interrupt');
      assert.match(failed.reason, /COMFY_PROMPT_TIMEOUT_SECONDS/);
      await waitFor(async () => {
        const states = await Promise.all([s1, s2, s3, t1].map(async (id) => (await admin.get(`/api/queue/tasks/${id}`)).body.state));
        return states.every((s) => s === 'done');
      }, 20000, 'the others done');
    } finally {
      await hub.stop();
    }
  });
});

/** A hub whose instances are lib/echo-instance.mjs (with flags), and sam's project opened on it. */
async function echoInstanceHub(maxConcurrent, flags) {
  const ECHO = path.join(path.dirname(new URL(import.meta.url).pathname), 'lib', 'echo-instance.mjs');
  const hub = await startHub({
    env: {
      COMFY_MAX_CONCURRENT: maxConcurrent,
      COMFYUI_COMMAND: `${process.execPath} ${ECHO} ${flags.join(' ')} --listen {listen} --port {port}`,
    },
  });
  try {
    const admin = await hub.login('admin', hub.adminPassword);
    const { client: sam } = await hub.addUser(admin, 'sam');
    const project = (await sam.post('/api/projects', { name: 'echo' })).body;
    trackInstancePid((await sam.post(`/api/projects/${project.id}/open_comfy`)).body.instance.pid);
    return { hub, admin, sam, base: `/comfyui/sam/${project.id}` };
  } catch (e) {
    await hub.stop();
    throw e;
  }
}

describe('the end of a prompt, when the instance says so before its history has it', () => {
  // The instance's execution_success comes before /history/{id} has the prompt, and its status
  // message comes while the hub's look-up is under way (lib/echo-instance.mjs --runs); its
  // /queue never lets go of a prompt, so only that status message can tell the hub.
  test('the status message heard during the look-up makes the hub ask again: each prompt ends, the next goes out', T, async () => {
    const { hub, sam, base } = await echoInstanceHub('1', ['--runs']);
    try {
      const ids = [];
      for (let i = 0; i < 3; i++) {
        const r = await sam.post(`${base}/prompt`, { prompt: { 1: { class_type: 'Anything', inputs: { i } } }, client_id: 'racy' });
        assert.equal(r.status, 200, r.text);
        ids.push(r.body.prompt_id);
      }
      await waitFor(async () => {
        const states = await Promise.all(ids.map(async (id) => (await sam.get(`/api/queue/tasks/${id}`)).body.state));
        return states.every((s) => s === 'done');
      }, 20000, 'all three done');
    } finally {
      await hub.stop();
    }
  });
});

describe('the admission queue in front of an instance that cannot validate first', () => {
  test('a prompt it refuses at dispatch reaches the page as execution_error', T, async () => {
    const { hub, admin, sam, base } = await echoInstanceHub('2', []);
    try {
      const ws = new WebSocket(`ws://${HOST}:${hub.port}${base}/ws?clientId=py`, { headers: { cookie: sam.cookie } });
      const messages = [];
      ws.on('message', (d, bin) => { if (!bin) messages.push(JSON.parse(d.toString())); });
      await new Promise((r) => ws.once('open', r));
      // not validated first (the instance is not comfyd), so accepted, then refused when sent
      const r = await sam.post(`${base}/prompt`, { prompt: { 7: { class_type: 'NoSuchNode', inputs: {} } }, client_id: 'py' });
      assert.equal(r.status, 200, r.text);
      const id = r.body.prompt_id;
      const err = await waitFor(() => messages.find((m) => m.type === 'execution_error' && m.data.prompt_id === id),
        10000, 'execution_error');
      assert.equal(err.data.node_id, '7');
      assert.equal(err.data.node_type, 'NoSuchNode');
      assert.match(err.data.exception_message, /refused/);
      const task = (await sam.get(`/api/queue/tasks/${id}`)).body;
      assert.equal(task.state, 'failed');
      assert.match(task.reason, /does not exist/);
      // and in history, as ComfyUI records a prompt that failed (the instance never had it)
      const h = await sam.get(`${base}/history/${id}`);
      assert.equal(h.status, 200);
      const entry = h.body[id];
      assert.ok(entry, h.text);
      assert.equal(entry.status.status_str, 'error');
      assert.equal(entry.status.completed, false);
      assert.deepEqual(entry.status.messages.map((m) => m[0]), ['execution_start', 'execution_error']);
      assert.equal(entry.prompt[1], id);
      assert.equal(entry.prompt[2]['7'].class_type, 'NoSuchNode');
      // only for its owner; another prompt id is the instance's answer as it is
      const { client: other } = await hub.addUser(admin, 'oli');
      assert.equal((await other.get(`${base}/history/${id}`)).status, 403);
      assert.deepEqual((await sam.get(`${base}/history/no-such-prompt`)).body, {});
      ws.close();
    } finally {
      await hub.stop();
    }
  });
});
