// The workflow engine through the real server: POST /prompt and its errors, the WebSocket event
// sequence, queue, history (and its survival across a restart), interrupt, /free, priorities,
// and the real ComfyUI clients from npm: @stable-canvas/comfyui-client and cfli from
// @saintno/comfyui-sdk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { Client } from '@stable-canvas/comfyui-client';
import { startServer, REPO_ROOT, sleep } from './lib/server.mjs';

const T = { timeout: 120000 };

function api(srv) {
  const base = `http://127.0.0.1:${srv.port}`;
  return {
    base,
    async post(route, body) {
      const r = await fetch(base + route, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
      const text = await r.text();
      let json = null;
      try { json = text ? JSON.parse(text) : null; } catch {}
      return { status: r.status, json, text };
    },
    async get(route) {
      const r = await fetch(base + route);
      return { status: r.status, json: await r.json() };
    },
  };
}

// A WebSocket client that records every message and can wait for one.
async function listen(srv, clientId) {
  const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/ws?clientId=${clientId}`);
  const messages = [];
  const raws = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    raws.push(data.toString());
    const m = JSON.parse(data.toString());
    messages.push(m);
    for (const w of [...waiters]) if (w.pred(m)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(m); }
  });
  await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
  return {
    ws, messages, raws,
    wait(pred, ms = 60000) {
      const found = messages.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve };
        waiters.push(w);
        setTimeout(() => reject(new Error('timed out waiting for a WebSocket message')), ms);
      });
    },
    done(promptId) { return this.wait((m) => m.type === 'executing' && m.data.node === null && m.data.prompt_id === promptId); },
    close() { ws.close(); },
  };
}

const simple = {
  '1': { class_type: 'PrimitiveInt', inputs: { value: 5 } },
  '2': { class_type: 'PrimitiveString', inputs: { value: 'hello' } },
  '3': { class_type: 'StringLength', inputs: { string: ['2', 0] } },
  '4': { class_type: 'PreviewAny', inputs: { source: ['3', 0] } },
  '5': { class_type: 'PreviewAny', inputs: { source: ['1', 0] } },
  '9': { class_type: 'PrimitiveInt', inputs: { value: 9 } },
};

test('a prompt runs: reply, event order, history, only what outputs need', T, async () => {
  const srv = await startServer();
  try {
    const c = api(srv);
    const ws = await listen(srv, 'c1');
    const r = await c.post('/prompt', { prompt: simple, client_id: 'c1' });
    assert.equal(r.status, 200);
    assert.match(r.json.prompt_id, /^[0-9a-f-]{36}$/);
    assert.equal(r.json.number, 0);
    assert.deepEqual(r.json.node_errors, {});
    await ws.done(r.json.prompt_id);
    const mine = ws.messages.filter((m) => m.data && m.data.prompt_id === r.json.prompt_id).map((m) => m.type);
    assert.equal(mine[0], 'execution_start');
    assert.equal(mine[1], 'execution_cached');
    assert.ok(mine.indexOf('execution_success') > 1);
    assert.equal(mine.at(-1), 'executing'); // node null, last
    const ran = ws.messages.filter((m) => m.type === 'executing' && m.data.node).map((m) => m.data.node);
    assert.ok(!ran.includes('9'), 'node 9 feeds no output and must not run');
    assert.deepEqual([...ran].sort(), ['1', '2', '3', '4', '5']);
    // per-node events are written by hand for speed: byte for byte what json.dumps gives
    const pid = r.json.prompt_id;
    assert.ok(ws.raws.includes(`{"type": "executing", "data": {"node": "3", "display_node": "3", "prompt_id": "${pid}"}}`));
    // a node's "finished" travels with the next node's "running" (ComfyUI lists every
    // non-pending node in each progress_state, so a message with both is one it sends too)
    const ps3 = `{"type": "progress_state", "data": {"prompt_id": "${pid}", "nodes": {"3": {"value": 1.0, "max": 1.0, "state": "finished", "node_id": "3", "prompt_id": "${pid}", "display_node_id": "3", "parent_node_id": null, "real_node_id": "3"}, "`;
    const folded = ws.raws.find((t) => t.startsWith(ps3));
    assert.ok(folded, 'node 3 finished, with the next node running');
    const next = Object.entries(JSON.parse(folded).data.nodes);
    assert.equal(next.length, 2);
    assert.equal(next[1][1].state, 'running');
    assert.equal(next[1][1].value, 0);
    assert.ok(ran.indexOf('2') < ran.indexOf('3') && ran.indexOf('3') < ran.indexOf('4'));
    const executed = ws.messages.filter((m) => m.type === 'executed').map((m) => [m.data.node, m.data.output]);
    assert.deepEqual(Object.fromEntries(executed), { '4': { text: ['5'] }, '5': { text: ['5'] } });

    const h = await c.get(`/history/${r.json.prompt_id}`);
    const entry = h.json[r.json.prompt_id];
    assert.equal(entry.status.status_str, 'success');
    assert.equal(entry.status.completed, true);
    assert.deepEqual(entry.outputs, { '4': { text: ['5'] }, '5': { text: ['5'] } });
    assert.equal(entry.prompt[1], r.json.prompt_id);
    // ComfyUI 0.8 stamps extra_data with create_time (ms), after client_id
    assert.deepEqual(Object.keys(entry.prompt[3]), ['client_id', 'create_time']);
    assert.equal(entry.prompt[3].client_id, 'c1');
    assert.ok(Number.isInteger(entry.prompt[3].create_time) && Math.abs(entry.prompt[3].create_time - Date.now()) < 60000);
    assert.deepEqual([...entry.prompt[4]].sort(), ['4', '5']);
    assert.deepEqual(entry.status.messages.map((m) => m[0]), ['execution_start', 'execution_cached', 'execution_success']);
    assert.deepEqual(entry.meta['4'], { node_id: '4', display_node: '4', parent_node: null, real_node_id: '4' });

    // the same prompt again: all cached, no node runs
    ws.messages.length = 0;
    const again = await c.post('/prompt', { prompt: simple, client_id: 'c1' });
    assert.equal(again.json.number, 1);
    await ws.done(again.json.prompt_id);
    const cached = ws.messages.find((m) => m.type === 'execution_cached');
    assert.deepEqual([...cached.data.nodes].sort(), ['1', '2', '3', '4', '5']);
    assert.equal(ws.messages.filter((m) => m.type === 'executing' && m.data.node).length, 0);
    ws.close();
  } finally {
    await srv.stop();
  }
});

test('validation errors have ComfyUI shapes and the server stays healthy', T, async () => {
  const srv = await startServer();
  try {
    const c = api(srv);
    let r = await c.post('/prompt', {});
    assert.equal(r.status, 400);
    assert.deepEqual(r.json, { error: { type: 'no_prompt', message: 'No prompt provided', details: 'No prompt provided', extra_info: {} }, node_errors: {} });

    r = await c.post('/prompt', { prompt: { '1': { class_type: 'NoSuchNode', inputs: {} } } });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.type, 'invalid_prompt');
    assert.equal(r.json.error.message, 'Cannot execute because node NoSuchNode does not exist.');
    assert.equal(r.json.error.details, "Node ID '#1'");

    r = await c.post('/prompt', { prompt: { '1': { class_type: 'PrimitiveInt', inputs: {} } } });
    assert.equal(r.json.error.type, 'prompt_no_outputs');

    r = await c.post('/prompt', { prompt: { '1': { class_type: 'PreviewAny', inputs: {} } } });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.type, 'prompt_outputs_failed_validation');
    assert.equal(r.json.node_errors['1'].errors[0].type, 'required_input_missing');
    assert.deepEqual(r.json.node_errors['1'].dependent_outputs, ['1']);

    r = await c.post('/prompt', { prompt: { '1': { class_type: 'PrimitiveInt', inputs: { value: 'x' } }, '2': { class_type: 'PreviewAny', inputs: { source: ['1', 0] } } } });
    assert.equal(r.json.node_errors['1'].errors[0].type, 'invalid_input_type');

    r = await c.post('/prompt', { prompt: { '1': { class_type: 'StringLength', inputs: { string: ['2', 0] } }, '2': { class_type: 'StringLength', inputs: { string: ['1', 0] } }, '3': { class_type: 'PreviewAny', inputs: { source: ['1', 0] } } } });
    assert.equal(r.status, 400, 'a cycle is refused');

    // one good output and one bad: accepted, with node_errors for the bad one
    r = await c.post('/prompt', { prompt: { '1': { class_type: 'PrimitiveInt', inputs: { value: 1 } }, '2': { class_type: 'PreviewAny', inputs: { source: ['1', 0] } }, '3': { class_type: 'PreviewAny', inputs: {} } } });
    assert.equal(r.status, 200);
    assert.ok(r.json.node_errors['3']);

    // integers beyond 64 bits, as Python's json reads them: ComfyUI's range error with the exact
    // number written back as a number; with no bound, a clear refusal instead of a wrapped value
    const big = '1180591620717411303424'; // 2**70
    r = await c.post('/prompt', `{"prompt": {"1": {"class_type": "PrimitiveInt", "inputs": {"value": ${big}}}, "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}}`);
    assert.equal(r.status, 400);
    assert.equal(r.json.node_errors['1'].errors[0].type, 'value_bigger_than_max');
    assert.equal(r.json.node_errors['1'].errors[0].message, `Value ${big} bigger than max of 9223372036854775807`);
    assert.ok(r.text.includes(`"received_value": ${big}}`), r.text);
    r = await c.post('/prompt', `{"prompt": {"1": {"class_type": "StringConcatenate", "inputs": {"string_a": ${big}, "string_b": "", "delimiter": ""}}, "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}, "extra_data": {"seed": -${big}}, "client_id": "big"}`);
    assert.equal(r.status, 200, r.text); // str(2**70) is fine; extra_data keeps the number
    await sleep(300);
    const h = await c.get(`/history/${r.json.prompt_id}`);
    const entry = h.json[r.json.prompt_id];
    assert.equal(entry.prompt[2]['1'].inputs.string_a, big);
    assert.equal(entry.outputs['2'].text[0], big);
    const raw = await (await fetch(`${c.base}/history/${r.json.prompt_id}`)).text();
    assert.ok(raw.includes(`"seed": -${big}`), raw);

    // malformed JSON and 10 MB of garbage
    r = await c.post('/prompt', '{"prompt": ');
    assert.equal(r.status, 400);
    r = await c.post('/prompt', 'x'.repeat(10 * 1024 * 1024));
    assert.equal(r.status, 400);
    const ok = await c.get('/system_stats');
    assert.equal(ok.status, 200);
  } finally {
    await srv.stop();
  }
});

