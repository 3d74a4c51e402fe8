// The transform and batch nodes through the real server: a picture from input/ scaled, rotated
// and flipped with exact pixels; ResizeImageMaskNode's dynamic combo ("resize_type" with its
// "resize_type.multiplier" widget) and BatchImagesNode's autogrow sockets ("images.image0", ...)
// as the V3 frontend sends them; RebatchImages' list output saved one file per batch, and
// ComfyUI's own test_mixed_lazy_results (tests/execution), which needs RebatchImages, run natively
// with the testing pack.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { startServer, sleep, COMFYD_BIN } from './lib/server.mjs';
import { encodePng, decodePng } from './lib/png.mjs';

const T = { timeout: 120000 };

// 4x2 RGB, every sample distinct
const W = 4, H = 2;
const PX = new Uint8Array(W * H * 3).map((_, i) => (i * 29 + 7) % 256);
const at = (x, y, k) => PX[(y * W + x) * 3 + k];

async function run(srv, prompt) {
  const base = `http://127.0.0.1:${srv.port}`;
  const r = await fetch(`${base}/prompt`, { method: 'POST', body: JSON.stringify({ prompt }) });
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  const id = body.prompt_id;
  for (let i = 0; i < 1200; i++) {
    const h = await (await fetch(`${base}/history/${id}`)).json();
    if (h[id]) return h[id];
    await sleep(50);
  }
  throw new Error(`prompt ${id} did not finish`);
}

test('scale, rotate, flip, resize by a dynamic combo, autogrow batch and rebatch: files and pixels', T, async () => {
  const srv = await startServer({ files: { 'input/px.png': encodePng({ width: W, height: H, channels: 3, pixels: PX }) } });
  try {
    const entry = await run(srv, {
      1: { class_type: 'LoadImage', inputs: { image: 'px.png' } },
      2: { class_type: 'ImageScale', inputs: { image: ['1', 0], upscale_method: 'nearest-exact', width: 8, height: 4, crop: 'disabled' } },
      3: { class_type: 'ImageRotate', inputs: { image: ['2', 0], rotation: '90 degrees' } },
      4: { class_type: 'ImageFlip', inputs: { image: ['3', 0], flip_method: 'y-axis: horizontally' } },
      5: { class_type: 'SaveImage', inputs: { images: ['4', 0], filename_prefix: 'tr/rot' } },
      6: {
        class_type: 'ResizeImageMaskNode',
        inputs: { input: ['1', 0], resize_type: 'scale by multiplier', 'resize_type.multiplier': 3, scale_method: 'nearest-exact' },
      },
      7: { class_type: 'BatchImagesNode', inputs: { 'images.image0': ['6', 0], 'images.image1': ['1', 0] } },
      8: { class_type: 'RebatchImages', inputs: { images: ['7', 0], batch_size: 1 } },
      9: { class_type: 'SaveImage', inputs: { images: ['8', 0], filename_prefix: 'tr/batch' } },
    });
    assert.equal(entry.status.status_str, 'success', JSON.stringify(entry.status));

    // nearest 2x, then clockwise and mirrored: the transpose of the scaled picture
    assert.deepEqual(entry.outputs['5'].images, [{ filename: 'rot_00001_.png', subfolder: 'tr', type: 'output' }]);
    const rot = decodePng(fs.readFileSync(path.join(srv.baseDir, 'output', 'tr', 'rot_00001_.png')));
    assert.equal(rot.width, 4);
    assert.equal(rot.height, 8);
    for (let i = 0; i < 8; i++)
      for (let j = 0; j < 4; j++)
        for (let k = 0; k < 3; k++)
          assert.equal(rot.pixels[(i * 4 + j) * 3 + k], at(i >> 1, j >> 1, k), `pixel ${j},${i}`);

    // one file per element of RebatchImages' list, both at the first image's size (12x6)
    const files = entry.outputs['9'].images.map((im) => im.filename);
    assert.deepEqual(files, ['batch_00001_.png', 'batch_00002_.png']);
    const first = decodePng(fs.readFileSync(path.join(srv.baseDir, 'output', 'tr', files[0])));
    const second = decodePng(fs.readFileSync(path.join(srv.baseDir, 'output', 'tr', files[1])));
    assert.deepEqual([first.width, first.height, second.width, second.height], [12, 6, 12, 6]);
    for (let y = 0; y < 6; y++)
      for (let x = 0; x < 12; x++)
        for (let k = 0; k < 3; k++)
          assert.equal(first.pixels[(y * 12 + x) * 3 + k], at(Math.floor(x / 3), Math.floor(y / 3), k), `pixel ${x},${y}`);
    // the second was stretched by bilinear interpolation: its corners are the original's
    assert.equal(second.pixels[0], PX[0]);
  } finally {
    await srv.stop();
  }
});

