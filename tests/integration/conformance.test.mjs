// A few cases of ComfyUI's own execution suite (tests/execution/test_execution.py), run natively
// against comfyd with the testing pack (tests/conformance/testing_pack), so CI covers them
// without Python, torch or a ComfyUI checkout: lazy inputs, the for loop (expansions that clone
// the loop body through DYNPROMPT), custom validation answered with 400, and a cycle created by
// an expansion; combo values checked in both declaration forms; the jobs API checks of ComfyUI
// 0.8's suite (jobs.test.mjs goes further). tests/conformance/README.md runs the whole suite.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import WebSocket from 'ws';
import { startServer, COMFYD_BIN } from './lib/server.mjs';

const PACK = path.join(path.dirname(COMFYD_BIN), 'tests', 'conformance', 'testing_pack', 'testing_pack.so');
const T = { timeout: 120000 };
const CLIENT = 'conformance-client';
let srv, base, ws;
const messages = [];

before(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-conformance-'));
  fs.mkdirSync(path.join(base, 'custom_nodes', 'testing-pack'), { recursive: true });
  fs.copyFileSync(PACK, path.join(base, 'custom_nodes', 'testing-pack', 'testing_pack.so'));
  srv = await startServer({ baseDir: base });
  ws = new WebSocket(`ws://127.0.0.1:${srv.port}/ws?clientId=${CLIENT}`);
  ws.on('message', (data, isBinary) => { if (!isBinary) messages.push(JSON.parse(data.toString())); });
  await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
});

after(async () => {
  ws?.close();
  await srv?.stop();
  fs.rmSync(base, { recursive: true, force: true });
});

async function queue(prompt) {
  const r = await fetch(`http://127.0.0.1:${srv.port}/prompt`, {
    method: 'POST', body: JSON.stringify({ prompt, client_id: CLIENT }) });
  return { status: r.status, json: await r.json() };
}

// Runs a prompt as the suite's ComfyClient.run does: the nodes that got `executing`, the
// execution_error if any, and the history entry.
async function run(prompt) {
  const { status, json } = await queue(prompt);
  assert.equal(status, 200, JSON.stringify(json));
  const id = json.prompt_id;
  for (let i = 0; i < 1200; i++) {
    if (messages.some((m) => m.type === 'executing' && m.data.prompt_id === id && m.data.node === null)) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  const mine = messages.filter((m) => m.data?.prompt_id === id);
  const ran = new Set(mine.filter((m) => m.type === 'executing' && m.data.node !== null).map((m) => m.data.node));
  const error = mine.find((m) => m.type === 'execution_error')?.data;
  const history = (await (await fetch(`http://127.0.0.1:${srv.port}/history/${id}`)).json())[id];
  return { ran, error, history };
}

// The 8-bit RGB pixels of a PNG that SaveImage wrote (filters undone), to check values as the
// suite does with PIL.
function readPng(file) {
  const buf = fs.readFileSync(file);
  let off = 8, width = 0, height = 0;
  const idat = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off), type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') { width = data.readUInt32BE(0); height = data.readUInt32BE(4); assert.equal(data[8], 8); assert.equal(data[9], 2); }
    if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const bpp = 3, stride = width * bpp, out = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x];
      const a = x >= bpp ? out[y * stride + x - bpp] : 0;
      const b = y > 0 ? out[(y - 1) * stride + x] : 0;
      const c = x >= bpp && y > 0 ? out[(y - 1) * stride + x - bpp] : 0;
      let p = 0;
      if (f === 1) p = a;
      else if (f === 2) p = b;
      else if (f === 3) p = (a + b) >> 1;
      else if (f === 4) {
        const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
        p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[y * stride + x] = (v + p) & 255;
    }
  }
  return out;
}

function savedPixels(history, node) {
  const img = history.outputs[node].images[0];
  const px = readPng(path.join(base, 'output', img.subfolder || '', img.filename));
  return { min: Math.min(...px), max: Math.max(...px) };
}

const stub = (content, size = 64) => ({ class_type: 'StubImage', inputs: { content, height: size, width: size, batch_size: 1 } });
const save = (src, prefix) => ({ class_type: 'SaveImage', inputs: { images: [src, 0], filename_prefix: prefix } });

