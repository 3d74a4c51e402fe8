// The image filter nodes through the real server: one workflow chaining every filter, the
// animated savers' files and ui entries as clients receive them in `executed`, and
// SaveImageWebsocket's binary PREVIEW_IMAGE frames (type 1, image type 2 = PNG) with their
// progress events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { startServer } from './lib/server.mjs';

const T = { timeout: 180000 };

const PROMPT = {
  1: { class_type: 'EmptyImage', inputs: { width: 40, height: 32, batch_size: 3, color: 0x3366cc } },
  2: { class_type: 'ImageAddNoise', inputs: { image: ['1', 0], seed: 42, strength: 0.3 } },
  3: { class_type: 'ImageBlur', inputs: { image: ['2', 0], blur_radius: 2, sigma: 1.5 } },
  4: { class_type: 'Canny', inputs: { image: ['3', 0], low_threshold: 0.2, high_threshold: 0.5 } },
  5: { class_type: 'Morphology', inputs: { image: ['4', 0], operation: 'dilate', kernel_size: 3 } },
  6: { class_type: 'ImageBlend', inputs: { image1: ['3', 0], image2: ['5', 0], blend_factor: 0.5, blend_mode: 'screen' } },
  7: { class_type: 'ImageQuantize', inputs: { image: ['6', 0], colors: 8, dither: 'floyd-steinberg' } },
  8: { class_type: 'ImageRGBToYUV', inputs: { image: ['7', 0] } },
  9: { class_type: 'ImageYUVToRGB', inputs: { Y: ['8', 0], U: ['8', 1], V: ['8', 2] } },
  10: { class_type: 'ImageSharpen', inputs: { image: ['9', 0], sharpen_radius: 1, sigma: 1.0, alpha: 0.5 } },
  11: { class_type: 'SaveAnimatedPNG', inputs: { images: ['10', 0], filename_prefix: 'anim/clip', fps: 8, compress_level: 4 } },
  12: {
    class_type: 'SaveAnimatedWEBP',
    inputs: { images: ['10', 0], filename_prefix: 'anim/clip', fps: 8, lossless: true, quality: 80, method: 'default' },
  },
  13: { class_type: 'SaveImageWebsocket', inputs: { images: ['10', 0] } },
};

test('every filter node in one workflow: files, ui entries and websocket previews', T, async () => {
  const srv = await startServer();
  try {
    const clientId = 'filters-it';
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/ws?clientId=${clientId}`);
    const texts = [];
    const binaries = [];
    ws.on('message', (data, isBinary) => {
      if (isBinary) binaries.push(Buffer.from(data));
      else texts.push(JSON.parse(data.toString()));
    });
    await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });

    const r = await fetch(`http://127.0.0.1:${srv.port}/prompt`, {
      method: 'POST',
      body: JSON.stringify({ prompt: PROMPT, client_id: clientId, extra_data: { extra_pnginfo: { workflow: { nodes: [] } } } }),
    });
    assert.equal(r.status, 200, await r.clone().text());
    const { prompt_id: promptId } = await r.json();

    const deadline = Date.now() + 150000;
    const finished = () => texts.find((m) => m.type === 'executing' && m.data.node === null && m.data.prompt_id === promptId);
    while (!finished()) {
      const err = texts.find((m) => m.type === 'execution_error');
      if (err) assert.fail(`execution_error: ${JSON.stringify(err.data)}`);
      if (Date.now() > deadline) assert.fail('the workflow did not finish');
      await new Promise((res) => setTimeout(res, 100));
    }
    ws.close();

    const executed = Object.fromEntries(texts.filter((m) => m.type === 'executed').map((m) => [m.data.node, m.data.output]));
    assert.deepEqual(executed['11'], { images: [{ filename: 'clip_00001_.png', subfolder: 'anim', type: 'output' }], animated: [true] });
    // the counter counts every "clip_" file of the folder, whichever node wrote it first
    const webp = executed['12'];
    assert.deepEqual(webp.animated, [true]);
    assert.equal(webp.images.length, 1);
    assert.match(webp.images[0].filename, /^clip_0000[12]_\.webp$/);
    assert.equal(webp.images[0].subfolder, 'anim');
    assert.equal(executed['13'], undefined, 'SaveImageWebsocket has no ui output');

    const out = path.join(srv.baseDir, 'output', 'anim');
    const png = fs.readFileSync(path.join(out, executed['11'].images[0].filename));
    assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
    assert.ok(png.includes(Buffer.from('acTL')), 'an animated PNG');
    assert.ok(png.includes(Buffer.from('comf')), 'the prompt in a comf chunk');
    const wp = fs.readFileSync(path.join(out, webp.images[0].filename));
    assert.equal(wp.subarray(0, 4).toString('latin1'), 'RIFF');
    assert.equal(wp.subarray(8, 12).toString('latin1'), 'WEBP');
    assert.ok(wp.includes(Buffer.from('ANMF')), 'an animated WebP');
    assert.ok(wp.includes(Buffer.from('workflow:{"nodes": []}')), 'the workflow in the EXIF');

    // three PNG previews: [type 1 = PREVIEW_IMAGE][image type 2 = PNG][PNG bytes]
    assert.equal(binaries.length, 3);
    for (const b of binaries) {
      assert.equal(b.readUInt32BE(0), 1);
      assert.equal(b.readUInt32BE(4), 2);
      assert.equal(b.subarray(9, 12).toString('latin1'), 'PNG');
      assert.equal(b.readUInt32BE(8 + 16), 40, 'width in IHDR');
      assert.equal(b.readUInt32BE(8 + 20), 32, 'height in IHDR');
    }
    const progress = texts.filter((m) => m.type === 'progress' && m.data.node === '13');
    assert.deepEqual(progress.map((m) => [m.data.value, m.data.max]), [[0, 3], [1, 3], [2, 3]]);
  } finally {
    await srv.stop();
  }
});

test('a bad input fails its node with a readable message', T, async () => {
  const srv = await startServer();
  try {
    const r = await fetch(`http://127.0.0.1:${srv.port}/prompt`, {
      method: 'POST',
      body: JSON.stringify({
        prompt: {
          1: { class_type: 'EmptyImage', inputs: { width: 2, height: 2, batch_size: 1, color: 0 } },
          2: { class_type: 'ImageBlur', inputs: { image: ['1', 0], blur_radius: 5, sigma: 1 } },
          3: { class_type: 'PreviewImage', inputs: { images: ['2', 0] } },
        },
      }),
    });
    assert.equal(r.status, 200);
    const { prompt_id: promptId } = await r.json();
    let entry;
    for (let i = 0; i < 300 && !entry; i++) {
      const h = await (await fetch(`http://127.0.0.1:${srv.port}/history/${promptId}`)).json();
      entry = h[promptId];
      if (!entry) await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(entry, 'the prompt reached the history');
    assert.equal(entry.status.status_str, 'error');
    const err = entry.status.messages.find((m) => m[0] === 'execution_error');
    assert.equal(err[1].node_id, '2');
    assert.match(err[1].exception_message, /Padding size should be less than the corresponding input dimension/);
  } finally {
    await srv.stop();
  }
});