test('a BatchImagesNode without sockets and a bad resize type fail with clear errors', T, async () => {
  const srv = await startServer();
  try {
    const entry = await run(srv, {
      1: { class_type: 'EmptyImage', inputs: { width: 4, height: 4, batch_size: 1, color: 0 } },
      2: { class_type: 'ResizeImageMaskNode', inputs: { input: ['1', 0], resize_type: 'scale sideways', scale_method: 'area' } },
      3: { class_type: 'PreviewImage', inputs: { images: ['2', 0] } },
    });
    const err = entry.status.messages.find(([type]) => type === 'execution_error');
    assert.ok(err, JSON.stringify(entry.status));
    assert.equal(err[1].exception_type, 'ValueError');
    assert.match(err[1].exception_message, /Unsupported resize type: scale sideways/);

    const r = await fetch(`http://127.0.0.1:${srv.port}/prompt`, {
      method: 'POST',
      body: JSON.stringify({ prompt: { 1: { class_type: 'BatchImagesNode', inputs: {} }, 2: { class_type: 'PreviewImage', inputs: { images: ['1', 0] } } } }),
    });
    assert.equal(r.status, 400);
    const body = await r.json();
    assert.match(JSON.stringify(body.node_errors['1']), /Required input is missing/);
  } finally {
    await srv.stop();
  }
});

// test_execution.py's test_mixed_lazy_results: a list of three masks mixes black and white lazily,
// RebatchImages joins the three one-image results into one batch of three.
test('ComfyUI test_mixed_lazy_results: RebatchImages regroups a list of images into one batch', T, async () => {
  const pack = path.join(path.dirname(COMFYD_BIN), 'tests', 'conformance', 'testing_pack', 'testing_pack.so');
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-rebatch-'));
  fs.mkdirSync(path.join(base, 'custom_nodes', 'testing-pack'), { recursive: true });
  fs.copyFileSync(pack, path.join(base, 'custom_nodes', 'testing-pack', 'testing_pack.so'));
  const srv = await startServer({ baseDir: base });
  try {
    const size = { height: 16, width: 16, batch_size: 1 };
    const entry = await run(srv, {
      1: { class_type: 'TestMakeListNode', inputs: { value1: 0.0, value2: 0.5, value3: 1.0 } },
      2: { class_type: 'StubMask', inputs: { value: ['1', 0], ...size } },
      3: { class_type: 'StubImage', inputs: { content: 'BLACK', ...size } },
      4: { class_type: 'StubImage', inputs: { content: 'WHITE', ...size } },
      5: { class_type: 'TestLazyMixImages', inputs: { image1: ['3', 0], image2: ['4', 0], mask: ['2', 0] } },
      6: { class_type: 'RebatchImages', inputs: { images: ['5', 0], batch_size: 3 } },
      7: { class_type: 'SaveImage', inputs: { images: ['6', 0], filename_prefix: 'mix' } },
    });
    assert.equal(entry.status.status_str, 'success', JSON.stringify(entry.status));
    const images = entry.outputs['7'].images;
    assert.equal(images.length, 3);
    const levels = images.map((im) => {
      const png = decodePng(fs.readFileSync(path.join(base, 'output', im.subfolder, im.filename)));
      return [Math.min(...png.pixels), Math.max(...png.pixels)];
    });
    assert.deepEqual(levels, [[0, 0], [127, 127], [255, 255]]);
  } finally {
    await srv.stop();
    fs.rmSync(base, { recursive: true, force: true });
  }
});