test('queue, priorities, delete and clear; GET /prompt', T, async () => {
  const srv = await startServer();
  try {
    const c = api(srv);
    // a long chain keeps the executor busy while the rest is queued
    const chain = { '0': { class_type: 'PrimitiveInt', inputs: { value: 0 } } };
    for (let i = 1; i < 20000; i++) chain[String(i)] = { class_type: 'IntAdd', inputs: { a: [String(i - 1), 0], b: 1 } };
    chain.out = { class_type: 'PreviewAny', inputs: { source: ['19999', 0] } };
    const first = await c.post('/prompt', { prompt: chain });
    assert.equal(first.status, 200);
    const a = await c.post('/prompt', { prompt: simple, prompt_id: 'aaa', number: 50 });
    const b = await c.post('/prompt', { prompt: simple, prompt_id: 'bbb', number: 10 });
    const f = await c.post('/prompt', { prompt: simple, prompt_id: 'fff', front: true });
    assert.equal(a.json.number, 50); // a float in ComfyUI; JSON shows 50.0
    assert.ok(f.json.number < 0);
    const q = await c.get('/queue');
    const pending = q.json.queue_pending.map((it) => it[1]);
    assert.deepEqual([...pending].sort(), ['aaa', 'bbb', 'fff']);
    for (const it of q.json.queue_pending) assert.equal(it.length, 5);
    const p = await c.get('/prompt');
    assert.ok(p.json.exec_info.queue_remaining >= 3);
    await c.post('/queue', { delete: ['bbb'] });
    let q2 = await c.get('/queue');
    assert.deepEqual(q2.json.queue_pending.map((it) => it[1]).sort(), ['aaa', 'fff']);
    await c.post('/queue', { clear: true });
    q2 = await c.get('/queue');
    assert.deepEqual(q2.json.queue_pending, []);
    await c.post('/interrupt', {});
    for (let i = 0; i < 200 && (await c.get('/prompt')).json.exec_info.queue_remaining > 0; i++) await sleep(100);
    assert.equal((await c.get('/prompt')).json.exec_info.queue_remaining, 0);
  } finally {
    await srv.stop();
  }
});