test('test_lazy_input: a mask of 0 gives image1 and never evaluates image2', T, async () => {
  const { ran, error, history } = await run({
    1: stub('BLACK'), 2: stub('WHITE'),
    3: { class_type: 'StubMask', inputs: { value: 0.0, height: 64, width: 64, batch_size: 1 } },
    4: { class_type: 'TestLazyMixImages', inputs: { image1: ['1', 0], image2: ['2', 0], mask: ['3', 0] } },
    5: save('4', 'lazy'),
  });
  assert.equal(error, undefined);
  assert.deepEqual(savedPixels(history, '5'), { min: 0, max: 0 });
  assert.ok(ran.has('1') && ran.has('3') && ran.has('4'));
  assert.ok(!ran.has('2'), 'the lazy input that was not needed did not run');
  // mask 0.5: both inputs, mixed in float32 and truncated to 127
  const half = await run({
    1: stub('BLACK'), 2: stub('WHITE'),
    3: { class_type: 'StubMask', inputs: { value: 0.5, height: 64, width: 64, batch_size: 1 } },
    4: { class_type: 'TestLazyMixImages', inputs: { image1: ['1', 0], image2: ['2', 0], mask: ['3', 0] } },
    5: save('4', 'lazy_half'),
  });
  assert.deepEqual(savedPixels(half.history, '5'), { min: 127, max: 127 });
  assert.ok(half.ran.has('2'));
});

test('test_for_loop: the loop body is cloned per iteration (255 // 2**n)', T, async () => {
  for (const iterations of [1, 3]) {
    const { ran, error, history } = await run({
      1: stub('BLACK'), 2: stub('WHITE'),
      3: { class_type: 'TestCustomIsChanged', inputs: { should_change: true, image: ['2', 0] } },
      4: { class_type: 'TestForLoopOpen', inputs: { remaining: iterations, initial_value1: ['3', 0] } },
      5: { class_type: 'TestVariadicAverage', inputs: { input1: ['1', 0], input2: ['4', 2] } },
      6: { class_type: 'TestForLoopClose', inputs: { flow_control: ['4', 0], initial_value1: ['5', 0] } },
      7: save('6', `loop${iterations}`),
    });
    assert.equal(error, undefined, JSON.stringify(error));
    const expected = Math.floor(255 / 2 ** iterations);
    assert.deepEqual(savedPixels(history, '7'), { min: expected, max: expected });
    assert.ok(ran.has('3'), 'an IS_CHANGED NaN node runs every time');
  }
});

test('custom validation: VALIDATE_INPUTS, input_types and SmartType answer 400', T, async () => {
  const v1 = (input1) => ({ 1: { class_type: 'TestCustomValidation1', inputs: { input1, input2: 0.5 } }, 2: save('1', 'v1') });
  assert.equal((await queue(v1(5))).status, 400, 'an int is not a float or a tensor');
  assert.equal((await queue(v1('foo'))).status, 400);
  assert.equal((await queue(v1(5.5))).status, 200, 'a float (JSON 5.0 would arrive as the int 5)');
  for (const [cls, stubClass, status] of [
    ['TestCustomValidation1', 'StubInt', 400], // no input_types: the link type check refuses INT
    ['TestCustomValidation2', 'StubInt', 400], ['TestCustomValidation2', 'StubFloat', 200],
    ['TestCustomValidation3', 'StubInt', 400], ['TestCustomValidation3', 'StubFloat', 200],
    ['TestCustomValidation4', 'StubInt', 400], ['TestCustomValidation4', 'StubFloat', 200],
  ]) {
    const r = await queue({
      1: { class_type: stubClass, inputs: { value: 5 } },
      2: { class_type: cls, inputs: { input1: ['1', 0], input2: 0.5 } },
      3: save('2', 'edge'),
    });
    assert.equal(r.status, status, `${cls} with ${stubClass}: ${JSON.stringify(r.json)}`);
  }
  const kw = (input2) => ({ 1: { class_type: 'TestCustomValidation5', inputs: { input1: 0.0, input2 } }, 2: save('1', 'kw') });
  assert.equal((await queue(kw(5.0))).status, 200, '**kwargs turns off min/max');
  const seven = await queue(kw(7.0));
  assert.equal(seven.status, 400);
  assert.match(JSON.stringify(seven.json), /7s are not allowed/);
});

