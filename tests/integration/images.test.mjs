// Images through the real server: LoadImage reads what a user put in input/, SaveImage and
// PreviewImage write PNGs with ComfyUI's names, counters and text chunks, pixels survive the
// round trip exactly (8-bit in, 8-bit out), and bad names, files and prefixes get clear errors.
// PNGs are written and read by tests/integration/lib/png.mjs, not by comfyd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startServer, sleep, REPO_ROOT } from './lib/server.mjs';
import { encodePng, decodePng } from './lib/png.mjs';
import { pyDumps } from './lib/pyjson.mjs';

const T = { timeout: 120000 };

function client(srv) {
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
    // Queues a prompt and waits for its history entry.
    async run(prompt, extra = {}) {
      const r = await this.post('/prompt', { prompt, ...extra });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      const id = r.json.prompt_id;
      for (let i = 0; i < 600; i++) {
        const h = await this.get(`/history/${id}`);
        if (h.json[id]) return h.json[id];
        await sleep(50);
      }
      throw new Error(`prompt ${id} did not finish`);
    },
  };
}

function errorOf(entry) {
  const m = entry.status.messages.find(([type]) => type === 'execution_error');
  return m ? m[1] : null;
}

// A 3x2 RGBA picture with distinct levels in every channel.
const RGBA = new Uint8Array([
  0, 1, 2, 255, 10, 20, 30, 128, 255, 254, 253, 0,
  100, 101, 102, 7, 200, 50, 25, 255, 64, 128, 192, 64,
]);

test('LoadImage → SaveImage keeps every 8-bit level and names the file as ComfyUI', T, async () => {
  const srv = await startServer({ files: { 'input/pic.png': encodePng({ width: 3, height: 2, channels: 4, pixels: RGBA }) } });
  try {
    const c = client(srv);
    const prompt = {
      1: { class_type: 'LoadImage', inputs: { image: 'pic.png' } },
      2: { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'rt/%width%x%height%_a' } },
    };
    const extra = { extra_data: { extra_pnginfo: { workflow: { nodes: [], note: 'é' } } } };
    const entry = await c.run(prompt, extra);
    assert.equal(entry.status.status_str, 'success', JSON.stringify(entry.status));
    assert.deepEqual(entry.outputs['2'].images, [{ filename: '3x2_a_00001_.png', subfolder: 'rt', type: 'output' }]);
    const png = decodePng(fs.readFileSync(path.join(srv.baseDir, 'output/rt/3x2_a_00001_.png')));
    assert.equal(png.width, 3);
    assert.equal(png.height, 2);
    assert.equal(png.channels, 3);
    for (let i = 0; i < 6; i++)
      for (let k = 0; k < 3; k++) assert.equal(png.pixels[i * 3 + k], RGBA[i * 4 + k], `pixel ${i} channel ${k}`);
    // tEXt: the prompt and each extra_pnginfo key, as Python's json.dumps writes them
    assert.equal(png.text.prompt, pyDumps(prompt));
    assert.equal(png.text.workflow, pyDumps({ nodes: [], note: 'é' }));
    assert.deepEqual(png.chunks.filter((t) => t === 'tEXt').length, 2);
    // the counter goes on from the files already there
    fs.writeFileSync(path.join(srv.baseDir, 'output/rt/3x2_a_00041_.png'), 'x');
    // (another source: the same prompt again would be served from the cache)
    const again = await c.run({
      1: { class_type: 'EmptyImage', inputs: { width: 3, height: 2, batch_size: 1, color: 0 } },
      2: prompt[2],
    });
    assert.equal(again.outputs['2'].images[0].filename, '3x2_a_00042_.png');
  } finally {
    await srv.stop();
  }
});

test('a batch of 100 images becomes 100 numbered files with the colour asked for', T, async () => {
  const srv = await startServer();
  try {
    const c = client(srv);
    const entry = await c.run({
      1: { class_type: 'EmptyImage', inputs: { width: 16, height: 8, batch_size: 100, color: 0x336699 } },
      2: { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'batch' } },
    });
    assert.equal(entry.status.status_str, 'success');
    const images = entry.outputs['2'].images;
    assert.equal(images.length, 100);
    images.forEach((im, i) => assert.equal(im.filename, `batch_${String(i + 1).padStart(5, '0')}_.png`));
    const png = decodePng(fs.readFileSync(path.join(srv.baseDir, 'output', images[99].filename)));
    assert.deepEqual([...png.pixels.subarray(0, 3)], [0x33, 0x66, 0x99]);
    assert.equal(fs.readdirSync(path.join(srv.baseDir, 'output')).length, 100);
  } finally {
    await srv.stop();
  }
});