test('interrupt stops the running prompt; the next prompt runs; history survives a restart', T, async () => {
  const srv = await startServer();
  const baseDir = srv.baseDir;
  let interruptedId;
  try {
    const c = api(srv);
    const ws = await listen(srv, 'c2');
    const chain = { '0': { class_type: 'PrimitiveInt', inputs: { value: 0 } } };
    for (let i = 1; i < 50000; i++) chain[String(i)] = { class_type: 'IntAdd', inputs: { a: [String(i - 1), 0], b: 1 } };
    chain.out = { class_type: 'PreviewAny', inputs: { source: ['49999', 0] } };
    const r = await c.post('/prompt', { prompt: chain, client_id: 'c2' });
    interruptedId = r.json.prompt_id;
    await ws.wait((m) => m.type === 'executing' && m.data.prompt_id === interruptedId && m.data.node);
    await c.post('/interrupt', { prompt_id: 'not-running' }); // ignored
    await c.post('/interrupt', { prompt_id: interruptedId });
    const ev = await ws.wait((m) => m.type === 'execution_interrupted' && m.data.prompt_id === interruptedId);
    assert.ok(ev.data.node_id);
    await ws.done(interruptedId);
    const h = await c.get(`/history/${interruptedId}`);
    assert.equal(h.json[interruptedId].status.status_str, 'error');
    assert.equal(h.json[interruptedId].status.completed, false);
    const next = await c.post('/prompt', { prompt: simple, client_id: 'c2' });
    await ws.done(next.json.prompt_id);
    const h2 = await c.get(`/history/${next.json.prompt_id}`);
    assert.equal(h2.json[next.json.prompt_id].status.status_str, 'success');
    ws.close();
  } finally {
    await srv.stop({ keepBase: true });
  }
  const again = await startServer({ baseDir });
  try {
    const c = api(again);
    const all = await c.get('/history');
    assert.ok(all.json[interruptedId], 'history survives the restart');
    const last = await c.get('/history?max_items=1');
    assert.equal(Object.keys(last.json).length, 1);
    await c.post('/history', { delete: [interruptedId] });
    assert.deepEqual((await c.get(`/history/${interruptedId}`)).json, {});
    await c.post('/history', { clear: true });
    assert.deepEqual((await c.get('/history')).json, {});
  } finally {
    await again.stop();
    fs.rmSync(baseDir, { recursive: true, force: true });
  }
});