test('test_dynamic_cycle_error: a cycle made by an expansion fails the generator node', T, async () => {
  const { error } = await run({
    1: stub('BLACK'), 2: stub('WHITE'),
    3: { class_type: 'TestDynamicDependencyCycle', inputs: { input1: ['1', 0], input2: ['2', 0] } },
    4: save('3', 'cycle'),
  });
  assert.ok(error, 'an execution_error');
  assert.ok('prompt_id' in error);
  assert.equal(error.node_id, '3');
  // str(DependencyCycleError), without the newline a node's own exception gets
  assert.equal(error.exception_message, 'Dependency cycle detected');
  assert.equal(error.exception_type, 'graph.DependencyCycleError');
});

test('execution_error: exception_message is ComfyUI\'s "{exception}\\n{tips}" (no tips here)', T, async () => {
  const { error, history } = await run({
    1: stub('BLACK'),
    2: { class_type: 'TestSyncError', inputs: { value: ['1', 0] } },
    3: save('2', 'sync_error'),
  });
  assert.ok(error, 'an execution_error');
  assert.equal(error.node_id, '2');
  assert.equal(error.exception_type, 'RuntimeError');
  assert.equal(error.exception_message, 'Intentional sync execution error for testing\n');
  const stored = history.status.messages.find(([type]) => type === 'execution_error')[1];
  assert.equal(stored.exception_message, error.exception_message, 'history keeps the same text');
});

// A cycle in the submitted prompt. ComfyUI 0.8 answers 400 prompt_outputs_failed_validation with
// empty node_errors; comfyd names the cycle (README, "Known differences").
test('a static cycle is refused with 400 dependency_cycle naming its path', T, async () => {
  const r = await queue({
    1: stub('BLACK'),
    2: { class_type: 'TestVariadicAverage', inputs: { input1: ['3', 0] } },
    3: { class_type: 'TestVariadicAverage', inputs: { input1: ['2', 0] } },
    4: save('2', 'static_cycle'),
  });
  assert.equal(r.status, 400, JSON.stringify(r.json));
  assert.equal(r.json.error.type, 'dependency_cycle');
  for (const id of ['2', '3']) {
    const [e] = r.json.node_errors[id].errors;
    assert.equal(e.type, 'dependency_cycle');
    assert.equal(e.details, '2 (TestVariadicAverage) -> 3 (TestVariadicAverage) -> 2 (TestVariadicAverage)');
    assert.deepEqual(e.extra_info.cycle_nodes, ['2', '3']);
  }
});