test('ImageInvert truncates as ComfyUI: uint8(255 * (1 - v))', T, async () => {
  const px = new Uint8Array([0, 1, 2, 127, 128, 255]);
  const srv = await startServer({ files: { 'input/g.png': encodePng({ width: 2, height: 1, channels: 3, pixels: px }) } });
  try {
    const entry = await client(srv).run({
      1: { class_type: 'LoadImage', inputs: { image: 'g.png' } },
      2: { class_type: 'ImageInvert', inputs: { image: ['1', 0] } },
      3: { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: 'inv' } },
    });
    assert.equal(entry.status.status_str, 'success');
    const out = decodePng(fs.readFileSync(path.join(srv.baseDir, 'output/inv_00001_.png')));
    const f32 = (x) => Math.fround(x);
    const expected = [...px].map((v) => Math.trunc(f32(255 * f32(1 - f32(f32(v) / 255)))));
    assert.deepEqual([...out.pixels], expected);
  } finally {
    await srv.stop();
  }
});

test('PreviewImage writes into temp/; --disable-metadata leaves the text chunks out', T, async () => {
  const srv = await startServer({ args: ['--disable-metadata'] });
  try {
    const c = client(srv);
    const entry = await c.run({
      1: { class_type: 'EmptyImage', inputs: { width: 4, height: 4, batch_size: 1, color: 0 } },
      2: { class_type: 'PreviewImage', inputs: { images: ['1', 0] } },
      3: { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'plain' } },
    });
    const [im] = entry.outputs['2'].images;
    assert.equal(im.type, 'temp');
    assert.equal(im.subfolder, '');
    assert.match(im.filename, /^ComfyUI_temp_[a-z]{5}_00001_\.png$/);
    assert.ok(fs.existsSync(path.join(srv.baseDir, 'temp', im.filename)));
    const png = decodePng(fs.readFileSync(path.join(srv.baseDir, 'output/plain_00001_.png')));
    assert.deepEqual(png.text, {});
  } finally {
    await srv.stop();
  }
});

test('LoadImage: the combo lists input/ as it is now; a missing file fails validation', T, async () => {
  const one = encodePng({ width: 1, height: 1, channels: 3, pixels: new Uint8Array([1, 2, 3]) });
  const srv = await startServer({ files: { 'input/b.png': one, 'input/notes.txt': 'not an image', 'input/sub/c.png': one } });
  try {
    const c = client(srv);
    let info = await c.get('/object_info/LoadImage');
    assert.deepEqual(info.json.LoadImage.input.required.image[0], ['b.png']);
    fs.writeFileSync(path.join(srv.baseDir, 'input/a.jpg.png'), one);
    info = await c.get('/api/object_info');
    assert.deepEqual(info.json.LoadImage.input.required.image[0], ['a.jpg.png', 'b.png']);
    const r = await c.post('/prompt', {
      prompt: {
        1: { class_type: 'LoadImage', inputs: { image: 'nope.png' } },
        2: { class_type: 'SaveImage', inputs: { images: ['1', 0] } },
      },
    });
    assert.equal(r.status, 400);
    const [err] = r.json.node_errors['1'].errors;
    assert.equal(err.type, 'custom_validation_failed');
    assert.equal(err.details, 'image - Invalid image file: nope.png');
    // a name that climbs out of input/ is not a file of input/
    const out = await c.post('/prompt', {
      prompt: {
        1: { class_type: 'LoadImage', inputs: { image: '../input/b.png' } },
        2: { class_type: 'SaveImage', inputs: { images: ['1', 0] } },
      },
    });
    assert.equal(out.status, 400);
    // a subfolder is fine, and so is the [output] annotation
    const ok = await c.run({
      1: { class_type: 'LoadImage', inputs: { image: 'sub/c.png' } },
      2: { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'fromsub' } },
    });
    assert.equal(ok.status.status_str, 'success');
    const annotated = await c.run({
      1: { class_type: 'LoadImage', inputs: { image: 'fromsub_00001_.png [output]' } },
      2: { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'again' } },
    });
    assert.equal(annotated.status.status_str, 'success');
  } finally {
    await srv.stop();
  }
});