test('a failing node gives execution_error and the next prompt runs', T, async () => {
  const srv = await startServer();
  try {
    const c = api(srv);
    const ws = await listen(srv, 'c3');
    const bad = {
      '1': { class_type: 'PrimitiveInt', inputs: { value: 1 } },
      '2': { class_type: 'PrimitiveInt', inputs: { value: 0 } },
      '3': { class_type: 'IntDivide', inputs: { a: ['1', 0], b: ['2', 0] } },
      '4': { class_type: 'PreviewAny', inputs: { source: ['3', 0] } },
    };
    const r = await c.post('/prompt', { prompt: bad, client_id: 'c3' });
    const err = await ws.wait((m) => m.type === 'execution_error' && m.data.prompt_id === r.json.prompt_id);
    assert.equal(err.data.node_id, '3');
    assert.equal(err.data.node_type, 'IntDivide');
    assert.equal(err.data.exception_type, 'ZeroDivisionError');
    assert.ok(err.data.current_inputs.a);
    await ws.done(r.json.prompt_id);
    const ok = await c.post('/prompt', { prompt: simple, client_id: 'c3' });
    await ws.done(ok.json.prompt_id);
    ws.close();
  } finally {
    await srv.stop();
  }
});

test('/object_info and /object_info/{class}', T, async () => {
  const srv = await startServer();
  try {
    const c = api(srv);
    const all = await c.get('/object_info');
    assert.ok(all.json.PrimitiveInt && all.json.PreviewAny && all.json.StringConcatenate);
    const one = await c.get('/api/object_info/PreviewAny');
    assert.deepEqual(Object.keys(one.json), ['PreviewAny']);
    assert.equal(one.json.PreviewAny.output_node, true);
    assert.deepEqual((await c.get('/object_info/Nope')).json, {});
    const ref = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'tests', 'fixtures', 'comfyui-core-nodes.json'), 'utf8'));
    for (const name of ['PrimitiveInt', 'PrimitiveFloat', 'PreviewAny', 'StringConcatenate', 'RegexExtract'])
      assert.deepEqual(all.json[name], ref[name], `${name} matches ComfyUI's /object_info`);
  } finally {
    await srv.stop();
  }
});

