// ComfyUI 0.8's jobs API (GET /api/jobs, /api/jobs/{id}; also without /api) against the real
// process: the job shapes and key order of comfy_execution/jobs.py, the status filter, sorting
// and pagination with the routes' 400 answers, running and pending prompts, the 404, and jobs that
// survive a restart because they come from the durable history. The contract is that of ComfyUI's
// tests/execution/test_execution.py (test_jobs_api_*, test_get_job_*) and test_jobs.py.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startServer, COMFYD_BIN, sleep } from './lib/server.mjs';

const PACK = path.join(path.dirname(COMFYD_BIN), 'tests', 'conformance', 'testing_pack', 'testing_pack.so');
const T = { timeout: 120000 };
const CLIENT = 'jobs-client';
let srv, base, ws;
const messages = [];

async function connect() {
  ws = new WebSocket(`ws://127.0.0.1:${srv.port}/ws?clientId=${CLIENT}`);
  ws.on('message', (data, isBinary) => { if (!isBinary) messages.push(JSON.parse(data.toString())); });
  await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
}

before(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-jobs-'));
  fs.mkdirSync(path.join(base, 'custom_nodes', 'testing-pack'), { recursive: true });
  fs.copyFileSync(PACK, path.join(base, 'custom_nodes', 'testing-pack', 'testing_pack.so'));
  srv = await startServer({ baseDir: base });
  await connect();
});

after(async () => {
  ws?.close();
  await srv?.stop();
  fs.rmSync(base, { recursive: true, force: true });
});

const url = (p) => `http://127.0.0.1:${srv.port}${p}`;
async function get(p) {
  const r = await fetch(url(p));
  const text = await r.text();
  return { status: r.status, text, json: JSON.parse(text) };
}

async function queue(prompt, extra = {}) {
  const r = await fetch(url('/prompt'), { method: 'POST', body: JSON.stringify({ prompt, client_id: CLIENT, ...extra }) });
  const json = await r.json();
  assert.equal(r.status, 200, JSON.stringify(json));
  return json;
}

async function finished(id) {
  for (let i = 0; i < 1200; i++) {
    if (messages.some((m) => m.type === 'executing' && m.data.prompt_id === id && m.data.node === null)) break;
    await sleep(50);
  }
  return (await get(`/history/${id}`)).json[id];
}

async function run(prompt, extra) {
  const { prompt_id, number } = await queue(prompt, extra);
  return { id: prompt_id, number, entry: await finished(prompt_id) };
}

const stub = { class_type: 'StubImage', inputs: { content: 'BLACK', height: 8, width: 8, batch_size: 1 } };
const saved = (prefix) => ({ 1: stub, 2: { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: prefix } } });
const failing = () => ({
  1: stub,
  2: { class_type: 'TestSyncError', inputs: { value: ['1', 0] } },
  3: { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: 'never' } },
});
const sleeping = (seconds, tag) => ({
  1: { class_type: 'PrimitiveString', inputs: { value: tag } },
  2: { class_type: 'TestSleep', inputs: { value: ['1', 0], seconds } },
  3: { class_type: 'PreviewAny', inputs: { source: ['2', 0] } },
});
const timeOf = (entry, event) => entry.status.messages.find(([type]) => type === event)?.[1].timestamp;

// The job ComfyUI 0.8 makes from a history entry (normalize_history_item), written out here.
function expectedJob(id, entry) {
  const job = { id, status: entry.status.status_str === 'error' ? 'failed' : 'completed', priority: entry.prompt[0] };
  job.create_time = entry.prompt[3].create_time;
  job.execution_start_time = timeOf(entry, 'execution_start');
  const end = entry.status.messages.filter(([type]) => ['execution_success', 'execution_error', 'execution_interrupted'].includes(type)).at(-1);
  if (end) job.execution_end_time = end[1].timestamp;
  const error = entry.status.messages.find(([type]) => type === 'execution_error');
  if (error) job.execution_error = error[1];
  let count = 0, preview;
  for (const [nodeId, out] of Object.entries(entry.outputs)) {
    for (const [mediaType, items] of Object.entries(out)) {
      if (mediaType === 'animated' || !Array.isArray(items)) continue;
      for (const item of items) {
        count++;
        if (!preview && mediaType === 'images') preview = { ...item, nodeId, mediaType };
      }
    }
  }
  job.outputs_count = count;
  if (preview) job.preview_output = preview;
  const wf = entry.prompt[3].extra_pnginfo?.workflow?.id;
  if (wf !== undefined) job.workflow_id = wf;
  return job;
}

let done; // the finished prompts of the first test: {ok, failed}