test('a corrupt PNG and a prefix outside output/ fail the node with a clear message; the server goes on', T, async () => {
  const srv = await startServer({ files: { 'input/broken.png': Buffer.from('\x89PNG\r\n\x1a\nthis is not a png') } });
  try {
    const c = client(srv);
    const bad = await c.run({
      1: { class_type: 'LoadImage', inputs: { image: 'broken.png' } },
      2: { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'never' } },
    });
    assert.equal(bad.status.status_str, 'error');
    const e = errorOf(bad);
    assert.equal(e.node_id, '1');
    assert.match(e.exception_message, /cannot read the image/);
    const escape = await c.run({
      1: { class_type: 'EmptyImage', inputs: { width: 2, height: 2, batch_size: 1, color: 0 } },
      2: { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: '../../escaped' } },
    });
    assert.equal(escape.status.status_str, 'error');
    assert.match(errorOf(escape).exception_message, /Saving image outside the output folder is not allowed/);
    assert.ok(!fs.existsSync(path.join(srv.baseDir, '..', 'escaped_00001_.png')));
    assert.ok(!fs.existsSync(path.join(srv.baseDir, 'escaped_00001_.png')));
    const fine = await c.run({
      1: { class_type: 'EmptyImage', inputs: { width: 2, height: 2, batch_size: 1, color: 0 } },
      2: { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'fine' } },
    });
    assert.equal(fine.status.status_str, 'success');
  } finally {
    await srv.stop();
  }
});

test('LoadImage runs again when the file changes under the same name, and only then', T, async () => {
  const png = (v) => encodePng({ width: 1, height: 1, channels: 3, pixels: new Uint8Array([v, v, v]) });
  const srv = await startServer({ files: { 'input/x.png': png(10) } });
  try {
    const c = client(srv);
    const prompt = (prefix) => ({
      1: { class_type: 'LoadImage', inputs: { image: 'x.png' } },
      2: { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: prefix } },
    });
    await c.run(prompt('p'));
    const cached = await c.run(prompt('q'));
    const cachedNodes = cached.status.messages.find(([t]) => t === 'execution_cached')[1].nodes;
    assert.deepEqual(cachedNodes, ['1']);
    fs.writeFileSync(path.join(srv.baseDir, 'input/x.png'), png(200));
    const changed = await c.run(prompt('r'));
    assert.deepEqual(changed.status.messages.find(([t]) => t === 'execution_cached')[1].nodes, []);
    const out = decodePng(fs.readFileSync(path.join(srv.baseDir, 'output/r_00001_.png')));
    assert.equal(out.pixels[0], 200);
  } finally {
    await srv.stop();
  }
});

test('cfli -d (@saintno/comfyui-sdk) downloads the image SaveImage wrote, byte for byte', T, async () => {
  const px = new Uint8Array([9, 8, 7, 250, 128, 3]);
  const srv = await startServer({ files: { 'input/two.png': encodePng({ width: 2, height: 1, channels: 3, pixels: px }) } });
  try {
    const wf = path.join(srv.baseDir, 'wf.json');
    fs.writeFileSync(wf, JSON.stringify({
      1: { class_type: 'LoadImage', inputs: { image: 'two.png' } },
      9: { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'cfli' } },
    }));
    const dest = path.join(srv.baseDir, 'downloads');
    const cli = path.join(REPO_ROOT, 'tests', 'integration', 'node_modules', '@saintno', 'comfyui-sdk', 'dist', 'cli.js');
    const out = await new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [cli, '-f', wf, '-H', `http://127.0.0.1:${srv.port}`, '--json', '--quiet', '-d', '-o', dest,
        '--no-tui', '-t', '60000'], { cwd: srv.baseDir, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '', stderr = '';
      p.stdout.on('data', (d) => { stdout += d; });
      p.stderr.on('data', (d) => { stderr += d; });
      p.on('exit', (code) => resolve({ code, stdout, stderr }));
      p.on('error', reject);
    });
    assert.equal(out.code, 0, `cfli failed: ${out.stderr}\n${out.stdout}`);
    const find = (dir) => fs.readdirSync(dir, { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? find(path.join(dir, e.name)) : [path.join(dir, e.name)]));
    const files = find(dest).filter((f) => f.endsWith('.png'));
    assert.equal(files.length, 1, `downloaded: ${find(dest)}`);
    assert.deepEqual(fs.readFileSync(files[0]), fs.readFileSync(path.join(srv.baseDir, 'output/cfli_00001_.png')));
    assert.deepEqual([...decodePng(fs.readFileSync(files[0])).pixels], [...px]);
  } finally {
    await srv.stop();
  }
});