test('@stable-canvas/comfyui-client: object_info, enqueue with outputs, queue, history, interrupt', T, async () => {
  const srv = await startServer();
  try {
    const client = new Client({ api_host: `127.0.0.1:${srv.port}`, clientId: 'sc-client', WebSocket, fetch });
    client.connect();
    const defs = await client.getNodeDefs();
    assert.ok(defs.PrimitiveString);
    const stats = await client.getSystemStats();
    assert.equal(stats.devices[0].type, 'cpu');
    const result = await client.enqueue(simple, {});
    assert.ok(result.prompt_id);
    const outputs = await client.getPromptOutputs(result.prompt_id);
    assert.deepEqual(outputs['4'], { text: ['5'] });
    const queue = await client.getQueue();
    assert.ok(Array.isArray(queue.Running) || Array.isArray(queue.queue_running) || queue);
    await client.interrupt();
    await client.clearItems('history');
    const histories = await (await fetch(`http://127.0.0.1:${srv.port}/history`)).json();
    assert.deepEqual(histories, {});
    client.close();
  } finally {
    await srv.stop();
  }
});

test('cfli (@saintno/comfyui-sdk) runs a workflow of built-in nodes and reports its outputs', T, async () => {
  const srv = await startServer();
  try {
    const wf = path.join(srv.baseDir, 'wf.json');
    fs.writeFileSync(wf, JSON.stringify(simple));
    const cli = path.join(REPO_ROOT, 'tests', 'integration', 'node_modules', '@saintno', 'comfyui-sdk', 'dist', 'cli.js');
    const out = await new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [cli, '-f', wf, '-H', `http://127.0.0.1:${srv.port}`, '--json', '--quiet', '--no-download', '--no-tui', '-t', '60000', '--output-nodes', '4,5'],
        { cwd: srv.baseDir, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '', stderr = '';
      p.stdout.on('data', (d) => { stdout += d; });
      p.stderr.on('data', (d) => { stderr += d; });
      p.on('exit', (code) => resolve({ code, stdout, stderr }));
      p.on('error', reject);
    });
    assert.equal(out.code, 0, `cfli failed: ${out.stderr}\n${out.stdout}`);
    assert.match(out.stdout, /"text"/);
    assert.match(out.stdout, /"5"/);
  } finally {
    await srv.stop();
  }
});

