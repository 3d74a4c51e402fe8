// External node packs: shared libraries in custom_nodes/<pack>/ load at start; a pack with bad
// definitions or no init function is reported and left out while the server starts normally;
// --disable-all-custom-nodes skips them all. And `comfyd run`, the headless runner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { startServer, COMFYD_BIN } from './lib/server.mjs';

const packsDir = path.join(path.dirname(COMFYD_BIN), 'tests', 'packs');
const T = { timeout: 60000 };

function installPacks(base) {
  for (const [dir, file] of [['example', 'example_pack.so'], ['broken', 'broken_pack.so'], ['not-a-pack', 'no_init_pack.so']]) {
    fs.mkdirSync(path.join(base, 'custom_nodes', dir), { recursive: true });
    fs.copyFileSync(path.join(packsDir, file), path.join(base, 'custom_nodes', dir, file));
  }
  // a disabled pack (ComfyUI-Manager's layout) is not loaded
  fs.mkdirSync(path.join(base, 'custom_nodes', 'example.disabled'), { recursive: true });
  fs.copyFileSync(path.join(packsDir, 'example_pack.so'), path.join(base, 'custom_nodes', 'example.disabled', 'example_pack.so'));
}

test('packs in custom_nodes load; bad ones are reported and left out', T, async () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-packs-'));
  installPacks(base);
  const srv = await startServer({ baseDir: base });
  try {
    const info = await (await fetch(`http://127.0.0.1:${srv.port}/object_info`)).json();
    assert.deepEqual(info.ExampleRepeat.output_is_list, [true]);
    assert.equal(info.ExampleRepeat.python_module, 'custom_nodes.example');
    assert.equal(info.ExampleRepeat.display_name, 'Repeat Text');
    assert.ok(info.BrokenPackGood, 'the valid node of a pack with mistakes is kept');
    assert.equal(info.BrokenBadJson, undefined);
    assert.equal(info.BrokenFutureAbi, undefined);
    assert.equal(info.PrimitiveInt.python_module, 'comfy_extras.nodes_primitive', 'a pack cannot replace a built-in node');
    const log = srv.stderr();
    assert.match(log, /BrokenBadJson left out/);
    assert.match(log, /BrokenFutureAbi left out: built for node ABI/);
    assert.match(log, /PrimitiveInt left out: the name is already taken/);
    assert.match(log, /not-a-pack: no_init_pack.so has no comfyd_pack_init/);
    // the pack's node runs, list output mapped into PreviewAny
    const r = await fetch(`http://127.0.0.1:${srv.port}/prompt`, { method: 'POST', body: JSON.stringify({ prompt: {
      '1': { class_type: 'ExampleRepeat', inputs: { text: 'ab', times: 3 } },
      '2': { class_type: 'PreviewAny', inputs: { source: ['1', 0] } } } }) });
    const { prompt_id } = await r.json();
    let entry;
    for (let i = 0; i < 100 && !entry; i++) {
      entry = (await (await fetch(`http://127.0.0.1:${srv.port}/history/${prompt_id}`)).json())[prompt_id];
      if (!entry) await new Promise((res) => setTimeout(res, 50));
    }
    assert.deepEqual(entry.outputs['2'], { text: ['ab', 'ab', 'ab'] });
  } finally {
    await srv.stop();
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test('--disable-all-custom-nodes skips custom_nodes', T, async () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-packs-'));
  installPacks(base);
  const srv = await startServer({ baseDir: base, args: ['--disable-all-custom-nodes'] });
  try {
    const info = await (await fetch(`http://127.0.0.1:${srv.port}/object_info`)).json();
    assert.equal(info.ExampleRepeat, undefined);
    assert.ok(info.PrimitiveInt);
  } finally {
    await srv.stop();
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test('comfyd run: outputs, --set, invalid prompts and failing nodes', T, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-run-'));
  try {
    const wf = path.join(dir, 'wf.json');
    fs.writeFileSync(wf, JSON.stringify({ prompt: {
      '1': { class_type: 'PrimitiveInt', inputs: { value: 5 } },
      '2': { class_type: 'IntMultiply', inputs: { a: ['1', 0], b: 3 } },
      '3': { class_type: 'PreviewAny', inputs: { source: ['2', 0] } } } }));
    const run = (...args) => spawnSync(COMFYD_BIN, ['run', wf, '--output-directory', path.join(dir, 'out'), ...args], { cwd: dir, encoding: 'utf8' });
    let r = run();
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /node 3: \{"text": \["15"\]\}/);
    r = run('--set', '1.value=7');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /"21"/);
    r = run('--set', '1.value="x"');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /invalid literal for int\(\) with base 10: 'x'/);
    r = run('--set', '2.b=0', '--set', '2.a=1'); // 1 * 0
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /"0"/);
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({
      '1': { class_type: 'IntDivide', inputs: { a: 1, b: 0 } },
      '2': { class_type: 'PreviewAny', inputs: { source: ['1', 0] } } }));
    r = spawnSync(COMFYD_BIN, ['run', bad], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /ZeroDivisionError: integer division or modulo by zero/);
    r = spawnSync(COMFYD_BIN, ['run', path.join(dir, 'missing.json')], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 1);
    r = spawnSync(COMFYD_BIN, ['run'], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 2);
    // the format the ComfyUI frontend saves is converted first
    const fixtures = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'fixtures', 'workflows');
    r = spawnSync(COMFYD_BIN, ['run', path.join(fixtures, 'basic.ui.json'), '--quiet'], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /node 6: \{"text": \["Hello World"\]\}/);
    r = spawnSync(COMFYD_BIN, ['run', path.join(fixtures, 'unknown_node.ui.json')], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /FancySamplerThatDoesNotExist/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