test('GET /api/jobs lists finished prompts in ComfyUI 0.8\'s shape, newest first', T, async () => {
  const ok = await run(saved('jobs'), { extra_data: { extra_pnginfo: { workflow: { id: 'wf-jobs' } } } });
  await sleep(5); // distinct create_time
  const failed = await run(failing());
  done = { ok, failed };
  assert.ok(Number.isInteger(ok.entry.prompt[3].create_time), 'POST /prompt stamps create_time');

  for (const prefix of ['/api', '']) {
    const r = await get(`${prefix}/jobs`);
    assert.equal(r.status, 200);
    assert.deepEqual(Object.keys(r.json), ['jobs', 'pagination']);
    assert.deepEqual(r.json.pagination, { offset: 0, limit: null, total: 2, has_more: false });
    const [first, second] = r.json.jobs;
    assert.deepEqual(first, expectedJob(failed.id, failed.entry));
    assert.deepEqual(second, expectedJob(ok.id, ok.entry));
    // key order as Python builds the dict, None values left out
    assert.deepEqual(Object.keys(second), ['id', 'status', 'priority', 'create_time', 'execution_start_time',
      'execution_end_time', 'outputs_count', 'preview_output', 'workflow_id']);
    assert.deepEqual(Object.keys(first), ['id', 'status', 'priority', 'create_time', 'execution_start_time',
      'execution_end_time', 'execution_error', 'outputs_count']);
    assert.deepEqual(second.preview_output, { filename: 'jobs_00001_.png', subfolder: '', type: 'output', nodeId: '2', mediaType: 'images' });
    assert.equal(first.execution_error.exception_message, 'Intentional sync execution error for testing\n');
    assert.equal(second.priority, ok.number);
  }
  // test_jobs_api_job_structure / _preview_output_structure
  const one = (await get('/api/jobs?status=completed&limit=1')).json;
  assert.equal(one.jobs.length, 1);
  for (const k of ['id', 'status', 'create_time', 'outputs_count', 'preview_output']) assert.ok(k in one.jobs[0], k);
  for (const k of ['filename', 'nodeId', 'mediaType']) assert.ok(k in one.jobs[0].preview_output, k);
});

test('status filter, sorting and pagination, and ComfyUI\'s 400 answers', T, async () => {
  // three more: 5 finished jobs, created in this order
  const more = [];
  for (let i = 0; i < 3; i++) {
    await sleep(5);
    more.push((await run(saved(`page${i}`))).id);
  }
  const order = [done.ok.id, done.failed.id, ...more]; // oldest first
  const ids = async (q) => (await get(`/api/jobs${q}`)).json.jobs.map((j) => j.id);
  assert.deepEqual(await ids(''), [...order].reverse());
  assert.deepEqual(await ids('?sort_order=asc'), order);
  assert.deepEqual(await ids('?sort_order=ASC&sort_by=Created_At'), order, 'lower-cased as ComfyUI does');
  const byDuration = (await get('/api/jobs?sort_by=execution_duration&sort_order=asc')).json.jobs;
  const durations = byDuration.map((j) => j.execution_end_time - j.execution_start_time);
  assert.deepEqual(durations, [...durations].sort((a, b) => a - b));

  assert.deepEqual(await ids('?status=failed'), [done.failed.id]);
  assert.deepEqual(await ids('?status=%20Completed%20,%20,pending'), [...more].reverse().concat(done.ok.id));
  assert.deepEqual(await ids('?status=failed,completed'), await ids(''));
  assert.deepEqual(await ids('?status='), await ids(''), 'an empty status is no filter');
  const none = (await get('/api/jobs?status=,')).json;
  assert.deepEqual(none, { jobs: [], pagination: { offset: 0, limit: null, total: 0, has_more: false } });
  assert.deepEqual(await ids('?workflow_id=wf-jobs'), [done.ok.id]);
  assert.deepEqual(await ids('?workflow_id=nope'), []);
  for (const job of (await get('/api/jobs?status=pending')).json.jobs) assert.equal(job.status, 'pending');

  // pagination: pages do not overlap (test_jobs_api_pagination)
  const page1 = (await get('/api/jobs?limit=2')).json;
  const page2 = (await get('/api/jobs?limit=2&offset=2')).json;
  const page3 = (await get('/api/jobs?limit=2&offset=4')).json;
  assert.deepEqual(page1.pagination, { offset: 0, limit: 2, total: 5, has_more: true });
  assert.deepEqual(page2.pagination, { offset: 2, limit: 2, total: 5, has_more: true });
  assert.deepEqual(page3.pagination, { offset: 4, limit: 2, total: 5, has_more: false });
  assert.deepEqual([...page1.jobs, ...page2.jobs, ...page3.jobs].map((j) => j.id), [...order].reverse());
  assert.deepEqual((await get('/api/jobs?offset=-3&limit=%201_0%20')).json.pagination,
    { offset: 0, limit: 10, total: 5, has_more: false }, 'int() of the text; a negative offset is 0');
  assert.deepEqual((await get('/api/jobs?offset=99')).json, { jobs: [], pagination: { offset: 99, limit: null, total: 5, has_more: false } });
  const huge = await get('/api/jobs?limit=100000000000000000000000');
  assert.ok(huge.text.includes('"limit": 100000000000000000000000'), 'an unbounded int is echoed exactly');
  assert.equal(huge.json.jobs.length, 5);

  const bad = {
    '?status=bogus,Nope, PENDING': 'Invalid status value(s): bogus, nope. Valid values: pending, in_progress, completed, failed',
    '?sort_by=name': "sort_by must be 'created_at' or 'execution_duration'",
    '?sort_by=%20created_at': "sort_by must be 'created_at' or 'execution_duration'",
    '?sort_order=up': "sort_order must be 'asc' or 'desc'",
    '?limit=0': 'limit must be a positive integer',
    '?limit=-1': 'limit must be a positive integer',
    '?limit=ten': 'limit must be an integer',
    '?limit=': 'limit must be an integer',
    '?limit=1.5': 'limit must be an integer',
    '?offset=x': 'offset must be an integer',
    '?status=nope&sort_by=name&limit=0': 'Invalid status value(s): nope. Valid values: pending, in_progress, completed, failed',
    '?sort_order=x&limit=x': "sort_order must be 'asc' or 'desc'",
    '?limit=x&offset=y': 'limit must be an integer',
  };
  for (const [q, error] of Object.entries(bad)) {
    const r = await get(`/jobs${q}`);
    assert.equal(r.status, 400, q);
    assert.deepEqual(r.json, { error }, q);
  }
});

