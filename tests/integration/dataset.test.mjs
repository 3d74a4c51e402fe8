// The dataset image nodes through the real server: the folder combo of /object_info (input/'s
// subfolders, listed when asked), validation of the folder, and a prompt that loads a folder with
// captions, maps a per-image node over the list, shuffles, and saves images and captions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { startServer, sleep } from './lib/server.mjs';

const T = { timeout: 120000 };

const CRC = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
// An 8-bit RGB PNG of w x h whose samples are (i * mul + add) % 256.
function png(w, h, mul, add) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  const raw = Buffer.alloc(h * (1 + 3 * w));
  let i = 0;
  for (let y = 0; y < h; y++) {
    raw[y * (1 + 3 * w)] = 0;
    for (let x = 0; x < 3 * w; x++) raw[y * (1 + 3 * w) + 1 + x] = (i++ * mul + add) % 256;
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

function api(srv) {
  const base = `http://127.0.0.1:${srv.port}`;
  return {
    async post(route, body) {
      const r = await fetch(base + route, { method: 'POST', body: JSON.stringify(body) });
      return { status: r.status, json: await r.json() };
    },
    async get(route) {
      const r = await fetch(base + route);
      return { status: r.status, json: await r.json() };
    },
    async finished(id) {
      for (let k = 0; k < 600; k++) {
        const h = await this.get(`/history/${id}`);
        if (h.json[id]) return h.json[id];
        await sleep(100);
      }
      throw new Error(`prompt ${id} did not finish`);
    },
  };
}

test('dataset folders: combo, validation, load, map, shuffle, save', T, async () => {
  const srv = await startServer({
    files: {
      'input/ds/a.png': png(4, 3, 37, 11),
      'input/ds/a.txt': '  a caption\r\n',
      'input/ds/b.png': png(5, 2, 53, 5),
      'input/ds/2_rep/c.png': png(2, 2, 91, 17),
      'input/ds/notes.md': 'not an image',
      'input/other/x.png': png(1, 1, 1, 0),
    },
  });
  try {
    fs.symlinkSync(path.join(srv.baseDir, 'input', 'other'), path.join(srv.baseDir, 'input', 'link'));
    const c = api(srv);
    const info = await c.get('/object_info/LoadImageTextDataSetFromFolder');
    const folder = info.json.LoadImageTextDataSetFromFolder.input.required.folder;
    assert.equal(folder[0], 'COMBO');
    assert.deepEqual(folder[1].options, ['ds', 'ds/2_rep', 'other']); // sorted, symlinks left out
    const all = await c.get('/object_info');
    assert.deepEqual(all.json.LoadImageDataSetFromFolder.input.required.folder[1].options, ['ds', 'ds/2_rep', 'other']);

    for (const bad of ['../input', 'link', 'nope']) {
      const r = await c.post('/prompt', { prompt: {
        '1': { class_type: 'LoadImageDataSetFromFolder', inputs: { folder: bad } },
        '2': { class_type: 'SaveImageDataSetToFolder', inputs: { images: ['1', 0], folder_name: 'x', filename_prefix: 'x' } },
      } });
      assert.equal(r.status, 400, bad);
      assert.ok(JSON.stringify(r.json.node_errors['1']).includes('is not a folder of the input directory'), bad);
    }

    const r = await c.post('/prompt', { prompt: {
      '1': { class_type: 'LoadImageTextDataSetFromFolder', inputs: { folder: 'ds' } },
      '2': { class_type: 'AdjustBrightness', inputs: { images: ['1', 0], factor: 1.0 } },
      '3': { class_type: 'ShuffleImageTextDataset', inputs: { images: ['2', 0], texts: ['1', 1], seed: 0 } },
      '4': { class_type: 'SaveImageTextDataSetToFolder', inputs: { images: ['3', 0], texts: ['3', 1], folder_name: 'set', filename_prefix: 'p' } },
    } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const entry = await c.finished(r.json.prompt_id);
    assert.equal(entry.status.status_str, 'success', JSON.stringify(entry.status));
    // 2_rep/c.png twice, a.png, b.png; np.random.seed(0); permutation(4) is [2, 3, 1, 0]
    const out = path.join(srv.baseDir, 'output', 'set');
    const names = fs.readdirSync(out).sort();
    assert.deepEqual(names, ['p_00000.png', 'p_00000.txt', 'p_00001.png', 'p_00001.txt', 'p_00002.png',
      'p_00002.txt', 'p_00003.png', 'p_00003.txt']);
    const captions = [0, 1, 2, 3].map((i) => fs.readFileSync(path.join(out, `p_0000${i}.txt`), 'utf8'));
    assert.deepEqual(captions, ['a caption', '', '', '']);
    // the first saved image is a.png: its IHDR says 4 x 3
    assert.equal(fs.readFileSync(path.join(out, 'p_00000.png')).subarray(16, 24).toString('hex'),
      png(4, 3, 37, 11).subarray(16, 24).toString('hex'));

    const esc = await c.post('/prompt', { prompt: {
      '1': { class_type: 'LoadImageDataSetFromFolder', inputs: { folder: 'other' } },
      '2': { class_type: 'SaveImageDataSetToFolder', inputs: { images: ['1', 0], folder_name: '../escaped', filename_prefix: 'x' } },
    } });
    assert.equal(esc.status, 200);
    const failed = await c.finished(esc.json.prompt_id);
    assert.equal(failed.status.status_str, 'error');
    assert.equal(fs.existsSync(path.join(srv.baseDir, 'escaped')), false);
  } finally {
    await srv.stop();
  }
});