test('a client reconnecting during its prompt is told which node runs', T, async () => {
  const srv = await startServer();
  try {
    const c = api(srv);
    const first = await listen(srv, 'rc');
    const chain = { '0': { class_type: 'PrimitiveInt', inputs: { value: 0 } } };
    for (let i = 1; i < 50000; i++) chain[String(i)] = { class_type: 'IntAdd', inputs: { a: [String(i - 1), 0], b: 1 } };
    chain.out = { class_type: 'PreviewAny', inputs: { source: ['49999', 0] } };
    const r = await c.post('/prompt', { prompt: chain, client_id: 'rc' });
    await first.wait((m) => m.type === 'executing' && m.data.prompt_id === r.json.prompt_id && m.data.node);
    const again = await listen(srv, 'rc'); // same sid: takes over
    const greeting = await again.wait((m) => m.type === 'status');
    assert.equal(greeting.data.sid, 'rc');
    const where = await again.wait((m) => m.type === 'executing' && !m.data.prompt_id);
    assert.equal(typeof where.data.node, 'string');
    await c.post('/interrupt', {});
    await again.done(r.json.prompt_id); // the newer socket now gets the prompt's events
    first.close();
    again.close();
  } finally {
    await srv.stop();
  }
});

test("GET /queue leaves out the Comfy.org credentials a client sent in extra_data, as ComfyUI 0.8", T, async () => {
  const srv = await startServer();
  try {
    const c = api(srv);
    const chain = { '0': { class_type: 'PrimitiveInt', inputs: { value: 0 } } };
    for (let i = 1; i < 30000; i++) chain[String(i)] = { class_type: 'IntAdd', inputs: { a: [String(i - 1), 0], b: 1 } };
    chain.out = { class_type: 'PreviewAny', inputs: { source: ['29999', 0] } };
    await c.post('/prompt', { prompt: chain });
    const r = await c.post('/prompt', { prompt: simple, extra_data: { auth_token_comfy_org: 'secret-1', api_key_comfy_org: 'secret-2', keep: 1 } });
    assert.equal(r.status, 200);
    const q = (await c.get('/queue')).json;
    const mine = [...q.queue_running, ...q.queue_pending].find((item) => item[1] === r.json.prompt_id);
    assert.ok(mine, 'the second prompt waits in the queue');
    assert.equal(mine[3].keep, 1);
    assert.equal(mine[3].auth_token_comfy_org, undefined);
    assert.equal(mine[3].api_key_comfy_org, undefined);
    assert.ok(!JSON.stringify(q).includes('secret-'));
  } finally {
    await srv.stop();
  }
});

test('POST /prompt with validate_only: ComfyUI\'s answer for the prompt, and nothing queued or run', T, async () => {
  const srv = await startServer();
  try {
    const c = api(srv);
    const ok = await c.post('/prompt', { prompt: simple, validate_only: true, prompt_id: 'dry-1' });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.prompt_id, 'dry-1');
    assert.deepEqual(ok.json.node_errors, {});
    assert.equal(ok.json.validate_only, true);
    const bad = await c.post('/prompt', { prompt: { 1: { class_type: 'NoSuchNode', inputs: {} } }, validate_only: true });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.type, 'invalid_prompt');
    const q = (await c.get('/queue')).json;
    assert.deepEqual([q.queue_running.length, q.queue_pending.length], [0, 0]);
    await sleep(200);
    assert.deepEqual((await c.get('/history')).json, {}, 'nothing ran');
    // the same prompt without the flag is queued and runs
    const real = await c.post('/prompt', { prompt: simple, prompt_id: 'dry-1' });
    assert.equal(real.status, 200);
  } finally {
    await srv.stop();
  }
});
