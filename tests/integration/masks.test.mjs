// The mask and compositing nodes through the real server: a chain of them from SolidMask to
// SaveImage and MaskPreview (files, ui entries), their /object_info, and a node error reported
// the ComfyUI way. The pixel values themselves are checked by tests/unit/test_nodes_image_mask.c.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, sleep } from './lib/server.mjs';

const T = { timeout: 120000 };

async function post(srv, body) {
  const r = await fetch(`http://127.0.0.1:${srv.port}/prompt`, { method: 'POST', body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

async function history(srv, id) {
  for (let i = 0; i < 600; i++) {
    const r = await fetch(`http://127.0.0.1:${srv.port}/history/${id}`);
    const h = await r.json();
    if (h[id] && h[id].status && h[id].status.completed !== undefined && h[id].status.status_str) return h[id];
    await sleep(50);
  }
  throw new Error('the prompt did not finish');
}

// width, height, colour type and bit depth from a PNG's IHDR
function pngHeader(file) {
  const b = fs.readFileSync(file);
  assert.equal(b.subarray(1, 4).toString('latin1'), 'PNG');
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), depth: b[24], colourType: b[25] };
}

test('a mask chain runs: SolidMask, GrowMask, MaskPreview, JoinImageWithAlpha, Porter-Duff, SaveImage', T, async () => {
  const srv = await startServer();
  try {
    const prompt = {
      1: { class_type: 'SolidMask', inputs: { value: 0.5, width: 6, height: 4 } },
      2: { class_type: 'GrowMask', inputs: { mask: ['1', 0], expand: -1, tapered_corners: true } },
      3: { class_type: 'MaskPreview', inputs: { mask: ['2', 0] } },
      4: { class_type: 'MaskToImage', inputs: { mask: ['1', 0] } },
      5: { class_type: 'JoinImageWithAlpha', inputs: { image: ['4', 0], alpha: ['2', 0] } },
      6: { class_type: 'SaveImage', inputs: { images: ['5', 0], filename_prefix: 'masks/joined' } },
      7: {
        class_type: 'PorterDuffImageComposite',
        inputs: { source: ['4', 0], source_alpha: ['1', 0], destination: ['4', 0], destination_alpha: ['2', 0], mode: 'XOR' },
      },
      8: { class_type: 'SplitImageWithAlpha', inputs: { image: ['5', 0] } },
      9: { class_type: 'MaskComposite', inputs: { destination: ['8', 1], source: ['7', 1], x: 1, y: 1, operation: 'add' } },
      10: { class_type: 'MaskPreview', inputs: { mask: ['9', 0] } },
    };
    const r = await post(srv, { prompt });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const entry = await history(srv, r.json.prompt_id);
    assert.equal(entry.status.status_str, 'success', JSON.stringify(entry.status));
    const out = entry.outputs;
    assert.deepEqual(out['6'], { images: [{ filename: 'joined_00001_.png', subfolder: 'masks', type: 'output' }] });
    for (const id of ['3', '10']) {
      assert.deepEqual(out[id].animated, [false]);
      assert.equal(out[id].images.length, 1);
      const img = out[id].images[0];
      assert.equal(img.type, 'temp');
      assert.equal(img.subfolder, '');
      assert.match(img.filename, /^ComfyUI_temp_[a-z]{5}_00001_\.png$/);
      assert.deepEqual(pngHeader(path.join(srv.baseDir, 'temp', img.filename)), { width: 6, height: 4, depth: 8, colourType: 2 });
    }
    // RGBA from JoinImageWithAlpha
    assert.deepEqual(pngHeader(path.join(srv.baseDir, 'output', 'masks', 'joined_00001_.png')),
      { width: 6, height: 4, depth: 8, colourType: 6 });
  } finally {
    await srv.stop();
  }
});

test('the mask nodes in /object_info, and a node error from ImageToMask', T, async () => {
  const srv = await startServer();
  try {
    const info = await (await fetch(`http://127.0.0.1:${srv.port}/object_info`)).json();
    for (const name of ['CropMask', 'FeatherMask', 'InvertMask', 'MaskComposite', 'SolidMask', 'ThresholdMask', 'ImageColorToMask'])
      assert.equal(info[name].display_name, null, name);
    assert.equal(info.GrowMask.display_name, 'Grow Mask');
    assert.equal(info.MaskPreview.output_node, true);
    assert.equal(info.PorterDuffImageComposite.category, 'mask/compositing');
    assert.equal(info.BatchMasksNode.python_module, 'comfy_extras.nodes_post_processing');

    const prompt = {
      1: { class_type: 'SolidMask', inputs: { value: 1.0, width: 2, height: 2 } },
      2: { class_type: 'MaskToImage', inputs: { mask: ['1', 0] } },
      3: { class_type: 'ImageToMask', inputs: { image: ['2', 0], channel: 'alpha' } },
      4: { class_type: 'MaskPreview', inputs: { mask: ['3', 0] } },
    };
    const r = await post(srv, { prompt });
    assert.equal(r.status, 200);
    const entry = await history(srv, r.json.prompt_id);
    assert.equal(entry.status.status_str, 'error');
    const err = entry.status.messages.find((m) => m[0] === 'execution_error');
    assert.ok(err, JSON.stringify(entry.status.messages));
    assert.equal(err[1].node_id, '3');
    assert.equal(err[1].exception_type, 'IndexError');
    assert.match(err[1].exception_message, /index 3 is out of bounds for dimension 3 with size 3/);
  } finally {
    await srv.stop();
  }
});