test('combo inputs refuse values not in their list, in both declaration forms', T, async () => {
  // the newer form, ["COMBO", {"options": [...]}]: ImageFlip's flip_method
  const flip = (flip_method) => ({ 1: stub('BLACK'), 2: { class_type: 'ImageFlip', inputs: { image: ['1', 0], flip_method } }, 3: save('2', 'flip') });
  const bad = await queue(flip('diagonal'));
  assert.equal(bad.status, 400, JSON.stringify(bad.json));
  assert.equal(bad.json.error.type, 'prompt_outputs_failed_validation');
  assert.deepEqual(bad.json.node_errors['2'].errors, [{
    type: 'value_not_in_list', message: 'Value not in list',
    details: "flip_method: 'diagonal' not in ['x-axis: vertically', 'y-axis: horizontally']",
    extra_info: {
      input_name: 'flip_method',
      input_config: ['COMBO', { multiselect: false, options: ['x-axis: vertically', 'y-axis: horizontally'] }],
      received_value: 'diagonal',
    },
  }]);
  assert.equal(bad.json.node_errors['2'].class_type, 'ImageFlip');
  const good = await run(flip('y-axis: horizontally'));
  assert.equal(good.error, undefined, JSON.stringify(good.error));
  // the legacy form, the list as the type: the testing pack's StubImage content
  const legacy = await queue({ 1: stub('PURPLE'), 2: save('1', 'purple') });
  assert.equal(legacy.status, 400, JSON.stringify(legacy.json));
  const [e] = legacy.json.node_errors['1'].errors;
  assert.equal(e.type, 'value_not_in_list');
  assert.match(e.details, /^content: 'PURPLE' not in \[/);
  assert.ok(Array.isArray(e.extra_info.input_config[0]), 'the option list is the declared type');
});

// test_jobs_api_* and test_get_job_* of ComfyUI 0.8's test_execution.py, as the suite checks them.
test('test_jobs_api_*: job structure, preview, pagination, sorting, status filter, by id, 404', T, async () => {
  const ids = [];
  for (let i = 0; i < 5; i++) { // _create_history_item
    const { history } = await run({ 1: stub('BLACK', 32), 2: save('1', 'offset_test') });
    ids.push(history.prompt[1]);
  }
  const jobs = async (q) => (await fetch(`http://127.0.0.1:${srv.port}/api/jobs${q}`)).json();
  const [job] = (await jobs('?status=completed&limit=1')).jobs;
  for (const k of ['id', 'status', 'create_time', 'outputs_count', 'preview_output']) assert.ok(k in job, k);
  for (const k of ['filename', 'nodeId', 'mediaType']) assert.ok(k in job.preview_output, k);
  const first = (await jobs('?limit=2&offset=0')).jobs.map((j) => j.id);
  const second = (await jobs('?limit=2&offset=2')).jobs.map((j) => j.id);
  assert.ok(first.length === 2 && second.length === 2 && first.every((id) => !second.includes(id)));
  const desc = (await jobs('?sort_order=desc')).jobs.map((j) => j.create_time);
  const asc = (await jobs('?sort_order=asc')).jobs.map((j) => j.create_time);
  assert.deepEqual(desc, [...desc].sort((a, b) => b - a));
  assert.deepEqual(asc, [...asc].sort((a, b) => a - b));
  const completed = (await jobs('?status=completed')).jobs;
  assert.ok(completed.length > 0 && completed.every((j) => j.status === 'completed'));
  assert.ok((await jobs('?status=pending')).jobs.every((j) => j.status === 'pending'));
  const byId = await fetch(`http://127.0.0.1:${srv.port}/api/jobs/${ids[0]}`);
  assert.equal(byId.status, 200);
  const one = await byId.json();
  assert.equal(one.id, ids[0]);
  assert.ok('outputs' in one);
  assert.equal((await fetch(`http://127.0.0.1:${srv.port}/api/jobs/nonexistent-job-id`)).status, 404);
});

// Async nodes (node.h execute_async) run concurrently, as ComfyUI's in-flight async tasks do:
// test_parallel_sleep_nodes, test_parallel_sleep_expansion, test_multiple_async_parallel_execution
// and test_async_with_dynamic_prompts with short sleeps, measured as ratios of the sum of the
// sleeps (one at a time takes at least the sum, so a ratio well under 1 means they overlapped).
async function timed(prompt) {
  const t0 = performance.now();
  const r = await run(prompt);
  return { ...r, seconds: (performance.now() - t0) / 1000 };
}
const sleep = (src, seconds) => ({ class_type: 'TestSleep', inputs: { value: [src, 0], seconds } });
const preview = (src) => ({ class_type: 'PreviewImage', inputs: { images: [src, 0] } });

test('async: three 0.5 s TestSleeps run in parallel (under 0.6 of the 1.5 s sum)', T, async () => {
  const { ran, error, seconds } = await timed({
    1: stub('BLACK'), 2: sleep('1', 0.5), 3: sleep('1', 0.5), 4: sleep('1', 0.5),
    5: preview('2'), 6: preview('3'), 7: preview('4'),
  });
  assert.equal(error, undefined, JSON.stringify(error));
  for (const id of ['2', '3', '4', '5', '6', '7']) assert.ok(ran.has(id), `${id} ran`);
  assert.ok(seconds >= 0.5, `at least the longest sleep (${seconds} s)`);
  assert.ok(seconds / 1.5 < 0.6, `parallel: ${seconds} s for 1.5 s of sleeps`);
});

test('async: an expansion\'s sleeps (TestParallelSleep) and generated ones run in parallel', T, async () => {
  const par = await timed({
    1: stub('BLACK'), 2: stub('WHITE'), 3: stub('WHITE'),
    4: { class_type: 'TestParallelSleep', inputs: { image1: ['1', 0], image2: ['2', 0], image3: ['3', 0], sleep1: 0.4, sleep2: 0.5, sleep3: 0.6 } },
    5: save('4', 'parallel_sleep'),
  });
  assert.equal(par.error, undefined, JSON.stringify(par.error));
  assert.deepEqual(savedPixels(par.history, '5'), { min: 170, max: 170 });
  assert.ok(par.seconds / 1.5 < 0.65, `parallel: ${par.seconds} s for 1.5 s of sleeps`);
  const dyn = await timed({
    1: stub('BLACK'), 2: stub('WHITE'),
    3: { class_type: 'TestDynamicAsyncGeneration', inputs: { image1: ['1', 0], image2: ['2', 0], num_async_nodes: 5, sleep_duration: 0.3 } },
    4: save('3', 'dynamic_async'),
  });
  assert.equal(dyn.error, undefined, JSON.stringify(dyn.error));
  assert.ok(dyn.ran.has('3'));
  assert.ok(dyn.seconds / 1.5 < 0.5, `parallel: ${dyn.seconds} s for 5 x 0.3 s of sleeps`);
});

test('async: dependencies still order them; a semaphore of two halves the overlap', T, async () => {
  // test_mixed_sync_async_execution: sync -> async -> sync -> async, one after the other
  const chain = await timed({
    1: stub('BLACK'), 2: stub('WHITE'),
    3: { class_type: 'StubMask', inputs: { value: 0.5, height: 64, width: 64, batch_size: 1 } },
    4: { class_type: 'TestLazyMixImages', inputs: { image1: ['1', 0], image2: ['2', 0], mask: ['3', 0] } },
    5: sleep('4', 0.3),
    6: { class_type: 'TestCustomValidation1', inputs: { input1: ['5', 0], input2: 0.5 } },
    7: sleep('6', 0.3),
    8: save('7', 'mixed_async'),
  });
  assert.equal(chain.error, undefined, JSON.stringify(chain.error));
  for (const id of ['4', '5', '6', '7']) assert.ok(chain.ran.has(id));
  assert.ok(chain.seconds >= 0.6, `a chain takes the sum (${chain.seconds} s)`);
  // TestAsyncConcurrentLimit: asyncio.Semaphore(2), four 0.3 s nodes take two rounds
  const limited = await timed(Object.fromEntries([['1', stub('BLACK')],
    ...[2, 3, 4, 5].flatMap((i) => [[String(i), { class_type: 'TestAsyncConcurrentLimit', inputs: { value: ['1', 0], duration: 0.3, node_id: i } }],
      [String(i + 10), preview(String(i))]])]));
  assert.equal(limited.error, undefined, JSON.stringify(limited.error));
  assert.ok(limited.seconds >= 0.6 && limited.seconds / 1.2 < 0.85, `two at a time: ${limited.seconds} s`);
});

test('async: a failing async node fails the prompt and stops the others in flight', T, async () => {
  const r = await timed({
    1: stub('BLACK'), 2: sleep('1', 3.0),
    3: { class_type: 'TestAsyncError', inputs: { value: ['1', 0], error_after: 0.1 } },
    4: preview('2'), 5: preview('3'),
  });
  assert.ok(r.error, 'an execution_error');
  assert.equal(r.error.node_id, '3');
  assert.equal(r.error.exception_message, 'Intentional async execution error for testing\n');
  assert.ok(r.seconds < 1.5, `the 3 s sleep was stopped (${r.seconds} s)`);
  // test_concurrent_async_error_recovery: the next prompt runs
  const next = await run({ 1: stub('WHITE'), 2: sleep('1', 0.1), 3: preview('2') });
  assert.equal(next.error, undefined);
  assert.ok(next.ran.has('2'));
});

test('async: /interrupt stops sleeps in flight', T, async () => {
  const { status, json } = await queue({ 1: stub('BLACK'), 2: sleep('1', 5.0), 3: sleep('1', 5.0), 4: preview('2'), 5: preview('3') });
  assert.equal(status, 200);
  const t0 = performance.now();
  await new Promise((res) => setTimeout(res, 300));
  await fetch(`http://127.0.0.1:${srv.port}/interrupt`, { method: 'POST', body: '{}' });
  let done;
  for (let i = 0; i < 200 && !done; i++) {
    done = messages.find((m) => m.type === 'execution_interrupted' && m.data.prompt_id === json.prompt_id);
    if (!done) await new Promise((res) => setTimeout(res, 25));
  }
  assert.ok(done, 'execution_interrupted');
  assert.ok(['2', '3'].includes(done.data.node_id), `names a sleep in flight (${done.data.node_id})`);
  assert.ok((performance.now() - t0) / 1000 < 2, 'well before the sleeps would end');
});