test('GET /api/jobs/{id}: outputs, execution status and workflow; 404 for an unknown id', T, async () => {
  for (const { id, entry } of [done.ok, done.failed]) {
    const r = await get(`/api/jobs/${id}`);
    assert.equal(r.status, 200);
    const listed = expectedJob(id, entry);
    assert.deepEqual(r.json, {
      ...listed,
      outputs: entry.outputs,
      execution_status: entry.status,
      workflow: { prompt: entry.prompt[2], extra_data: entry.prompt[3] },
    });
    assert.deepEqual(Object.keys(r.json).slice(-3), ['outputs', 'execution_status', 'workflow']);
    assert.deepEqual((await get(`/jobs/${id}`)).json, r.json);
  }
  const missing = await get('/api/jobs/nonexistent-job-id');
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.json, { error: 'Job not found' });
});

test('running and pending prompts are jobs too; an interrupted one is failed', T, async () => {
  const running = await queue(sleeping(30, 'a'));
  const pending = await queue(sleeping(30, 'b'), { extra_data: { extra_pnginfo: { workflow: { id: 'wf-pending' } } } });
  for (let i = 0; i < 200 && !messages.some((m) => m.type === 'executing' && m.data.prompt_id === running.prompt_id); i++) await sleep(25);
  const list = (await get('/api/jobs?status=in_progress,pending')).json;
  assert.deepEqual(list.jobs.map((j) => [j.id, j.status]), [[pending.prompt_id, 'pending'], [running.prompt_id, 'in_progress']]);
  const [p, r] = list.jobs;
  assert.deepEqual(Object.keys(r), ['id', 'status', 'priority', 'create_time', 'outputs_count']);
  assert.deepEqual(Object.keys(p), ['id', 'status', 'priority', 'create_time', 'outputs_count', 'workflow_id']);
  assert.equal(r.priority, running.number);
  assert.equal(r.outputs_count, 0);
  assert.equal(p.workflow_id, 'wf-pending');
  assert.deepEqual((await get(`/api/jobs/${running.prompt_id}`)).json, r);
  assert.deepEqual((await get(`/api/jobs/${pending.prompt_id}`)).json, p);
  assert.equal((await get('/api/jobs')).json.pagination.total, 7);

  await fetch(url('/queue'), { method: 'POST', body: JSON.stringify({ delete: [pending.prompt_id] }) });
  await fetch(url('/interrupt'), { method: 'POST', body: '{}' });
  const entry = await finished(running.prompt_id);
  const job = (await get(`/api/jobs/${running.prompt_id}`)).json;
  assert.equal(job.status, 'failed');
  assert.equal(job.execution_end_time, timeOf(entry, 'execution_interrupted'));
  assert.ok(!('execution_error' in job));
  assert.equal((await get(`/api/jobs/${pending.prompt_id}`)).status, 404, 'a deleted pending prompt is no job');
});

test('jobs come from the durable history: they survive a restart', T, async () => {
  const before = (await get('/api/jobs')).json;
  const one = (await get(`/api/jobs/${done.ok.id}`)).json;
  ws.close();
  await srv.stop({ keepBase: true });
  srv = await startServer({ baseDir: base });
  await connect();
  assert.deepEqual((await get('/api/jobs')).json, before);
  assert.deepEqual((await get(`/api/jobs/${done.ok.id}`)).json, one);
});
